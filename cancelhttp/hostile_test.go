package cancelhttp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/cancelhttp"
	"github.com/go-cancellation/cancellation/internal/doccheck"
	"github.com/go-cancellation/cancellation/internal/testlog"
)

func TestDocs(t *testing.T) { doccheck.Check(t, ".") }

// TestServeNoGoroutinePerConnection: with Serve, an HTTP/1.1 connection
// whose request is in flight costs the two goroutines it costs with plain
// net/http (the connection's and its background read), not a third that
// the context package starts when the base context is not a *cancelCtx.
// Not parallel: it counts the process's goroutines.
func TestServeNoGoroutinePerConnection(t *testing.T) {
	const n = 100
	started := make(chan struct{}, n)
	finished := make(chan struct{}, n)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
		finished <- struct{}{}
	})
	srv := startServer(t, h, serverConfig{})
	runtime.GC()
	before := runtime.NumGoroutine()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = testlog.RawGet(t, srv.Addr, "/", fmt.Sprintf("g-%d", i))
	}
	for range n {
		testlog.Recv(t, "handler start", started)
	}
	perConn := float64(runtime.NumGoroutine()-before) / n
	for _, c := range conns {
		c.Close()
	}
	for range n {
		testlog.Recv(t, "handler return", finished)
	}
	t.Logf("%.2f goroutines per connection with a request in flight", perConn)
	if perConn > 2.5 {
		t.Errorf("%.2f goroutines per connection, want 2 (as plain net/http)", perConn)
	}
}

// TestServeLogsRejections: the requests net/http answers itself, and the
// connections it drops for slow headers, are in the log.
func TestServeLogsRejections(t *testing.T) {
	t.Parallel()
	srv := startServer(t, http.NotFoundHandler(), serverConfig{setup: func(s *http.Server) {
		s.MaxHeaderBytes = 1 << 10
		s.ReadHeaderTimeout = 200 * time.Millisecond
	}})
	tests := []struct {
		name, request string
		status        float64
		errText       string
	}{
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400, "missing required Host header"},
		{"malformed", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "400 Bad Request"},
		{"too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431, "431 Request Header Fields Too Large"},
		{"transfer encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Unsupported transfer encoding"},
		{"version", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505, "HTTP Version Not Supported"},
		{"header timeout", "GET / HTTP/1.1\r\nHost: x\r\nX-Unfinished: ", 408, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go io.WriteString(c, tt.request)
			c.SetReadDeadline(time.Now().Add(testlog.TimeLeft(t)))
			io.Copy(io.Discard, c) // until net/http closes the connection
			local := c.LocalAddr().String()
			r := srv.Logs.Wait(t, "rejection of "+tt.name, func(r testlog.Record) bool {
				return r.Str("msg") == "request" && r.Str("remote_addr") == local
			})
			if r.Num("status") != tt.status || r.Str("rejected_by") != "net/http" || !strings.Contains(r.Str("error"), tt.errText) {
				t.Errorf("record %v; want status %v, rejected_by net/http, error containing %q", r, tt.status, tt.errText)
			}
		})
	}
}

// TestHandlerCanceledKinds: the access log says why a request was
// canceled, and a 499 counts only the bytes written before the client
// left.
func TestHandlerCanceledKinds(t *testing.T) {
	t.Parallel()
	started := make(chan string, 3)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "early")
		http.NewResponseController(w).Flush()
		started <- r.Header.Get("X-Request-Id")
		<-r.Context().Done()
		io.WriteString(w, "written after the cancellation\n")
	})
	srv := startServer(t, h, serverConfig{})

	c := testlog.RawGet(t, srv.Addr, "/", "client")
	if id := testlog.Recv(t, "start", started); id != "client" {
		t.Fatalf("started %q", id)
	}
	c.Close()
	a := srv.Logs.Wait(t, "access log", accessLog("client"))
	if a.Str("canceled") != "client" || a.Num("status") != 499 || a.Num("bytes") != 5 {
		t.Errorf("access log %v; want canceled=client, 499, bytes=5", a)
	}

	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("X-Request-Id", "deadline")
	req.Header.Set(cancelhttp.ConnectTimeoutHeader, "20")
	client := h1Client(t)
	body := make(chan string, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			body <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body <- string(b)
	}()
	testlog.Recv(t, "start", started)
	if b := testlog.Recv(t, "response", body); b != "earlywritten after the cancellation\n" {
		t.Errorf("deadline: client read %q", b)
	}
	a = srv.Logs.Wait(t, "access log", accessLog("deadline"))
	if a.Str("canceled") != "deadline" || a.Num("status") != 200 || a.Num("bytes") != 36 {
		t.Errorf("access log %v; want canceled=deadline, 200, bytes=36", a)
	}

	testlog.RawGet(t, srv.Addr, "/", "shutdown")
	testlog.Recv(t, "start", started)
	if err := srv.shutdown(t); err != nil {
		t.Fatal(err)
	}
	a = srv.Logs.Wait(t, "access log", accessLog("shutdown"))
	if a.Str("canceled") != "shutdown" || a.Num("status") != 200 {
		t.Errorf("access log %v; want canceled=shutdown, 200", a)
	}
}

// TestReadTimeoutBoundsBodyNotHandler: ReadTimeout ends a request whose
// body arrives too slowly (408 from IgnoreBody, connection closed), and
// does not cancel a handler that runs longer than it once the body has
// been read, over HTTP/1.1 and HTTP/2.
func TestReadTimeoutBoundsBodyNotHandler(t *testing.T) {
	t.Parallel()
	const readTimeout = 100 * time.Millisecond
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		timer := time.NewTimer(3 * readTimeout)
		defer timer.Stop()
		select {
		case <-timer.C:
			io.WriteString(w, "still live")
		case <-r.Context().Done():
			io.WriteString(w, "canceled")
		}
	})
	srv := startServer(t, cancelhttp.IgnoreBody(h, 1<<10), serverConfig{setup: func(s *http.Server) {
		s.ReadTimeout = readTimeout
	}})
	for _, tt := range []struct {
		name   string
		client *http.Client
	}{{"HTTP/1.1", h1Client(t)}, {"HTTP/2", h2cClient(t)}} {
		resp, err := tt.client.Post(srv.URL, "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "still live" {
			t.Errorf("%s: handler saw %q, want its context live after ReadTimeout", tt.name, b)
		}
	}

	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part")
	resp := testlog.ReadResponse(t, c)
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Errorf("slow body: %d, close %v; want 408 and the connection closed", resp.StatusCode, resp.Close)
	}
}

// TestRequestDeadlines: the earliest deadline wins, whichever set it: a
// timeout header, an outer layer's context deadline, or
// SetRequestDeadline; a later one never extends an earlier one.
func TestRequestDeadlines(t *testing.T) {
	t.Parallel()
	errLimit := errors.New("server limit")
	type seen struct {
		err, cause error
		set        bool
	}
	results := make(chan seen, 1)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		set := false
		switch r.URL.Path {
		case "/limit":
			set = cancelhttp.SetRequestDeadline(ctx, time.Now().Add(30*time.Millisecond), errLimit)
		case "/later":
			set = cancelhttp.SetRequestDeadline(ctx, time.Now().Add(time.Hour), errLimit)
		}
		<-ctx.Done()
		results <- seen{ctx.Err(), context.Cause(ctx), set}
	})
	// An outer layer gives every request context a deadline an hour away.
	outer := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), time.Hour)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	ts := httptest.NewServer(outer(cancelhttp.Handler(inner, cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))))
	defer ts.Close()
	client := ts.Client()
	for _, tt := range []struct {
		path, header string
		wantCause    func(error) bool
	}{
		{"/header", "30", func(err error) bool { var de *cancelhttp.DeadlineError; return errors.As(err, &de) }},
		{"/limit", "", func(err error) bool { return err == errLimit }},
		{"/later", "30", func(err error) bool { var de *cancelhttp.DeadlineError; return errors.As(err, &de) }},
	} {
		req, _ := http.NewRequest("GET", ts.URL+tt.path, nil)
		if tt.header != "" {
			req.Header.Set(cancelhttp.ConnectTimeoutHeader, tt.header)
		}
		errc := testlog.DoAsync(client, req)
		got := testlog.Recv(t, "handler result for "+tt.path, results)
		testlog.Recv(t, "response", errc)
		if got.err != context.DeadlineExceeded || !tt.wantCause(got.cause) {
			t.Errorf("%s: Err %v, cause %v", tt.path, got.err, got.cause)
		}
		if tt.path != "/header" && !got.set {
			t.Errorf("%s: SetRequestDeadline reported no request token", tt.path)
		}
	}
	if cancelhttp.SetRequestDeadline(context.Background(), time.Now(), nil) {
		t.Error("SetRequestDeadline without a request token reported true")
	}
}

// TestHandlerRefusesContentLengthWithTransferEncoding: also as the second
// request of a keep-alive connection (sent after the first answer, or
// pipelined while the first handler runs, when net/http reads its first
// byte on its own), and in lower case.
func TestHandlerRefusesContentLengthWithTransferEncoding(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	proceed := make(chan struct{})
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			started <- struct{}{}
			<-proceed
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "served")
	}), serverConfig{})
	const ambiguous = "POST /second HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
	check := func(name string, c net.Conn) {
		t.Helper()
		resp := testlog.ReadResponse(t, c)
		if resp.StatusCode != http.StatusBadRequest || !resp.Close {
			t.Errorf("%s: second request: %d, close %v; want 400 and the connection closed", name, resp.StatusCode, resp.Close)
		}
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	c := dial()
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp := testlog.ReadResponse(t, c); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("first request: %d, close %v", resp.StatusCode, resp.Close)
	}
	io.WriteString(c, ambiguous)
	check("after the first answer", c)

	c = dial()
	io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	testlog.Recv(t, "first handler", started)
	io.WriteString(c, ambiguous)
	close(proceed)
	c.SetReadDeadline(time.Now().Add(testlog.TimeLeft(t)))
	br := bufio.NewReader(c) // both answers may arrive in one read
	for i, want := range []int{200, 400} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("pipelined answer %d: %v", i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 400 && !resp.Close) {
			t.Errorf("pipelined answer %d: %d, close %v; want %d", i+1, resp.StatusCode, resp.Close, want)
		}
	}

	for _, r := range srv.Logs.WaitN(t, "access logs", 2, func(r testlog.Record) bool { return r.Str("path") == "/second" }) {
		if r.Num("status") != 400 || !strings.Contains(r.Str("error"), "Content-Length and Transfer-Encoding") {
			t.Errorf("access log %v", r)
		}
	}
}

// TestServeLinksRequestsThroughConnection: under Serve, an HTTP/1 request
// whose context is net/http's own is linked through its connection (no
// registration per request), request after request on a keep-alive
// connection, and still canceled when its client leaves; a request whose
// context a layer outside Handler replaced, and an HTTP/2 request, are
// linked to their own context, and canceled when it is.
func TestServeLinksRequestsThroughConnection(t *testing.T) {
	t.Parallel()
	type seen struct {
		id     string
		linked bool
	}
	started := make(chan seen, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- seen{r.Header.Get("X-Request-Id"), cancelhttp.LinkedThroughConn(r.Context())}
		if r.URL.Path == "/wait" {
			<-r.Context().Done()
		}
	})
	outer := make(chan context.CancelCauseFunc, 1)
	errOuter := errors.New("outer layer canceled")
	srv := startServer(t, h, serverConfig{setup: func(s *http.Server) {
		inner := s.Handler
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Outer") == "" {
				inner.ServeHTTP(w, r)
				return
			}
			ctx, cancel := context.WithCancelCause(r.Context())
			defer cancel(nil)
			outer <- cancel
			inner.ServeHTTP(w, r.WithContext(ctx))
		})
	}})

	c := testlog.RawGet(t, srv.Addr, "/", "first")
	if s := testlog.Recv(t, "start", started); s.id != "first" || !s.linked {
		t.Errorf("first request of a connection: %+v, want linked through the connection", s)
	}
	if resp := testlog.ReadResponse(t, c); resp.StatusCode != 200 {
		t.Fatalf("first request: %s", resp.Status)
	}
	if _, err := io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: test\r\nX-Request-Id: second\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if s := testlog.Recv(t, "start", started); s.id != "second" || !s.linked {
		t.Errorf("second request of the connection: %+v, want linked through the connection", s)
	}
	c.Close()
	if a := srv.Logs.Wait(t, "access log", accessLog("second")); a.Str("canceled") != "client" || a.Num("status") != 499 {
		t.Errorf("access log %v; want canceled=client, 499", a)
	}

	c = testlog.RawGet(t, srv.Addr, "/wait", "outer\r\nX-Outer: 1")
	if s := testlog.Recv(t, "start", started); s.linked {
		t.Errorf("request with a context replaced outside Handler: %+v, want linked to that context", s)
	}
	testlog.Recv(t, "outer layer", outer)(errOuter)
	if a := srv.Logs.Wait(t, "access log", accessLog("outer")); a.Str("canceled") != "other" || a.Str("cause") != errOuter.Error() {
		t.Errorf("access log %v; want canceled=other, cause %q", a, errOuter)
	}
	c.Close()

	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/wait", nil)
	req.Header.Set("X-Request-Id", "h2")
	done := testlog.DoAsync(&http.Client{Transport: tr}, req)
	if s := testlog.Recv(t, "start", started); s.linked {
		t.Errorf("HTTP/2 request: %+v, want linked to its stream's context", s)
	}
	cancel()
	testlog.Recv(t, "client", done)
	if a := srv.Logs.Wait(t, "access log", accessLog("h2")); a.Str("canceled") != "client" {
		t.Errorf("access log %v; want canceled=client", a)
	}
}

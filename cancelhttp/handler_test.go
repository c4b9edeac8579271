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
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelhttp"
	"github.com/go-cancellation/cancellation/internal/testlog"
)

type ctxKey string

// outcome is what a handler saw of its request token.
type outcome struct {
	err, cause error
	proto      int
	remote     string
}

// blockingHandler reports each request on started, waits for its context
// to be done, and reports what it saw on results.
func blockingHandler() (h http.Handler, started chan *http.Request, results chan outcome) {
	started = make(chan *http.Request, 128)
	results = make(chan outcome, 128)
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r
		<-r.Context().Done()
		results <- outcome{err: r.Context().Err(), cause: context.Cause(r.Context()), proto: r.ProtoMajor, remote: r.RemoteAddr}
	})
	return h, started, results
}

func TestHandlerInstallsTokenWithValues(t *testing.T) {
	t.Parallel()
	logs := testlog.NewSink()
	var got struct {
		isToken  bool
		value    any
		sameTok  bool
		id       string
		canceled bool
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		_, got.isToken = ctx.(cancellation.Token)
		got.value = ctx.Value(ctxKey("k"))
		// Found again below a derived context.
		derived, cancel := context.WithCancel(context.WithValue(ctx, ctxKey("other"), 1))
		defer cancel()
		tok, ok := cancelhttp.RequestToken(derived)
		got.sameTok = ok && context.Context(tok) == ctx
		got.id = cancelhttp.RequestID(derived)
		_, got.canceled = cancelhttp.CanceledAt(ctx)
		io.WriteString(w, "ok")
	})
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancelhttp.Handler(inner, cancelhttp.WithLogger(logs.Logger())).
			ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey("k"), "v")))
	})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("X-Request-Id", "values-1")
	outer.ServeHTTP(rec, req)

	if !got.isToken {
		t.Error("r.Context() is not a cancellation.Token")
	}
	if got.value != "v" {
		t.Errorf("value of the outer context = %v, want v", got.value)
	}
	if !got.sameTok {
		t.Error("RequestToken(derived context) is not r.Context()")
	}
	if got.canceled {
		t.Error("CanceledAt reports a live token as canceled")
	}
	if hdr := rec.Header().Get("X-Request-Id"); got.id != "values-1" || hdr != "values-1" {
		t.Errorf("RequestID = %q, response header = %q; want the client's values-1 for both", got.id, hdr)
	}
	r := logs.Wait(t, "access log", accessLog(got.id))
	if r.Str("method") != "GET" || r.Str("path") != "/x" || r.Num("status") != 200 || r.Num("bytes") != 2 {
		t.Errorf("access log = %v", r)
	}
	if _, ok := r["cause"]; ok {
		t.Errorf("access log of a completed request has a cause: %v", r)
	}
}

func TestHandlerNoTokenOutside(t *testing.T) {
	t.Parallel()
	if _, ok := cancelhttp.RequestToken(context.Background()); ok {
		t.Error("RequestToken(Background) reports a token")
	}
	if id := cancelhttp.RequestID(context.Background()); id != "" {
		t.Errorf("RequestID(Background) = %q", id)
	}
	if _, ok := cancelhttp.CanceledAt(context.Background()); ok {
		t.Error("CanceledAt(Background) reports a time")
	}
}

func TestHandlerRequestID(t *testing.T) {
	t.Parallel()
	generated := regexp.MustCompile(`^[0-9a-f]{16}$`)
	tests := []struct {
		name    string
		inbound []string // nil: no header
		want    string   // "": a generated id, which only WithResponseRequestID puts in the response
	}{
		{name: "none"},
		{name: "echoed", inbound: []string{"abc-123"}, want: "abc-123"},
		{name: "first of several", inbound: []string{"one", "two"}, want: "one"},
		{name: "printable punctuation", inbound: []string{"a:b/c=d+e_f.g"}, want: "a:b/c=d+e_f.g"},
		{name: "128 bytes", inbound: []string{strings.Repeat("x", 128)}, want: strings.Repeat("x", 128)},
		{name: "too long", inbound: []string{strings.Repeat("x", 129)}},
		{name: "empty", inbound: []string{""}},
		{name: "space", inbound: []string{"a b"}},
		{name: "non-ASCII", inbound: []string{"é"}},
		{name: "control", inbound: []string{"a\x01"}},
		{name: "first invalid, second valid", inbound: []string{"a b", "ok"}},
	}
	for _, tt := range tests {
		for _, always := range []bool{false, true} {
			name := tt.name
			opts := []cancelhttp.Option{cancelhttp.WithLogger(slog.New(slog.DiscardHandler))}
			if always {
				name += "/WithResponseRequestID"
				opts = append(opts, cancelhttp.WithResponseRequestID())
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var seen string
				h := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					seen = cancelhttp.RequestID(r.Context())
				}), opts...)
				req := httptest.NewRequest("GET", "/", nil)
				if tt.inbound != nil {
					req.Header["X-Request-Id"] = tt.inbound
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if tt.want != "" && seen != tt.want {
					t.Errorf("RequestID = %q, want the client's %q", seen, tt.want)
				}
				if tt.want == "" && !generated.MatchString(seen) {
					t.Errorf("RequestID = %q, want 16 generated hex digits", seen)
				}
				hdr, inResponse := rec.Header()["X-Request-Id"]
				switch {
				case tt.want != "" || always:
					// An echo of a valid id; with the option, any id.
					if len(hdr) != 1 || hdr[0] != seen {
						t.Errorf("response X-Request-Id = %q, want [%q]", hdr, seen)
					}
				case inResponse:
					t.Errorf("response X-Request-Id = %q; want none for a generated id without WithResponseRequestID", hdr)
				}
			})
		}
	}
}

func TestHandlerRequestIDOverHTTP(t *testing.T) {
	t.Parallel()
	// Through net/http on both sides: no header in the response unless the
	// client sent one or the option is on. The access log always has the
	// id.
	ids := make(chan string, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids <- cancelhttp.RequestID(r.Context())
	})
	for _, tt := range []struct {
		name    string
		opts    []cancelhttp.Option
		inbound string
		want    bool
	}{
		{name: "default, none sent"},
		{name: "default, sent", inbound: "sent-1", want: true},
		{name: "default, invalid sent", inbound: "a b"},
		{name: "WithResponseRequestID, none sent", opts: []cancelhttp.Option{cancelhttp.WithResponseRequestID()}, want: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, h, serverConfig{handlerOpts: tt.opts})
			req, _ := http.NewRequest("GET", srv.URL+"/id", nil)
			if tt.inbound != "" {
				req.Header.Set("X-Request-Id", tt.inbound)
			}
			resp, err := h1Client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			id := testlog.Recv(t, "request id", ids)
			hdr, ok := resp.Header["X-Request-Id"]
			if tt.want && (len(hdr) != 1 || hdr[0] != id) {
				t.Errorf("response X-Request-Id = %q, want [%q]", hdr, id)
			}
			if !tt.want && ok {
				t.Errorf("response X-Request-Id = %q, want none", hdr)
			}
			if tt.inbound == "sent-1" && id != "sent-1" {
				t.Errorf("RequestID = %q, want sent-1", id)
			}
			srv.Logs.Wait(t, "access log with the id", accessLog(id))
		})
	}
}

func TestHandlerReleasesTokenOnReturn(t *testing.T) {
	t.Parallel()
	var tok cancellation.Token
	h := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ = cancelhttp.RequestToken(r.Context())
		if tok.IsCanceled() {
			t.Error("token canceled while the handler runs")
		}
	}), cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	select {
	case <-tok.Done():
	default:
		t.Fatal("token not canceled after the handler returned")
	}
	if tok.Err() != context.Canceled || tok.Cause() != context.Canceled {
		t.Errorf("after return: Err = %v, Cause = %v; want context.Canceled for both", tok.Err(), tok.Cause())
	}
}

func TestHandlerTimeoutHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		headers    map[string]string
		max        time.Duration
		wantHeader string
		wantValue  string
		wantTO     time.Duration
		capped     bool
	}{
		{name: "connect", headers: map[string]string{"Connect-Timeout-Ms": "30"},
			wantHeader: "Connect-Timeout-Ms", wantValue: "30", wantTO: 30 * time.Millisecond},
		{name: "grpc", headers: map[string]string{"Grpc-Timeout": "30m"},
			wantHeader: "Grpc-Timeout", wantValue: "30m", wantTO: 30 * time.Millisecond},
		{name: "grpc micros", headers: map[string]string{"Grpc-Timeout": "25000u"},
			wantHeader: "Grpc-Timeout", wantValue: "25000u", wantTO: 25 * time.Millisecond},
		{name: "both, connect shorter", headers: map[string]string{"Connect-Timeout-Ms": "20", "Grpc-Timeout": "1S"},
			wantHeader: "Connect-Timeout-Ms", wantValue: "20", wantTO: 20 * time.Millisecond},
		{name: "both, grpc shorter", headers: map[string]string{"Connect-Timeout-Ms": "100000", "Grpc-Timeout": "20m"},
			wantHeader: "Grpc-Timeout", wantValue: "20m", wantTO: 20 * time.Millisecond},
		{name: "capped", headers: map[string]string{"Grpc-Timeout": "1H"}, max: 30 * time.Millisecond,
			wantHeader: "Grpc-Timeout", wantValue: "1H", wantTO: 30 * time.Millisecond, capped: true},
		{name: "under the cap", headers: map[string]string{"Connect-Timeout-Ms": "20"}, max: time.Hour,
			wantHeader: "Connect-Timeout-Ms", wantValue: "20", wantTO: 20 * time.Millisecond},
		{name: "zero: already expired", headers: map[string]string{"Connect-Timeout-Ms": "0"},
			wantHeader: "Connect-Timeout-Ms", wantValue: "0", wantTO: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := testlog.NewSink()
			type seen struct {
				err, cause error
				deadline   time.Time
				hasDL      bool
				at         time.Time
				hasAt      bool
			}
			c := make(chan seen, 1)
			var start time.Time
			h := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx := r.Context()
				var s seen
				s.deadline, s.hasDL = ctx.Deadline()
				<-ctx.Done()
				s.err, s.cause = ctx.Err(), context.Cause(ctx)
				s.at, s.hasAt = cancelhttp.CanceledAt(ctx)
				c <- s
			}), cancelhttp.WithLogger(logs.Logger()), cancelhttp.WithMaxTimeout(tt.max))
			req := httptest.NewRequest("GET", "/", nil)
			id := "deadline-" + strings.ReplaceAll(tt.name, " ", "_")
			req.Header.Set("X-Request-Id", id)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			start = time.Now()
			h.ServeHTTP(httptest.NewRecorder(), req)
			s := <-c

			if s.err != context.DeadlineExceeded {
				t.Errorf("Err = %v, want exactly context.DeadlineExceeded", s.err)
			}
			if !errors.Is(s.cause, context.DeadlineExceeded) {
				t.Errorf("errors.Is(cause %v, DeadlineExceeded) = false", s.cause)
			}
			var de *cancelhttp.DeadlineError
			if !errors.As(s.cause, &de) {
				t.Fatalf("cause %v (%T) is not a *DeadlineError", s.cause, s.cause)
			}
			if de.Header != tt.wantHeader || de.Value != tt.wantValue || de.Timeout != tt.wantTO || de.Capped != tt.capped {
				t.Errorf("DeadlineError = %+v, want header %s value %q timeout %v capped %v", *de, tt.wantHeader, tt.wantValue, tt.wantTO, tt.capped)
			}
			if !strings.Contains(de.Error(), tt.wantHeader) || !strings.Contains(de.Error(), tt.wantValue) {
				t.Errorf("cause message %q does not name the header and value", de.Error())
			}
			// A token that starts canceled (timeout 0) reports no deadline:
			// cancellation.New does not keep a parent that is already done.
			if tt.wantTO > 0 && (!s.hasDL || s.deadline.Before(start.Add(tt.wantTO)) || s.deadline.After(time.Now())) {
				t.Errorf("Deadline() = %v, %v; want start+%v", s.deadline, s.hasDL, tt.wantTO)
			}
			if !s.hasAt || s.at.Before(start.Add(tt.wantTO)) || s.at.After(time.Now()) || (s.hasDL && !s.at.Equal(s.deadline)) {
				t.Errorf("CanceledAt = %v, %v; want the deadline, start+%v", s.at, s.hasAt, tt.wantTO)
			}
			r := logs.Wait(t, "access log", accessLog(id))
			if r.Num("status") != 200 || !strings.Contains(r.Str("cause"), tt.wantHeader) {
				t.Errorf("access log = %v; want status 200 and the header in the cause", r)
			}
			if _, ok := r["stop_latency_ms"]; !ok {
				t.Errorf("access log has no stop_latency: %v", r)
			}
		})
	}
}

func TestHandlerMalformedTimeoutHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct{ header, value string }{
		{"Connect-Timeout-Ms", "abc"},
		{"Connect-Timeout-Ms", "-1"},
		{"Connect-Timeout-Ms", "+5"},
		{"Connect-Timeout-Ms", "1.5"},
		{"Connect-Timeout-Ms", "12345678901"},
		{"Connect-Timeout-Ms", ""},
		{"Grpc-Timeout", "1"},
		{"Grpc-Timeout", "S"},
		{"Grpc-Timeout", "1x"},
		{"Grpc-Timeout", "1s"},
		{"Grpc-Timeout", "123456789S"},
		{"Grpc-Timeout", "-1S"},
		{"Grpc-Timeout", ""},
	}
	for _, tt := range tests {
		t.Run(tt.header+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			logs := testlog.NewSink()
			called := false
			h := cancelhttp.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }),
				cancelhttp.WithLogger(logs.Logger()))
			req := httptest.NewRequest("GET", "/", nil)
			req.Header[tt.header] = []string{tt.value}
			req.Header.Set("X-Request-Id", "bad")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if called {
				t.Error("the handler was called")
			}
			body := rec.Body.String()
			if rec.Code != http.StatusBadRequest || !strings.Contains(body, tt.header) || !strings.Contains(body, fmt.Sprintf("%q", tt.value)) {
				t.Errorf("got %d %q; want 400 naming %s and %q", rec.Code, body, tt.header, tt.value)
			}
			if !strings.Contains(body, "want ") {
				t.Errorf("body %q does not say what is accepted", body)
			}
			r := logs.Wait(t, "access log", accessLog("bad"))
			if r.Num("status") != 400 || r.Str("error") == "" {
				t.Errorf("access log = %v, want status 400 and the error", r)
			}
		})
	}
}

func TestHandlerOuterDeadline(t *testing.T) {
	t.Parallel()
	// A deadline set on the request context by an outer layer makes the
	// token's Err DeadlineExceeded too.
	c := make(chan error, 1)
	h := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		c <- r.Context().Err()
	}), cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	if err := <-c; err != context.DeadlineExceeded {
		t.Errorf("Err = %v, want context.DeadlineExceeded", err)
	}
}

func TestHandlerStdlibChildren(t *testing.T) {
	t.Parallel()
	// Contexts the handler derives with the context package see the
	// token's cancellation, its cause and the request's values.
	type seen struct {
		tokErr, tokCause, childErr, childCause error
		value                                  any
	}
	c := make(chan seen, 1)
	h := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		child, cancel := context.WithCancel(r.Context())
		defer cancel()
		grandchild, cancel2 := context.WithTimeout(context.WithValue(child, ctxKey("x"), 1), time.Hour)
		defer cancel2()
		<-grandchild.Done()
		c <- seen{
			tokErr: r.Context().Err(), tokCause: context.Cause(r.Context()),
			childErr: grandchild.Err(), childCause: context.Cause(grandchild),
			value: grandchild.Value(ctxKey("k")),
		}
	}), cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey("k"), "v"))
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	}()
	cancel() // as net/http does when the client goes away
	got := testlog.Recv(t, "handler result", c)
	testlog.Recv(t, "ServeHTTP to return", done)
	if got.tokErr != context.Canceled || !errors.Is(got.tokCause, cancelhttp.ErrClientDisconnected) {
		t.Errorf("token: Err, Cause = %v, %v; want context.Canceled, ErrClientDisconnected", got.tokErr, got.tokCause)
	}
	if got.childErr != context.Canceled || !errors.Is(got.childCause, cancelhttp.ErrClientDisconnected) {
		t.Errorf("stdlib child: Err, Cause = %v, %v; want context.Canceled, ErrClientDisconnected", got.childErr, got.childCause)
	}
	if got.value != "v" {
		t.Errorf("stdlib child: value of the request context = %v, want v", got.value)
	}
}

func TestHandlerOuterCancelCause(t *testing.T) {
	t.Parallel()
	// A cause other than a bare context.Canceled is kept as it is.
	errMine := errors.New("mine")
	c := make(chan outcome, 1)
	h := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		c <- outcome{err: r.Context().Err(), cause: context.Cause(r.Context())}
	}), cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errMine)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	got := <-c
	if got.err != context.Canceled || got.cause != errMine {
		t.Errorf("Err, Cause = %v, %v; want context.Canceled, %v", got.err, got.cause, errMine)
	}
}

func TestHandlerClientDisconnect(t *testing.T) {
	t.Parallel()
	h, started, results := blockingHandler()
	srv := startServer(t, h, serverConfig{})
	c := testlog.RawGet(t, srv.Addr, "/slow", "gone")
	testlog.Recv(t, "handler start", started)
	c.Close()
	got := testlog.Recv(t, "handler result", results)
	if got.err != context.Canceled {
		t.Errorf("Err = %v, want exactly context.Canceled", got.err)
	}
	if !errors.Is(got.cause, cancelhttp.ErrClientDisconnected) {
		t.Errorf("cause = %v, want ErrClientDisconnected", got.cause)
	}
	r := srv.Logs.Wait(t, "access log", accessLog("gone"))
	if r.Num("status") != cancelhttp.StatusClientClosedRequest || r.Str("cause") != "client disconnected" {
		t.Errorf("access log = %v; want status 499, cause client disconnected", r)
	}
	if d, ok := r["stop_latency_ms"].(float64); !ok || d < 0 {
		t.Errorf("access log stop_latency = %v", r["stop_latency_ms"])
	}
}

func TestHandlerHTTP2StreamReset(t *testing.T) {
	t.Parallel()
	h, started, results := blockingHandler()
	srv := startServer(t, h, serverConfig{})
	client := h2cClient(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/slow", nil)
	req.Header.Set("X-Request-Id", "reset")
	errc := testlog.DoAsync(client, req)
	first := testlog.Recv(t, "handler start", started)
	if first.ProtoMajor != 2 {
		t.Fatalf("request arrived over HTTP/%d, want 2", first.ProtoMajor)
	}
	cancel() // the client transport resets the stream
	if err := testlog.Recv(t, "client error", errc); !errors.Is(err, context.Canceled) {
		t.Errorf("client error = %v, want context.Canceled", err)
	}
	got := testlog.Recv(t, "handler result", results)
	if got.err != context.Canceled || !errors.Is(got.cause, cancelhttp.ErrClientDisconnected) {
		t.Errorf("Err, cause = %v, %v; want context.Canceled, ErrClientDisconnected", got.err, got.cause)
	}
	r := srv.Logs.Wait(t, "access log", accessLog("reset"))
	if r.Num("status") != cancelhttp.StatusClientClosedRequest {
		t.Errorf("access log = %v, want status 499", r)
	}

	// Only the stream was reset: the next request uses the same
	// connection.
	ctx2, cancel2 := context.WithTimeout(context.Background(), testlog.TimeLeft(t))
	defer cancel2()
	req2, _ := http.NewRequestWithContext(ctx2, "GET", srv.URL+"/slow", nil)
	errc = testlog.DoAsync(client, req2)
	second := testlog.Recv(t, "second handler start", started)
	if second.RemoteAddr != first.RemoteAddr {
		t.Errorf("second request came from %s, first from %s: the connection was closed, not the stream reset", second.RemoteAddr, first.RemoteAddr)
	}
	cancel2()
	testlog.Recv(t, "second client error", errc)
	testlog.Recv(t, "second handler result", results)
}

func TestHandlerResponseWriter(t *testing.T) {
	t.Parallel()
	proceed := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("ResponseWriter is not an http.Flusher")
		}
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("ResponseController.SetWriteDeadline: %v", err)
		}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "first\n")
		if err := rc.Flush(); err != nil {
			t.Errorf("ResponseController.Flush: %v", err)
		}
		<-proceed
		io.Copy(w, strings.NewReader("second\n")) // through io.ReaderFrom
	})
	srv := startServer(t, h, serverConfig{})
	req, _ := http.NewRequest("GET", srv.URL+"/stream", nil)
	req.Header.Set("X-Request-Id", "stream")
	resp, err := h1Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// The first line arrives while the handler still waits: the flush
	// went through the wrapper.
	if line, err := br.ReadString('\n'); line != "first\n" || err != nil {
		t.Fatalf("first line = %q, %v", line, err)
	}
	close(proceed)
	rest, _ := io.ReadAll(br)
	if string(rest) != "second\n" || resp.StatusCode != http.StatusAccepted {
		t.Errorf("got %d, rest %q", resp.StatusCode, rest)
	}
	r := srv.Logs.Wait(t, "access log", accessLog("stream"))
	if r.Num("status") != 202 || r.Num("bytes") != 13 {
		t.Errorf("access log = %v, want status 202 and 13 bytes", r)
	}
}

func TestHandlerInformationalStatus(t *testing.T) {
	t.Parallel()
	logs := testlog.NewSink()
	h := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusNotFound)
	}), cancelhttp.WithLogger(logs.Logger()))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Request-Id", "hints")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if r := logs.Wait(t, "access log", accessLog("hints")); r.Num("status") != 404 {
		t.Errorf("access log = %v, want the final status 404", r)
	}
}

func TestHandlerPanic(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
	srv := startServer(t, h, serverConfig{setup: func(s *http.Server) {
		s.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	}})
	req, _ := http.NewRequest("GET", srv.URL+"/panic", nil)
	req.Header.Set("X-Request-Id", "panic")
	if resp, err := h1Client(t).Do(req); err == nil {
		resp.Body.Close()
		t.Error("a panicking handler produced a response; want the connection aborted by net/http")
	}
	r := srv.Logs.Wait(t, "access log", accessLog("panic"))
	if r.Num("status") != 500 || r.Str("panic") != "boom" || r.Str("level") != "ERROR" {
		t.Errorf("access log = %v; want status 500, panic boom, level ERROR", r)
	}
}

func TestHandlerAbort(t *testing.T) {
	t.Parallel()
	logs := testlog.NewSink()
	h := cancelhttp.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }),
		cancelhttp.WithLogger(logs.Logger()))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Request-Id", "abort")
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler re-panicked", v)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), req)
	}()
	r := logs.Wait(t, "access log", accessLog("abort"))
	if r["aborted"] != true || r.Str("level") != "INFO" || r["panic"] != nil {
		t.Errorf("access log %v, want aborted=true at INFO without panic", r)
	}
}

func TestHandlerCustomBaseContextCause(t *testing.T) {
	t.Parallel()
	// A server whose base context is canceled with a cause of its own: the
	// request tokens carry that cause.
	errMaintenance := errors.New("maintenance")
	base, cancelBase := context.WithCancelCause(context.Background())
	defer cancelBase(nil)
	h, started, results := blockingHandler()
	srv := startServer(t, h, serverConfig{setup: func(s *http.Server) {
		s.BaseContext = func(net.Listener) context.Context { return base }
	}})
	req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
	errc := testlog.DoAsync(h1Client(t), req)
	testlog.Recv(t, "handler start", started)
	cancelBase(errMaintenance)
	got := testlog.Recv(t, "handler result", results)
	if got.err != context.Canceled || got.cause != errMaintenance {
		t.Errorf("Err, cause = %v, %v; want context.Canceled, %v", got.err, got.cause, errMaintenance)
	}
	if err := testlog.Recv(t, "client", errc); err != nil {
		t.Errorf("client: %v", err)
	}
}

func TestHandlerReturnRacesDisconnect(t *testing.T) {
	t.Parallel()
	// The client goes away just as the handler returns, over and over: the
	// record is consistent either way, and the token ends canceled.
	logs := testlog.NewSink()
	var completed, disconnected int
	defer func() { t.Logf("%d completed, %d disconnected", completed, disconnected) }()
	for i := range 300 {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		var tok cancellation.Token
		h := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, _ = cancelhttp.RequestToken(r.Context())
			close(ready)
		}), cancelhttp.WithLogger(logs.Logger()))
		go func() {
			<-ready
			cancel()
		}()
		req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
		req.Header.Set("X-Request-Id", fmt.Sprintf("race-%d", i))
		h.ServeHTTP(httptest.NewRecorder(), req)
		if !tok.IsCanceled() {
			t.Fatal("token live after the handler returned")
		}
		r := logs.Wait(t, "access log", accessLog(fmt.Sprintf("race-%d", i)))
		_, hasLatency := r["stop_latency_ms"]
		switch {
		case r.Str("cause") == "" && r.Num("status") == 200 && !hasLatency:
			completed++
		case r.Str("cause") == "client disconnected" && r.Num("status") == 499 && r.Num("stop_latency_ms") >= 0 && hasLatency:
			disconnected++
		default:
			t.Fatalf("inconsistent access log %v", r)
		}
		cancel()
	}
}

func TestHandlerHijack(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack through the middleware: %v", err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		brw.Flush()
	})
	srv := startServer(t, h, serverConfig{})
	req, _ := http.NewRequest("GET", srv.URL+"/hijack", nil)
	req.Header.Set("X-Request-Id", "hijack")
	resp, err := h1Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hijacked" {
		t.Errorf("body %q", body)
	}
	if r := srv.Logs.Wait(t, "access log", accessLog("hijack")); r["hijacked"] != true {
		t.Errorf("access log %v, want hijacked=true", r)
	}
}

func TestHandlerNilPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if v := recover(); v == nil || !strings.HasPrefix(fmt.Sprint(v), "cancelhttp: ") {
			t.Errorf("Handler(nil) panicked with %v, want a cancelhttp: message", v)
		}
	}()
	cancelhttp.Handler(nil)
}

func TestHandlerAllocs(t *testing.T) {
	// Not parallel: AllocsPerRun.
	h := cancelhttp.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))
	req := httptest.NewRequest("GET", "/", nil)
	ctx, cancel := context.WithCancel(context.Background()) // like net/http's request context
	defer cancel()
	req = req.WithContext(ctx)
	w := discardWriter{h: http.Header{}}
	allocs := testing.AllocsPerRun(200, func() {
		clear(w.h)
		h.ServeHTTP(w, req)
	})
	// 6 today: the state (a generated id is kept in it), the Source with
	// its extra (values of a non-Token first parent, allocated together),
	// the parentDone method value, AfterFunc's context and stop closure,
	// and the request copy. No header: none is set without an inbound id.
	// Under Serve, an HTTP/1 request saves the three of AfterFunc.
	const limit = 7
	t.Logf("allocations per request: %v", allocs)
	if allocs > limit {
		t.Errorf("allocations per request = %v, want <= %d", allocs, limit)
	}
}

type discardWriter struct{ h http.Header }

func (w discardWriter) Header() http.Header         { return w.h }
func (w discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w discardWriter) WriteHeader(int)             {}

// TestHandlerRequestIsWithContextCopy: next gets exactly what
// r.WithContext(token) would give it (every field, exported or not, of a
// request routed by a ServeMux pattern, with a body and path values), and
// on this Go version Handler makes that copy without r.WithContext's
// allocation.
func TestHandlerRequestIsWithContextCopy(t *testing.T) {
	if !cancelhttp.CopiesRequestInPlace() {
		t.Errorf("Handler falls back to r.WithContext: the layout check of http.Request failed on %s", runtime.Version())
	}
	type seen struct{ outer, inner *http.Request }
	got := make(chan seen, 1)
	var outer *http.Request
	inner := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{outer, r}
	}), cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))
	mux := http.NewServeMux()
	mux.Handle("POST /items/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outer = r
		inner.ServeHTTP(w, r)
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close() // also closes the idle connections of srv.Client()
	resp, err := srv.Client().Post(srv.URL+"/items/42?x=1", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := testlog.Recv(t, "request", got)
	if s.inner == s.outer {
		t.Fatal("next got the original request")
	}
	tok, ok := cancelhttp.RequestToken(s.inner.Context())
	if !ok || context.Context(tok) != s.inner.Context() {
		t.Fatalf("next's context is %T, want the request token", s.inner.Context())
	}
	if want := s.outer.WithContext(s.inner.Context()); !reflect.DeepEqual(s.inner, want) {
		t.Errorf("next's request differs from r.WithContext(token):\n got %+v\nwant %+v", s.inner, want)
	}
	if s.inner.PathValue("id") != "42" || s.inner.Pattern != "POST /items/{id}" {
		t.Errorf("PathValue(id) = %q, Pattern = %q", s.inner.PathValue("id"), s.inner.Pattern)
	}
}

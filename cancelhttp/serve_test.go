package cancelhttp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/cancelhttp"
	"github.com/go-cancellation/cancellation/internal/testlog"
)

// notifyListener closes closed when it is closed.
type notifyListener struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *notifyListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// serveAsync runs cancelhttp.Serve on 127.0.0.1:0 and returns the base URL,
// a function that begins the shutdown, and the channel of Serve's result.
func serveAsync(t *testing.T, ctx context.Context, srv *http.Server, opts ...cancelhttp.ServeOption) (url string, ln *notifyListener, shutdown context.CancelFunc, done <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = &notifyListener{Listener: l, closed: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	c, exited := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(exited)
		c <- cancelhttp.Serve(ctx, srv, ln, opts...)
	}()
	t.Cleanup(func() {
		cancel()
		testlog.Recv(t, "Serve to return", exited)
	})
	return "http://" + l.Addr().String(), ln, cancel, c
}

func get(client *http.Client, url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

type response struct {
	code int
	body string
	err  error
}

func getAsync(client *http.Client, url string) <-chan response {
	c := make(chan response, 1)
	go func() {
		code, body, err := get(client, url)
		c <- response{code, body, err}
	}()
	return c
}

func TestServeGracePeriodLetsRequestsFinish(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	canceled := make(chan bool, 1)
	h := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		canceled <- r.Context().Err() != nil
		io.WriteString(w, "finished")
	}), cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))
	srv := &http.Server{Handler: h}
	url, ln, shutdown, done := serveAsync(t, context.Background(), srv,
		cancelhttp.WithGracePeriod(testlog.TimeLeft(t)), cancelhttp.WithServeLogger(slog.New(slog.DiscardHandler)))
	resp := getAsync(h1Client(t), url)
	testlog.Recv(t, "handler start", started)

	shutdown()
	testlog.Recv(t, "listener close", ln.closed)
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("a new connection was accepted during shutdown")
	}
	close(release)
	if r := testlog.Recv(t, "response", resp); r.err != nil || r.code != 200 || r.body != "finished" {
		t.Errorf("response = %+v, want 200 finished", r)
	}
	if testlog.Recv(t, "handler end", canceled) {
		t.Error("the request was canceled within the grace period")
	}
	if err := testlog.Recv(t, "Serve", done); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
}

func TestServeCancelsAfterGrace(t *testing.T) {
	t.Parallel()
	const grace = 50 * time.Millisecond
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			logs := testlog.NewSink()
			started := make(chan struct{})
			canceledAt := make(chan time.Time, 1)
			h := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				<-r.Context().Done()
				at, _ := cancelhttp.CanceledAt(r.Context())
				canceledAt <- at
				fmt.Fprintf(w, "stopped: %v, %v", r.Context().Err(), context.Cause(r.Context()))
			}), cancelhttp.WithLogger(logs.Logger()))
			var protocols http.Protocols
			protocols.SetHTTP1(true)
			protocols.SetUnencryptedHTTP2(true)
			srv := &http.Server{Handler: h, Protocols: &protocols}
			url, _, shutdown, done := serveAsync(t, context.Background(), srv,
				cancelhttp.WithGracePeriod(grace), cancelhttp.WithServeLogger(logs.Logger()))
			client := h1Client(t)
			if proto == "HTTP/2" {
				client = h2cClient(t)
			}
			resp := getAsync(client, url)
			testlog.Recv(t, "handler start", started)

			begin := time.Now()
			shutdown()
			want := "stopped: context canceled, server shutting down"
			if r := testlog.Recv(t, "response", resp); r.err != nil || r.code != 200 || r.body != want {
				t.Errorf("response = %+v, want 200 %q", r, want)
			}
			if at := testlog.Recv(t, "cancel time", canceledAt); at.Sub(begin) < grace {
				t.Errorf("canceled %v after shutdown began, before the grace period of %v", at.Sub(begin), grace)
			}
			if err := testlog.Recv(t, "Serve", done); err != nil {
				t.Errorf("Serve = %v, want nil", err)
			}
			logs.Wait(t, "grace record", func(r testlog.Record) bool { return r.Str("msg") == "grace period over, canceling in-flight requests" })
			logs.Wait(t, "shut down record", func(r testlog.Record) bool { return r.Str("msg") == "shut down" })
			r := logs.Wait(t, "access log", func(r testlog.Record) bool { return r.Str("msg") == "request" })
			if r.Str("cause") != "server shutting down" || r.Num("status") != 200 {
				t.Errorf("access log = %v, want cause server shutting down, status 200", r)
			}
		})
	}
}

func TestServeStopTimeout(t *testing.T) {
	t.Parallel()
	started, release, exited := make(chan struct{}), make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(exited)
		close(started)
		<-release // ignores its context
	})
	srv := &http.Server{Handler: h}
	url, _, shutdown, done := serveAsync(t, context.Background(), srv,
		cancelhttp.WithGracePeriod(0), cancelhttp.WithStopTimeout(50*time.Millisecond),
		cancelhttp.WithServeLogger(slog.New(slog.DiscardHandler)))
	resp := getAsync(h1Client(t), url)
	testlog.Recv(t, "handler start", started)
	shutdown()
	if err := testlog.Recv(t, "Serve", done); !errors.Is(err, cancelhttp.ErrStopTimeout) {
		t.Errorf("Serve = %v, want ErrStopTimeout", err)
	}
	if r := testlog.Recv(t, "response", resp); r.err == nil {
		t.Errorf("response = %+v, want an error: the connection was closed", r)
	}
	close(release)
	testlog.Recv(t, "handler exit", exited)
}

func TestServeError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	c := make(chan error, 1)
	go func() { c <- cancelhttp.Serve(context.Background(), &http.Server{}, ln) }()
	if err := testlog.Recv(t, "Serve", c); err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve on a closed listener = %v, want its accept error", err)
	}
}

func TestServeValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(ctx context.Context, srv *http.Server) context.Context
	}{
		{"from Serve's context", func(ctx context.Context, srv *http.Server) context.Context {
			return context.WithValue(ctx, ctxKey("k"), "v")
		}},
		{"from the server's BaseContext", func(ctx context.Context, srv *http.Server) context.Context {
			srv.BaseContext = func(net.Listener) context.Context { return context.WithValue(ctx, ctxKey("k"), "v") }
			return ctx
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &http.Server{Handler: cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, r.Context().Value(ctxKey("k")))
			}), cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))}
			ctx := tt.setup(context.Background(), srv)
			url, _, shutdown, done := serveAsync(t, ctx, srv, cancelhttp.WithServeLogger(slog.New(slog.DiscardHandler)))
			if _, body, err := get(h1Client(t), url); err != nil || body != "v" {
				t.Errorf("value = %q, %v; want v", body, err)
			}
			shutdown()
			if err := testlog.Recv(t, "Serve", done); err != nil {
				t.Errorf("Serve = %v", err)
			}
		})
	}
}

func TestServeTLS(t *testing.T) {
	t.Parallel()
	// Borrow httptest's certificate and a client that trusts it.
	ts := httptest.NewUnstartedServer(nil)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	certs, client := ts.TLS.Certificates, ts.Client()
	ts.Close()
	t.Cleanup(client.CloseIdleConnections)

	srv := &http.Server{
		Handler: cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, r.Proto)
		}), cancelhttp.WithLogger(slog.New(slog.DiscardHandler))),
		TLSConfig: &tls.Config{Certificates: certs},
	}
	url, _, shutdown, done := serveAsync(t, context.Background(), srv, cancelhttp.WithServeLogger(slog.New(slog.DiscardHandler)))
	url = "https" + url[len("http"):]
	if code, body, err := get(client, url); err != nil || code != 200 || body != "HTTP/2.0" {
		t.Errorf("got %d %q %v; want 200 HTTP/2.0", code, body, err)
	}
	shutdown()
	if err := testlog.Recv(t, "Serve", done); err != nil {
		t.Errorf("Serve = %v", err)
	}
}

package cancelhttp_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/go-cancellation/cancellation/cancelhttp"
	"github.com/go-cancellation/cancellation/internal/testlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// accessLog matches the access-log record of the request with the given id.
func accessLog(id string) func(testlog.Record) bool {
	return func(r testlog.Record) bool { return r.Str("msg") == "request" && r.Str("request_id") == id }
}

// server is a real server on 127.0.0.1:0 run by cancelhttp.Serve.
type server struct {
	URL    string
	Addr   string
	Logs   *testlog.Sink
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

type serverConfig struct {
	handlerOpts []cancelhttp.Option
	serveOpts   []cancelhttp.ServeOption
	setup       func(*http.Server)
}

// startServer serves h behind cancelhttp.Handler with a JSON access log
// into the returned server's Logs. The server is shut down at the end of
// the test, with a short grace period.
func startServer(t *testing.T, h http.Handler, cfg serverConfig) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := testlog.NewSink()
	opts := append([]cancelhttp.Option{cancelhttp.WithLogger(logs.Logger())}, cfg.handlerOpts...)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:   cancelhttp.Handler(h, opts...),
		Protocols: &protocols,
		ErrorLog:  slog.NewLogLogger(logs.Logger().Handler(), slog.LevelWarn),
	}
	if cfg.setup != nil {
		cfg.setup(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(), Logs: logs, cancel: cancel, done: make(chan error, 1)}
	serveOpts := append([]cancelhttp.ServeOption{
		cancelhttp.WithGracePeriod(0),
		cancelhttp.WithStopTimeout(10 * time.Second),
		cancelhttp.WithServeLogger(logs.Logger()),
	}, cfg.serveOpts...)
	go func() { s.done <- cancelhttp.Serve(ctx, srv, ln, serveOpts...) }()
	t.Cleanup(func() {
		if err := s.shutdown(t); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// shutdown cancels Serve's context and returns its result. It may be called
// more than once.
func (s *server) shutdown(t *testing.T) error {
	t.Helper()
	s.once.Do(func() {
		s.cancel()
		s.err = testlog.Recv(t, "Serve to return", s.done)
	})
	return s.err
}

// h2cClient returns a client speaking HTTP/2 with prior knowledge over TCP.
func h2cClient(t *testing.T) *http.Client {
	t.Helper()
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// h1Client returns an HTTP/1.1 client whose idle connections are closed at
// the end of the test.
func h1Client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

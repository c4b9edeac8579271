package cancelhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/go-cancellation/cancellation/cancelhttp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// record is one JSON log record.
type record map[string]any

func (r record) str(key string) string {
	v, _ := r[key].(string)
	return v
}

func (r record) num(key string) float64 {
	v, _ := r[key].(float64)
	return v
}

// logSink collects the JSON records a slog.JSONHandler writes to it, and
// lets tests wait for one. Safe for concurrent use.
type logSink struct {
	mu      sync.Mutex
	records []record
	changed chan struct{} // closed and replaced on every write
	partial bytes.Buffer
}

func newLogSink() *logSink { return &logSink{changed: make(chan struct{})} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial.Write(p)
	for {
		line, err := s.partial.ReadBytes('\n')
		if err != nil {
			// Keep the incomplete line for the next write.
			rest := append([]byte(nil), line...)
			s.partial.Reset()
			s.partial.Write(rest)
			break
		}
		var r record
		if err := json.Unmarshal(line, &r); err != nil {
			r = record{"msg": string(line), "unparsed": true}
		}
		s.records = append(s.records, r)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

func (s *logSink) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// all returns a copy of the records so far.
func (s *logSink) all() []record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]record(nil), s.records...)
}

// wait returns the first record for which match is true, waiting for it
// until the test's deadline (or 30s).
func (s *logSink) wait(t *testing.T, what string, match func(record) bool) record {
	t.Helper()
	timeout := time.NewTimer(timeLeft(t))
	defer timeout.Stop()
	for {
		s.mu.Lock()
		for _, r := range s.records {
			if match(r) {
				s.mu.Unlock()
				return r
			}
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("timed out waiting for log record: %s; have:\n%s", what, s.dump())
		}
	}
}

func (s *logSink) dump() string {
	var b strings.Builder
	for _, r := range s.all() {
		fmt.Fprintln(&b, r)
	}
	return b.String()
}

// accessLog matches the access-log record of the request with the given id.
func accessLog(id string) func(record) bool {
	return func(r record) bool { return r.str("msg") == "request" && r.str("request_id") == id }
}

// timeLeft is how long a test may still wait for something that must
// happen: until shortly before the test binary's deadline, at most 30s.
func timeLeft(t *testing.T) time.Duration {
	t.Helper()
	left := 30 * time.Second
	if dl, ok := t.Deadline(); ok {
		if d := time.Until(dl) - 5*time.Second; d < left {
			left = max(d, time.Second)
		}
	}
	return left
}

// recv receives from c, failing the test when it takes longer than
// timeLeft.
func recv[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	timeout := time.NewTimer(timeLeft(t))
	defer timeout.Stop()
	select {
	case v := <-c:
		return v
	case <-timeout.C:
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// server is a real server on 127.0.0.1:0 run by cancelhttp.Serve.
type server struct {
	URL    string
	Addr   string
	Logs   *logSink
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
	logs := newLogSink()
	opts := append([]cancelhttp.Option{cancelhttp.WithLogger(logs.logger())}, cfg.handlerOpts...)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:   cancelhttp.Handler(h, opts...),
		Protocols: &protocols,
		ErrorLog:  slog.NewLogLogger(logs.logger().Handler(), slog.LevelWarn),
	}
	if cfg.setup != nil {
		cfg.setup(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(), Logs: logs, cancel: cancel, done: make(chan error, 1)}
	serveOpts := append([]cancelhttp.ServeOption{
		cancelhttp.WithGracePeriod(0),
		cancelhttp.WithStopTimeout(10 * time.Second),
		cancelhttp.WithServeLogger(logs.logger()),
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
		s.err = recv(t, "Serve to return", s.done)
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

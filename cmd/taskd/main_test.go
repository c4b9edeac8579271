package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/go-cancellation/cancellation/internal/testbin"
	"github.com/go-cancellation/cancellation/internal/testlog"
)

// TestMain removes the binary the tests built (see taskdBinary) and checks
// for leaked goroutines.
func TestMain(m *testing.M) { testbin.Main(m) }

// taskdBinary builds the command once per test binary and returns its path.
func taskdBinary(t *testing.T) string {
	t.Helper()
	return testbin.Build(t, "taskd", "")
}

// msgID matches records with the message msg and the request id.
func msgID(msg, id string) func(testlog.Record) bool {
	return func(r testlog.Record) bool { return r.Str("msg") == msg && r.Str("request_id") == id }
}

func iterationOf(id string) func(testlog.Record) bool {
	return func(r testlog.Record) bool {
		return r.Str("request_id") == id && strings.HasPrefix(r.Str("msg"), "Iteration ")
	}
}

// taskd is a Main running in the test process on 127.0.0.1:0.
type taskd struct {
	Addr string
	URL  string
	Logs *testlog.Sink
	stop context.CancelFunc
	done chan error
	once sync.Once
	err  error
}

// startTaskd runs Main.Run with args (plus -log-format json) until the end
// of the test.
func startTaskd(t *testing.T, args ...string) *taskd {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startTaskdOn(t, ln, args...)
}

// startTaskdOn is startTaskd serving ln.
func startTaskdOn(t *testing.T, ln net.Listener, args ...string) *taskd {
	t.Helper()
	logs := testlog.NewSink()
	m := &Main{Stderr: logs, Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	d := &taskd{Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String(), Logs: logs, stop: cancel, done: make(chan error, 1)}
	args = append([]string{"-log-format", "json", "-shutdown-grace", "0", "-data", t.TempDir()}, args...)
	go func() { d.done <- m.Run(ctx, args) }()
	t.Cleanup(func() {
		if err := d.shutdown(t); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return d
}

func (d *taskd) shutdown(t *testing.T) error {
	t.Helper()
	d.once.Do(func() {
		d.stop()
		d.err = testlog.Recv(t, "Run to return", d.done)
	})
	return d.err
}

func h1Client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

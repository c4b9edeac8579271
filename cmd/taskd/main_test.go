package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// taskdBinary builds the command once per test binary and returns its path.
func taskdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		if binDir, buildErr = os.MkdirTemp("", "taskd-test-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "taskd")
		out, err := exec.Command(goTool, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

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

// logSink collects the JSON log lines written to it and lets tests wait
// for one. Lines that are not JSON are kept with the text as msg. Safe for
// concurrent use.
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
			rest := append([]byte(nil), line...)
			s.partial.Reset()
			s.partial.Write(rest)
			break
		}
		var r record
		if err := json.Unmarshal(line, &r); err != nil {
			r = record{"msg": strings.TrimSpace(string(line)), "text": true}
		}
		s.records = append(s.records, r)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

func (s *logSink) all() []record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]record(nil), s.records...)
}

// count returns how many records so far match.
func (s *logSink) count(match func(record) bool) int {
	n := 0
	for _, r := range s.all() {
		if match(r) {
			n++
		}
	}
	return n
}

// waitN waits until n records match and returns them.
func (s *logSink) waitN(t *testing.T, what string, n int, match func(record) bool) []record {
	t.Helper()
	timeout := time.NewTimer(timeLeft(t))
	defer timeout.Stop()
	for {
		s.mu.Lock()
		var found []record
		for _, r := range s.records {
			if match(r) {
				found = append(found, r)
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if len(found) >= n {
			return found
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %d log records: %s (have %d); log:\n%s", n, what, len(found), s.dump())
		}
	}
}

func (s *logSink) wait(t *testing.T, what string, match func(record) bool) record {
	t.Helper()
	return s.waitN(t, what, 1, match)[0]
}

func (s *logSink) dump() string {
	var b strings.Builder
	for _, r := range s.all() {
		fmt.Fprintln(&b, r)
	}
	return b.String()
}

// msgID matches records with the message msg and the request id.
func msgID(msg, id string) func(record) bool {
	return func(r record) bool { return r.str("msg") == msg && r.str("request_id") == id }
}

func iterationOf(id string) func(record) bool {
	return func(r record) bool {
		return r.str("request_id") == id && strings.HasPrefix(r.str("msg"), "Iteration ")
	}
}

// timeLeft is how long a test may wait for something that must happen:
// until shortly before the test binary's deadline, at most 30s.
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

// taskd is a Main running in the test process on 127.0.0.1:0.
type taskd struct {
	Addr string
	URL  string
	Logs *logSink
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
	logs := newLogSink()
	m := &Main{Stderr: logs, Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	d := &taskd{Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String(), Logs: logs, stop: cancel, done: make(chan error, 1)}
	args = append([]string{"-log-format", "json", "-shutdown-grace", "0"}, args...)
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
		d.err = recv(t, "Run to return", d.done)
	})
	return d.err
}

func h1Client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

package taskhttp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelhttp"
	"github.com/go-cancellation/cancellation/internal/doccheck"
	"github.com/go-cancellation/cancellation/internal/natstest"
	"github.com/go-cancellation/cancellation/internal/testlog"
	"github.com/go-cancellation/cancellation/task"
	"github.com/go-cancellation/cancellation/task/natsstore"
	"github.com/go-cancellation/cancellation/task/taskhttp"
)

func TestMain(m *testing.M) { os.Exit(natstest.Main(m)) }

func TestDocs(t *testing.T) { doccheck.Check(t, ".") }

var buckets atomic.Int64

// gate is a kind whose tasks run until released or canceled.
type gate struct {
	started chan string
	release chan struct{}
}

func (g *gate) kind() task.Kind {
	return task.Kind{Name: "gate", Run: func(tok cancellation.Token, run *task.Run) (string, error) {
		g.started <- run.ID()
		run.Progress(1, 2, "half way")
		select {
		case <-g.release:
			return "released", nil
		case <-tok.Done():
			return "", tok.Err()
		}
	}}
}

type env struct {
	url     string
	runner  *task.Runner
	api     *taskhttp.API
	gate    *gate
	metrics *taskhttp.Metrics
}

// newEnv serves the API of a runner (concurrency 1) on 127.0.0.1:0 behind
// cancelhttp's middleware.
func newEnv(t *testing.T) *env {
	t.Helper()
	store := natstest.Store(t, natsstore.Options{Bucket: fmt.Sprintf("h%d", buckets.Add(1))})
	e := &env{gate: &gate{started: make(chan string, 10), release: make(chan struct{})}}
	e.metrics = taskhttp.NewMetrics(store)
	logger := slog.New(slog.DiscardHandler)
	var err error
	e.runner, err = task.NewRunner(task.Config{
		Store: store, Kinds: task.NewRegistry(task.LongRunning(), e.gate.kind()),
		Node: "node-a", Concurrency: 1, OnStop: e.metrics.Stopped, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.runner.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.api = taskhttp.New(e.runner, taskhttp.Options{Metrics: e.metrics, Heartbeat: 50 * time.Millisecond, Logger: logger})
	mux := http.NewServeMux()
	e.api.Register(mux)
	ts := httptest.NewServer(cancelhttp.Handler(mux, cancelhttp.WithLogger(logger)))
	e.url = ts.URL
	t.Cleanup(func() {
		e.api.CloseStreams()
		ts.Close()
		e.runner.Shutdown(context.Background(), 0)
	})
	return e
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) task(t *testing.T) *task.Task {
	t.Helper()
	wantJSONHeaders(t, r, "application/json")
	var tk task.Task
	if err := json.Unmarshal(r.body, &tk); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return &tk
}

// do sends a request and reads the whole response.
func do(t *testing.T, method, url, contentType, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(testlog.DeadlineContext(t), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, b := testlog.Do(t, http.DefaultClient, req)
	return response{resp.StatusCode, resp.Header, b}
}

// wantProblem checks an RFC 9457 answer.
func wantProblem(t *testing.T, r response, status int, detail string) {
	t.Helper()
	var p struct {
		Type, Title, Detail string
		Status              int
	}
	if r.status != status || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d, Content-Type %q, body %s; want %d problem+json", r.status, r.header.Get("Content-Type"), r.body, status)
	}
	wantJSONHeaders(t, r, "application/problem+json")
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != status || p.Title == "" || p.Type == "" || !strings.Contains(p.Detail, detail) {
		t.Fatalf("problem %s (%v), want detail containing %q", r.body, err, detail)
	}
}

// wantJSONHeaders checks the headers of a JSON answer: its Content-Type,
// not to be sniffed, not to be stored.
func wantJSONHeaders(t *testing.T, r response, contentType string) {
	t.Helper()
	h := r.header
	if h.Get("Content-Type") != contentType || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("Content-Type %q, X-Content-Type-Options %q, Cache-Control %q; want %s, nosniff, no-store",
			h.Get("Content-Type"), h.Get("X-Content-Type-Options"), h.Get("Cache-Control"), contentType)
	}
}

// sseEvent is one event of a stream.
type sseEvent struct {
	event, id, data string
	comment         bool
}

// sse is an open event stream.
type sse struct {
	resp   *http.Response
	events chan sseEvent
}

// openSSE opens an event stream; it returns once the headers arrived.
func openSSE(t *testing.T, url string, lastID string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(testlog.DeadlineContext(t))
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &sse{resp: resp, events: make(chan sseEvent, 100)}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	go func() {
		defer close(done)
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = true
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return s
}

// next returns the next task event (skipping heartbeats); ok is false when
// the stream ended.
func (s *sse) next(t *testing.T) (ev sseEvent, tk *task.Task, ok bool) {
	t.Helper()
	for {
		select {
		case ev, ok = <-s.events:
			if !ok {
				return ev, nil, false
			}
			if ev.comment && ev.event == "" {
				continue
			}
			tk = new(task.Task)
			if ev.event != "task" || ev.id == "" || json.Unmarshal([]byte(ev.data), tk) != nil {
				t.Fatalf("malformed event %+v", ev)
			}
			return ev, tk, true
		case <-testlog.DeadlineContext(t).Done():
			t.Fatal("no event before the deadline")
		}
	}
}

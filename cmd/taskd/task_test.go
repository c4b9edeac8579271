package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/cancelhttp"
	"github.com/go-cancellation/cancellation/internal/testlog"
)

// do sends a GET with the request id and returns status, body and headers.
func do(t *testing.T, client *http.Client, method, url, id string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-Id", id)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, b := testlog.Do(t, client, req)
	return resp.StatusCode, string(b), resp.Header
}

func TestTaskCompletes(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	code, body, hdr := do(t, h1Client(t), "GET", d.URL+"/longrunningtask?iterations=3&interval=2ms", "done-1", nil)
	if code != 200 || body != "Long-running task completed successfully.\n" {
		t.Fatalf("got %d %q", code, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if id := hdr.Get("X-Request-Id"); id != "done-1" {
		t.Errorf("X-Request-Id = %q, want done-1", id)
	}
	its := d.Logs.WaitN(t, "iterations", 3, iterationOf("done-1"))
	for i, r := range its {
		if want := fmt.Sprintf("Iteration %d of 3 completed.", i+1); r.Str("msg") != want {
			t.Errorf("iteration record %d: %q, want %q", i, r.Str("msg"), want)
		}
	}
	a := d.Logs.Wait(t, "access log", msgID("request", "done-1"))
	if a.Num("status") != 200 || a.Str("path") != "/longrunningtask" || a.Str("method") != "GET" {
		t.Errorf("access log = %v", a)
	}
	if a.Num("duration_ms") < 6 {
		t.Errorf("access log duration = %v, want >= 6ms", a["duration_ms"])
	}
}

func TestTaskZeroInterval(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	code, body, _ := do(t, h1Client(t), "GET", d.URL+"/longrunningtask?iterations=10&interval=0s", "zero", nil)
	if code != 200 || body != "Long-running task completed successfully.\n" {
		t.Fatalf("got %d %q", code, body)
	}
	if n := d.Logs.Count(iterationOf("zero")); n != 10 {
		t.Errorf("%d iteration records, want 10", n)
	}
}

func TestTaskBadParameters(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	client := h1Client(t)
	tests := []struct {
		name, query string
		want        []string // substrings of the 400 body
	}{
		{"iterations zero", "iterations=0", []string{"iterations", `"0"`, "1 to 100000"}},
		{"iterations too many", "iterations=100001", []string{"iterations", "1 to 100000"}},
		{"iterations negative", "iterations=-5", []string{"iterations", "1 to 100000"}},
		{"iterations not a number", "iterations=abc", []string{"iterations", `"abc"`}},
		{"iterations fraction", "iterations=1.5", []string{"iterations"}},
		{"iterations empty", "iterations=", []string{"iterations"}},
		{"interval negative", "interval=-1s", []string{"interval", "0s to 1h"}},
		{"interval too long", "interval=1h0m1s", []string{"interval", "0s to 1h"}},
		{"interval no unit", "interval=5", []string{"interval", `"5"`}},
		{"interval garbage", "interval=soon", []string{"interval"}},
		{"interval empty", "interval=", []string{"interval"}},
		{"malformed query", "iterations=%zz", []string{"malformed query"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, body, _ := do(t, client, "GET", d.URL+"/longrunningtask?"+tt.query, "bad", nil)
			if code != http.StatusBadRequest {
				t.Errorf("status %d, want 400", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("body %q does not contain %q", body, w)
				}
			}
		})
	}
}

func TestTaskParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query    string
		n        int
		interval time.Duration
	}{
		{"", 20, time.Second},
		{"iterations=1", 1, time.Second},
		{"iterations=100000&interval=0", 100000, 0},
		{"interval=1h", 20, time.Hour},
		{"interval=250ms&iterations=7&other=x", 7, 250 * time.Millisecond},
		{"iterations=3&iterations=900000", 3, time.Second}, // the first value counts
	}
	for _, tt := range tests {
		n, interval, err := parseTaskParams(tt.query)
		if err != nil || n != tt.n || interval != tt.interval {
			t.Errorf("parseTaskParams(%q) = %d, %v, %v; want %d, %v", tt.query, n, interval, err, tt.n, tt.interval)
		}
	}
}

func TestTaskMethodNotAllowed(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	client := h1Client(t)
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			code, body, hdr := do(t, client, method, d.URL+"/longrunningtask?iterations=1&interval=0s", "m", nil)
			if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET, HEAD" || !strings.HasSuffix(body, "use GET\n") {
				t.Errorf("%s: status %d, Allow %q, body %q; want 405, GET, HEAD", method, code, hdr.Get("Allow"), body)
			}
		})
	}
}

// HEAD is served as GET without a body, as net/http's mux does for GET
// patterns.
func TestTaskHead(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	code, body, hdr := do(t, h1Client(t), "HEAD", d.URL+"/longrunningtask?iterations=1&interval=0s", "head", nil)
	if code != http.StatusOK || body != "" || hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("HEAD: %d %q %v; want 200, no body", code, body, hdr)
	}
	a := d.Logs.Wait(t, "access log", msgID("request", "head"))
	if a.Str("method") != "HEAD" || a.Num("status") != 200 || a.Num("bytes") != 0 {
		t.Errorf("access log %v", a)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	client := h1Client(t)
	for _, path := range []string{"/nope", "/longrunningtask/", "/longrunningtask/x", "/LongRunningTask"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			if code, _, _ := do(t, client, "GET", d.URL+path, "nf", nil); code != http.StatusNotFound {
				t.Errorf("GET %s: status %d, want 404", path, code)
			}
		})
	}
}

// checkCancelled checks the records of a request canceled by the client:
// the cancellation record and the access log, which is written after the
// handler returned.
func checkCancelled(t *testing.T, logs *testlog.Sink, id, cause string, completed int) {
	t.Helper()
	a := logs.Wait(t, "access log of "+id, msgID("request", id))
	c := logs.Wait(t, "cancellation of "+id, msgID("Long-running task cancelled.", id))
	if c.Str("cause") != cause || c.Num("completed") != float64(completed) || c.Num("step") != float64(completed+1) {
		t.Errorf("%s: cancellation record %v; want cause %q, completed %d", id, c, cause, completed)
	}
	if _, ok := c["stop_latency_ms"]; !ok {
		t.Errorf("%s: cancellation record without stop_latency: %v", id, c)
	}
	wantStatus := 200.0
	if cause == "client disconnected" {
		wantStatus = cancelhttp.StatusClientClosedRequest
	}
	if a.Num("status") != wantStatus || a.Str("cause") != cause {
		t.Errorf("%s: access log %v; want status %v and cause %q", id, a, wantStatus, cause)
	}
	if _, ok := a["stop_latency_ms"]; !ok {
		t.Errorf("%s: access log without stop_latency: %v", id, a)
	}
}

func TestTaskClientDisconnect(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	c := testlog.RawGet(t, d.Addr, "/longrunningtask?iterations=1&interval=1h", "gone")
	d.Logs.Wait(t, "start", msgID("Long-running task started.", "gone"))
	c.Close()
	checkCancelled(t, d.Logs, "gone", "client disconnected", 0)
	if n := d.Logs.Count(iterationOf("gone")); n != 0 {
		t.Errorf("%d steps completed after the client left during step 1", n)
	}
}

func TestTaskClientDisconnectMidRun(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	c := testlog.RawGet(t, d.Addr, "/longrunningtask?iterations=1000&interval=50ms", "mid")
	d.Logs.WaitN(t, "two steps", 2, iterationOf("mid"))
	before := d.Logs.Count(iterationOf("mid"))
	c.Close()
	a := d.Logs.Wait(t, "access log", msgID("request", "mid"))
	after := d.Logs.Count(iterationOf("mid"))
	// The step in progress when the client left may finish before the
	// server notices (microseconds); no step starts after that.
	if after > before+1 {
		t.Errorf("%d steps completed after the disconnect, want at most the one in progress", after-before)
	}
	cr := d.Logs.Wait(t, "cancellation", msgID("Long-running task cancelled.", "mid"))
	if int(cr.Num("completed")) != after || cr.Str("cause") != "client disconnected" {
		t.Errorf("cancellation record %v; want completed=%d, cause client disconnected", cr, after)
	}
	if a.Num("status") != cancelhttp.StatusClientClosedRequest {
		t.Errorf("access log %v, want status 499", a)
	}
}

func TestTaskManyClientsDisconnect(t *testing.T) {
	t.Parallel()
	const n = 100
	d := startTaskd(t)
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = testlog.RawGet(t, d.Addr, "/longrunningtask?iterations=1&interval=1h", fmt.Sprintf("many-%03d", i))
	}
	isStart := func(r testlog.Record) bool {
		return r.Str("msg") == "Long-running task started." && strings.HasPrefix(r.Str("request_id"), "many-")
	}
	d.Logs.WaitN(t, "all started", n, isStart)
	for _, c := range conns {
		c.Close()
	}
	isAccess := func(r testlog.Record) bool {
		return r.Str("msg") == "request" && strings.HasPrefix(r.Str("request_id"), "many-")
	}
	for _, a := range d.Logs.WaitN(t, "all access logs", n, isAccess) {
		if a.Num("status") != cancelhttp.StatusClientClosedRequest || a.Str("cause") != "client disconnected" {
			t.Errorf("access log %v; want 499, client disconnected", a)
		}
	}
	for i := range n {
		checkCancelled(t, d.Logs, fmt.Sprintf("many-%03d", i), "client disconnected", 0)
	}
	if k := d.Logs.Count(func(r testlog.Record) bool {
		return strings.HasPrefix(r.Str("request_id"), "many-") && strings.HasPrefix(r.Str("msg"), "Iteration ")
	}); k != 0 {
		t.Errorf("%d steps completed", k)
	}
}

func TestTaskHTTP2StreamReset(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	// A first request shows the connection speaks HTTP/2.
	resp, err := client.Get(d.URL + "/longrunningtask?iterations=1&interval=0s")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("taskd answered over %s, want HTTP/2", resp.Proto)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", d.URL+"/longrunningtask?iterations=1&interval=1h", nil)
	req.Header.Set("X-Request-Id", "h2-reset")
	errc := testlog.DoAsync(client, req)
	d.Logs.Wait(t, "start", msgID("Long-running task started.", "h2-reset"))
	cancel() // RST_STREAM
	if err := testlog.Recv(t, "client error", errc); !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v, want context.Canceled", err)
	}
	checkCancelled(t, d.Logs, "h2-reset", "client disconnected", 0)
}

func TestTaskInboundDeadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		header map[string]string
		cause  string
		min    time.Duration
	}{
		{"Connect-Timeout-Ms", nil, map[string]string{"Connect-Timeout-Ms": "60"},
			`deadline exceeded: Connect-Timeout-Ms "60" (60ms)`, 60 * time.Millisecond},
		{"Grpc-Timeout", nil, map[string]string{"Grpc-Timeout": "60m"},
			`deadline exceeded: Grpc-Timeout "60m" (60ms)`, 60 * time.Millisecond},
		{"capped", []string{"-max-request-timeout", "60ms"}, map[string]string{"Grpc-Timeout": "1H"},
			`deadline exceeded: Grpc-Timeout "1H" (capped to 60ms by the server maximum)`, 60 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := startTaskd(t, tt.args...)
			id := "deadline-" + tt.name
			start := time.Now()
			code, body, _ := do(t, h1Client(t), "GET", d.URL+"/longrunningtask?iterations=1&interval=1h", id, tt.header)
			if elapsed := time.Since(start); elapsed < tt.min {
				t.Errorf("answered after %v, before the deadline of %v", elapsed, tt.min)
			}
			if code != 200 || body != "Long-running task cancelled successfully.\n" {
				t.Errorf("got %d %q", code, body)
			}
			checkCancelled(t, d.Logs, id, tt.cause, 0)
		})
	}
}

func TestTaskMalformedTimeoutHeader(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	for _, h := range []map[string]string{{"Connect-Timeout-Ms": "soon"}, {"Grpc-Timeout": "10s"}} {
		code, body, _ := do(t, h1Client(t), "GET", d.URL+"/longrunningtask?iterations=1&interval=0s", "malformed", h)
		if code != http.StatusBadRequest || !strings.Contains(body, "malformed") {
			t.Errorf("%v: got %d %q, want 400 malformed", h, code, body)
		}
	}
	if n := d.Logs.Count(msgID("Long-running task started.", "malformed")); n != 0 {
		t.Errorf("the task started %d times", n)
	}
}

func TestTaskFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		step func(context.Context, int) error
	}{
		{"error", func(_ context.Context, i int) error {
			if i == 2 {
				return errors.New("disk on fire")
			}
			return nil
		}},
		{"panic", func(_ context.Context, i int) error {
			if i == 2 {
				panic("disk on fire")
			}
			return nil
		}},
		{"error wrapping Canceled while the token is live", func(_ context.Context, i int) error {
			if i == 2 {
				return fmt.Errorf("dependency: %w", context.Canceled)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := testlog.NewSink()
			logger := slog.New(slog.NewJSONHandler(logs, nil))
			ts := httptest.NewServer(cancelhttp.Handler(&taskHandler{logger: logger, step: tt.step}, cancelhttp.WithLogger(logger)))
			defer ts.Close()
			code, body, _ := do(t, h1Client(t), "GET", ts.URL+"/longrunningtask?iterations=3&interval=0s", "fail", nil)
			if code != 500 || body != "Internal error.\n" {
				t.Errorf("got %d %q, want 500 Internal error.", code, body)
			}
			r := logs.Wait(t, "failure record", msgID("Long-running task failed.", "fail"))
			if !strings.Contains(r.Str("error"), "disk on fire") && !strings.Contains(r.Str("error"), "dependency") {
				t.Errorf("failure record %v does not say what failed", r)
			}
			if r.Num("completed") != 1 {
				t.Errorf("failure record %v, want completed=1", r)
			}
		})
	}
}

func TestTaskWithoutMiddleware(t *testing.T) {
	t.Parallel()
	// The handler works behind plain net/http too: it links its own token.
	logs := testlog.NewSink()
	ts := httptest.NewServer(&taskHandler{logger: slog.New(slog.NewJSONHandler(logs, nil))})
	defer ts.Close()
	code, body, _ := do(t, h1Client(t), "GET", ts.URL+"/longrunningtask?iterations=2&interval=1ms", "plain", nil)
	if code != 200 || body != "Long-running task completed successfully.\n" {
		t.Errorf("got %d %q", code, body)
	}
}

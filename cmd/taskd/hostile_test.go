package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
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

// rawConn opens a TCP connection to addr, closed at the end of the test.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// noticeBound is how long after a client closed its connection the test
// accepts to see the cancellation: the requirement is 100 ms, the bound
// leaves room for a loaded 2-core machine (measured values are in
// docs/taskd.md; without the fix, the cancellation never comes).
const noticeBound = 2 * time.Second

// TestBinaryClientWithBodyLeaves: a client that leaves is noticed when its
// request carried a body the handler does not read, or pipelined bytes
// that arrived with it. net/http watches the connection only once the body
// has been read to its end; cancelhttp.IgnoreBody reads it.
func TestBinaryClientWithBodyLeaves(t *testing.T) {
	t.Parallel()
	const get = "GET /longrunningtask?iterations=1&interval=1h HTTP/1.1\r\nHost: t\r\nX-Request-Id: %s\r\n"
	tests := []struct {
		name      string
		request   string // after the request line, Host and X-Request-Id
		continue_ string // if set, the body sent after reading 100 Continue
	}{
		{"content-length", "Content-Length: 5\r\n\r\nhello", ""},
		{"chunked", "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", ""},
		{"expect-continue", "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n", "hello"},
		{"pipelined", "\r\nGET /longrunningtask?iterations=1&interval=0s HTTP/1.1\r\nHost: t\r\n\r\n", ""},
		{"body-and-pipelined", "Content-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: t\r\n\r\n", ""},
	}
	d := startBinary(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := "body-" + tt.name
			c := rawConn(t, d.Addr)
			send(t, c, fmt.Sprintf(get, id)+tt.request)
			if tt.continue_ != "" {
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 Continue") {
					t.Fatalf("read %q, %v; want 100 Continue", line, err)
				}
				send(t, c, tt.continue_)
			}
			d.Logs.Wait(t, "start", msgID("Long-running task started.", id))
			closed := time.Now()
			c.Close()
			a := d.Logs.Wait(t, "access log", msgID("request", id))
			took := time.Since(closed)
			if a.Num("status") != cancelhttp.StatusClientClosedRequest || a.Str("canceled") != "client" {
				t.Errorf("access log %v, want 499 canceled=client", a)
			}
			if took > noticeBound {
				t.Errorf("noticed %v after the client left", took)
			}
			t.Logf("noticed within %v", took)
		})
	}
}

// TestBinaryLargeBody: a body larger than the seed endpoint drains is
// refused with 413 before the task starts, and the connection is closed;
// with Expect: 100-continue the body is never asked for.
func TestBinaryLargeBody(t *testing.T) {
	t.Parallel()
	d := startBinary(t)
	for _, tt := range []struct{ name, hdr string }{
		{"declared", fmt.Sprintf("Content-Length: %d\r\n\r\n", maxIgnoredBody+1)},
		{"expect-continue", fmt.Sprintf("Expect: 100-continue\r\nContent-Length: %d\r\n\r\n", 1<<30)},
		{"chunked", fmt.Sprintf("Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", maxIgnoredBody+1, strings.Repeat("x", maxIgnoredBody+1))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := rawConn(t, d.Addr)
			go io.WriteString(c, "GET /longrunningtask?iterations=1&interval=1h HTTP/1.1\r\nHost: t\r\nX-Request-Id: big\r\n"+tt.hdr)
			resp := testlog.ReadResponse(t, c)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
				t.Errorf("status %d, close %v; want 413 and the connection closed", resp.StatusCode, resp.Close)
			}
		})
	}
	if n := d.Logs.Count(msgID("Long-running task started.", "big")); n != 0 {
		t.Errorf("the task started %d times", n)
	}
}

// TestBinarySmuggling: a request with both Content-Length and
// Transfer-Encoding is refused with 400 and its connection closed, so a
// request hidden in it (for a front end that framed it by Content-Length)
// is never served. A request with a chunked body only is served, and its
// connection closed after it too.
func TestBinarySmuggling(t *testing.T) {
	t.Parallel()
	d := startBinary(t)
	body := "0\r\n\r\nGET /longrunningtask?iterations=1&interval=0s HTTP/1.1\r\nHost: t\r\nX-Request-Id: smuggled\r\n\r\n"
	for _, tt := range []struct {
		name, framing string
		status        int
	}{
		{"content-length and chunked", fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n", len(body)), 400},
		{"lower case, chunked first", fmt.Sprintf("transfer-encoding: chunked\r\ncontent-length: %d\r\n", len(body)), 400},
		{"chunked only", "Transfer-Encoding: chunked\r\n", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := rawConn(t, d.Addr)
			send(t, c, "GET /longrunningtask?iterations=1&interval=0s HTTP/1.1\r\nHost: t\r\nX-Request-Id: carrier\r\n"+tt.framing+"\r\n"+body)
			c.SetReadDeadline(time.Now().Add(testlog.TimeLeft(t)))
			all, err := io.ReadAll(c) // until taskd closes the connection
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(all), "HTTP/1.1 "); n != 1 ||
				!strings.HasPrefix(string(all), fmt.Sprintf("HTTP/1.1 %d ", tt.status)) || !strings.Contains(string(all), "Connection: close") {
				t.Errorf("got %d answers, want one %d with Connection: close:\n%s", n, tt.status, all)
			}
		})
	}
	d.Logs.WaitN(t, "carriers", 3, msgID("request", "carrier"))
	if n := d.Logs.Count(msgID("request", "smuggled")); n != 0 {
		t.Errorf("the smuggled request was served")
	}
}

func TestBinaryMaxDuration(t *testing.T) {
	t.Parallel()
	d := startBinary(t, "-max-task-duration", "10m")
	code, body, _ := do(t, h1Client(t), "GET", d.URL+"/longrunningtask?iterations=11&interval=1m", "long", nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "-max-task-duration") || !strings.HasSuffix(body, "\n") {
		t.Errorf("got %d %q, want 400 naming -max-task-duration", code, body)
	}
	if code, _, _ := do(t, h1Client(t), "GET", d.URL+"/longrunningtask?iterations=10&interval=0s", "ok", nil); code != 200 {
		t.Errorf("a task within the limit got %d", code)
	}
}

// A task that overruns its limit (a step that takes longer than its
// interval) is canceled when the limit passes.
func TestTaskMaxDurationOverrun(t *testing.T) {
	t.Parallel()
	logs := testlog.NewSink()
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	h := &taskHandler{logger: logger, maxDuration: 50 * time.Millisecond, step: func(ctx context.Context, i int) error {
		<-ctx.Done() // a step that only ends when the task is canceled
		return ctx.Err()
	}}
	ts := httptest.NewServer(cancelhttp.Handler(h, cancelhttp.WithLogger(logger)))
	defer ts.Close()
	code, body, _ := do(t, h1Client(t), "GET", ts.URL+"/longrunningtask?iterations=1&interval=0s", "overrun", nil)
	if code != 200 || body != cancelledMessage+"\n" {
		t.Errorf("got %d %q, want the cancel message", code, body)
	}
	r := logs.Wait(t, "cancellation", msgID("Long-running task cancelled.", "overrun"))
	if r.Str("cause") != errMaxTaskDuration.Error() {
		t.Errorf("cancellation record %v, want cause %q", r, errMaxTaskDuration)
	}
	if _, ok := r["stop_latency_ms"]; !ok {
		t.Errorf("cancellation record %v without stop_latency_ms", r)
	}
	a := logs.Wait(t, "access log", msgID("request", "overrun"))
	if a.Str("canceled") != "deadline" || a.Str("cause") != errMaxTaskDuration.Error() {
		t.Errorf("access log %v, want canceled=deadline and the cause", a)
	}
}

func TestBinaryMaxInflight(t *testing.T) {
	t.Parallel()
	d := startBinary(t, "-max-inflight", "2")
	for i := range 2 {
		id := fmt.Sprintf("hold-%d", i)
		testlog.RawGet(t, d.Addr, "/longrunningtask?iterations=1&interval=1h", id)
		d.Logs.Wait(t, "start", msgID("Long-running task started.", id))
	}
	code, body, hdr := do(t, h1Client(t), "GET", d.URL+"/longrunningtask?iterations=1&interval=0s", "third", nil)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(body, "-max-inflight") {
		t.Errorf("third request: %d %q Retry-After %q; want 503 with Retry-After", code, body, hdr.Get("Retry-After"))
	}
	if n := d.Logs.Count(msgID("Long-running task started.", "third")); n != 0 {
		t.Errorf("the third task started")
	}
}

// TestBinaryStepLogBounded: 100,000 steps of 0s write a bounded number of
// lines, and say that lines were summarized.
func TestBinaryStepLogBounded(t *testing.T) {
	t.Parallel()
	d := startBinary(t)
	start := time.Now()
	code, _, _ := do(t, h1Client(t), "GET", d.URL+"/longrunningtask?iterations=100000&interval=0s", "flood", nil)
	took := time.Since(start)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	d.Logs.Wait(t, "access log", msgID("request", "flood"))
	lines := 0
	summarized := 0
	for _, r := range d.Logs.All() {
		if r.Str("request_id") == "flood" && strings.HasPrefix(r.Str("msg"), "Iteration") {
			lines++
			summarized += int(r.Num("lines_summarized"))
			if r.Num("lines_summarized") > 0 && !strings.HasPrefix(r.Str("msg"), "Iterations ") {
				t.Errorf("summary line %v", r)
			}
		}
	}
	max := stepLogBurst + int(took.Seconds()*stepLogRate) + 2
	if lines > max {
		t.Errorf("%d step lines in %v, want at most %d", lines, took, max)
	}
	if logged := lines - countSummaries(d.Logs, "flood") + summarized; logged != 100000 {
		t.Errorf("the step lines account for %d steps, want 100000", logged)
	}
}

func countSummaries(logs *testlog.Sink, id string) int {
	return logs.Count(func(r testlog.Record) bool {
		return r.Str("request_id") == id && r.Num("lines_summarized") > 0
	})
}

// TestBinaryEchoTruncated: a huge bad value is not echoed whole.
func TestBinaryEchoTruncated(t *testing.T) {
	t.Parallel()
	d := startBinary(t)
	big := strings.Repeat("9", 20000)
	code, body, _ := do(t, h1Client(t), "GET", d.URL+"/longrunningtask?iterations="+big, "echo", nil)
	if code != http.StatusBadRequest || len(body) > 300 || !strings.Contains(body, "20000 bytes") {
		t.Errorf("got %d, %d bytes: %.200q", code, len(body), body)
	}
	code, body, _ = do(t, h1Client(t), "GET", d.URL+"/longrunningtask", "echo", map[string]string{"Grpc-Timeout": big})
	if code != http.StatusBadRequest || len(body) > 300 {
		t.Errorf("got %d, %d bytes: %.200q", code, len(body), body)
	}
	for _, r := range d.Logs.All() {
		if len(fmt.Sprint(r)) > 2000 {
			t.Errorf("a log record of %d bytes: %.200v", len(fmt.Sprint(r)), r)
		}
	}
}

// binaryTaskd is the built taskd, running until the end of the test.
type binaryTaskd struct {
	Addr, URL string
	Logs      *testlog.Sink
}

// startBinary runs the built taskd with args (and a JSON log).
func startBinary(t *testing.T, args ...string) *binaryTaskd {
	t.Helper()
	_, logs, url := runBinary(t, args...)
	return &binaryTaskd{Addr: strings.TrimPrefix(url, "http://"), URL: url, Logs: logs}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/go-cancellation/cancellation/cancelhttp"
	"github.com/go-cancellation/cancellation/internal/testlog"
	"github.com/go-cancellation/cancellation/task"
	"github.com/go-cancellation/cancellation/task/natsstore"
)

// apiDo sends a JSON request to taskd and decodes the answer into out.
func apiDo(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, b := testlog.Do(t, h1Client(t), req)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// waitTask follows GET /tasks/{id}/events until match holds.
func waitTask(t *testing.T, base, id string, match func(*task.Task) bool) *task.Task {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/tasks/"+id+"/events", nil)
	resp, err := h1Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	found := make(chan *task.Task, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				tk := new(task.Task)
				if json.Unmarshal([]byte(data), tk) == nil && match(tk) {
					found <- tk
					return
				}
			}
		}
		close(found)
	}()
	tk := testlog.Recv(t, "task "+id+" to match", found)
	if tk == nil {
		t.Fatalf("task %s: stream ended before it matched", id)
	}
	return tk
}

// scopedTask finds the running request-scoped task of the seed endpoint.
func scopedTask(t *testing.T, base string) *task.Task {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/events", nil)
	resp, err := h1Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// It may have started before the stream: list first.
	var list struct{ Tasks []*task.Task }
	apiDo(t, "GET", base+"/tasks?state=running&kind=longrunning", "", &list)
	for _, tk := range list.Tasks {
		if tk.RequestScoped {
			return tk
		}
	}
	found := make(chan *task.Task, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				tk := new(task.Task)
				if json.Unmarshal([]byte(data), tk) == nil && tk.RequestScoped && tk.State == task.Running {
					found <- tk
					return
				}
			}
		}
	}()
	return testlog.Recv(t, "the seed's task", found)
}

// TestSeedCancelViaAPI: GET /longrunningtask is listed as a running task
// of kind longrunning with the same params as a POSTed one; canceling it
// through the API makes the waiting client get the seed's cancel answer.
func TestSeedCancelViaAPI(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	res := getAsync(t, d.URL+"/longrunningtask?iterations=50&interval=100ms", "seed-api")
	tk := scopedTask(t, d.URL)
	if tk.Kind != "longrunning" || string(tk.Params) != `{"iterations":50,"interval":"100ms"}` || tk.Attempt != 1 || tk.Node == "" {
		t.Fatalf("seed task %+v (params %s)", tk, tk.Params)
	}
	var canceled task.Task
	if code := apiDo(t, "POST", d.URL+"/tasks/"+tk.ID+"/cancel", `{"reason":"operator: not needed"}`, &canceled); code != 202 || canceled.State != task.Canceling {
		t.Fatalf("cancel: %d %+v", code, canceled)
	}
	r := testlog.Recv(t, "the seed's answer", res)
	if r.err != nil || r.code != 200 || strings.TrimSpace(r.body) != cancelledMessage {
		t.Fatalf("seed answered %d %q %v", r.code, r.body, r.err)
	}
	final := waitTask(t, d.URL, tk.ID, func(t *task.Task) bool { return t.State.Final() })
	if final.State != task.Canceled || final.Cause != "canceled: operator: not needed" || final.Cancel.RequestID == "" {
		t.Fatalf("final %+v", final)
	}
	c := d.Logs.Wait(t, "the seed's cancel line", func(r testlog.Record) bool {
		return r.Str("msg") == "Long-running task cancelled." && r.Str("request_id") == "seed-api"
	})
	if c.Str("cause") != "canceled: operator: not needed" {
		t.Fatalf("cancel line %v", c)
	}
	stop := d.Logs.Wait(t, "the task's stop line", func(r testlog.Record) bool {
		return r.Str("msg") == "task stopped" && r.Str("task") == tk.ID
	})
	if stop.Str("reason") != "operator: not needed" || stop.Str("via") == "" || stop.Str("state") != "canceled" {
		t.Fatalf("stop line %v", stop)
	}
}

// TestSeedClientDisconnected: a client that leaves cancels the task with
// "client disconnected".
func TestSeedClientDisconnected(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	final := abandonSeed(t, d, "seed-gone")
	if final.State != task.Canceled || final.Cause != "client disconnected" || final.StopLatencyMS == nil {
		t.Fatalf("final %+v", final)
	}
}

// TestSeedCompletes: the seed's answer and step lines stay, with the task
// id on each step line, and the task (long enough to be recorded) ends
// succeeded with its progress.
func TestSeedCompletes(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	r := testlog.Recv(t, "the seed's answer", getAsync(t, d.URL+"/longrunningtask?iterations=2&interval=100ms", "seed-ok"))
	if r.code != 200 || strings.TrimSpace(r.body) != completedMessage {
		t.Fatalf("seed answered %d %q", r.code, r.body)
	}
	step := d.Logs.Wait(t, "step line", func(r testlog.Record) bool {
		return r.Str("msg") == "Iteration 2 of 2 completed." && r.Str("request_id") == "seed-ok"
	})
	var list struct{ Tasks []*task.Task }
	apiDo(t, "GET", d.URL+"/tasks?kind=longrunning", "", &list)
	if len(list.Tasks) != 1 {
		t.Fatalf("tasks %+v", list.Tasks)
	}
	tk := list.Tasks[0]
	if tk.ID != step.Str("task") || tk.State != task.Succeeded || tk.Result != completedMessage || tk.Progress == nil || tk.Progress.Done != 2 {
		t.Fatalf("task %+v, step line %v", tk, step)
	}
}

// TestTaskdServesAPI: the task API, the metrics, the probes and the
// dashboard on one server.
func TestTaskdServesAPI(t *testing.T) {
	t.Parallel()
	d := startTaskd(t, "-concurrency", "2", "-node", "node-x")
	var tk task.Task
	if code := apiDo(t, "POST", d.URL+"/tasks", `{"kind":"longrunning","params":{"iterations":2,"interval":"1ms"}}`, &tk); code != 201 {
		t.Fatalf("POST /tasks: %d", code)
	}
	final := waitTask(t, d.URL, tk.ID, func(t *task.Task) bool { return t.State.Final() })
	if final.State != task.Succeeded || final.Node != "node-x" {
		t.Fatalf("final %+v", final)
	}
	for path, want := range map[string]string{
		"/healthz": "ok", "/readyz": "ready", "/metrics": `taskd_tasks{kind="longrunning",state="succeeded"} 1`,
		"/": `id="start-task"`,
	} {
		code, body, _ := do(t, h1Client(t), "GET", d.URL+path, "probe", nil)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body lacks %q", path, code, want)
		}
	}
}

// TestRestartRunsAgain: SIGTERM hands a running task back to the queue;
// taskd started again on the same -data runs it as attempt 2.
func TestRestartRunsAgain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd, _, base := runBinary(t, "-data", dir, "-shutdown-grace", "0")
	var tk task.Task
	apiDo(t, "POST", base+"/tasks", `{"kind":"longrunning","params":{"iterations":1000,"interval":"100ms"}}`, &tk)
	waitTask(t, base, tk.ID, func(t *task.Task) bool { return t.State == task.Running })
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	_, logs, base := runBinary(t, "-data", dir, "-shutdown-grace", "0")
	again := waitTask(t, base, tk.ID, func(t *task.Task) bool { return t.State == task.Running })
	if again.Attempt != 2 {
		t.Fatalf("after the restart: %+v, want attempt 2", again)
	}
	logs.Wait(t, "the second attempt's start", func(r testlog.Record) bool {
		return r.Str("msg") == "task started" && r.Str("task") == tk.ID && r.Num("attempt") == 2
	})
}

// TestDataLocked: a second taskd on the same -data fails at once instead of
// running a second NATS server on the same files.
func TestDataLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := startTaskd(t, "-data", dir)
	first.Logs.Wait(t, "the first taskd", func(r testlog.Record) bool { return r.Str("msg") == "listening" })
	err := (&Main{}).Run(t.Context(), []string{"-addr", "127.0.0.1:0", "-data", dir})
	if err == nil || !strings.Contains(err.Error(), "in use by another taskd") {
		t.Fatalf("second taskd on the same -data: %v", err)
	}
}

// TestExternalNATS: with -nats taskd starts no server of its own and keeps
// its tasks in the given one; two taskd on it are one cluster (a task
// started on one is visible and cancelable on the other).
func TestExternalNATS(t *testing.T) {
	t.Parallel()
	ns, err := natsstore.RunServer(natsstore.ServerOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	a := startTaskd(t, "-nats", ns.ClientURL(), "-node", "a")
	// b opens the store once a has: nats-server v2.15.2 has a data race
	// between a stream's update (b's CreateOrUpdate of the bucket) and a
	// consumer's creation on it (a's), which -race reports in this
	// process, where the server runs (1 run in 10).
	a.Logs.Wait(t, "a's tasks ready", func(r testlog.Record) bool { return r.Str("msg") == "tasks ready" })
	b := startTaskd(t, "-nats", ns.ClientURL(), "-node", "b")
	var tk task.Task
	if code := apiDo(t, "POST", a.URL+"/tasks", `{"kind":"longrunning","params":{"iterations":100,"interval":"100ms"}}`, &tk); code != 201 {
		t.Fatalf("POST: %d", code)
	}
	waitTask(t, b.URL, tk.ID, func(t *task.Task) bool { return t.State == task.Running })
	var canceled task.Task
	if code := apiDo(t, "POST", b.URL+"/tasks/"+tk.ID+"/cancel", `{"reason":"from b"}`, &canceled); code != 202 {
		t.Fatalf("cancel on b: %d", code)
	}
	final := waitTask(t, a.URL, tk.ID, func(t *task.Task) bool { return t.State.Final() })
	if final.State != task.Canceled || final.Cancel.Via != "b" || final.Cause != "canceled: from b" {
		t.Fatalf("final %+v", final)
	}
	for _, d := range []*taskd{a, b} {
		if r := d.Logs.Wait(t, "tasks ready", func(r testlog.Record) bool { return r.Str("msg") == "tasks ready" }); r.Str("embedded_nats_data") != "no" {
			t.Fatalf("started an embedded server with -nats: %v", r)
		}
	}
}

// TestMetricsClientDisconnected: the cancellation of a seed task whose
// client left is counted under its own cause kind.
func TestMetricsClientDisconnected(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	tk := abandonSeed(t, d, "gone")
	d.Logs.Wait(t, "the task's stop", func(r testlog.Record) bool { return r.Str("msg") == "task stopped" && r.Str("task") == tk.ID })
	_, body, _ := do(t, h1Client(t), "GET", d.URL+"/metrics", "m", nil)
	for _, want := range []string{
		`taskd_task_cancellations_total{cause="client_disconnected"} 1`,
		`taskd_task_stop_latency_seconds_count{cause="client_disconnected"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestTaskFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-concurrency", "0"}, {"-lease", "1ms"}, {"-retention", "0s"}, {"-data", ""}, {"-replicas", "0"}, {"-replicas", "6"},
	} {
		m := &Main{}
		if err := m.Run(t.Context(), args); exitCode(err, io.Discard) != 2 {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// TestShutdownEndsEventStreams: an open event stream (a dashboard) does not
// hold a shutdown for the grace period: the streams end at once.
func TestShutdownEndsEventStreams(t *testing.T) {
	t.Parallel()
	d := startTaskd(t, "-shutdown-grace", "1h")
	req, _ := http.NewRequestWithContext(t.Context(), "GET", d.URL+"/events", nil)
	resp, err := h1Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		ended <- err
	}()
	if err := d.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := testlog.Recv(t, "the stream's end", ended); err != nil {
		t.Fatalf("stream ended with %v, want a clean end", err)
	}
}

// BenchmarkSeed measures GET /longrunningtask?iterations=1&interval=0s
// in-process (handler and middleware, no network) as today's handler and
// through the task layer. Run with
//
//	go test -run '^$' -bench BenchmarkSeed -count 5 ./cmd/taskd
func BenchmarkSeed(b *testing.B) {
	for _, v := range seedVariants(b) {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					v.h.ServeHTTP(w, httptest.NewRequest("GET", "/longrunningtask?iterations=1&interval=0s", nil))
					if w.Code != http.StatusOK {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}

// seedVariants returns the seed endpoint's handler without the task layer
// ("today") and through it ("as_task"), on a task service that lives as long
// as the benchmark.
func seedVariants(b *testing.B) []struct {
	name string
	h    http.Handler
} {
	logger := slog.New(slog.DiscardHandler)
	cfg := DefaultConfig()
	cfg.Tasks.Data = b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := startTasks(ctx, cfg, logger, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); svc.close() })
	handler := func(tasks *task.Runner) http.Handler {
		return cancelhttp.Handler(&taskHandler{logger: logger, maxDuration: cfg.MaxTaskDuration, tasks: tasks},
			cancelhttp.WithLogger(logger))
	}
	return []struct {
		name string
		h    http.Handler
	}{{"today", handler(nil)}, {"as_task", handler(svc.runner)}}
}

// BenchmarkSeedHTTP is BenchmarkSeed over loopback HTTP/1.1 with keep-alive
// connections, as clients see it: each variant is served by its own
// server, and requests/s is what to compare (the loop in docs/tasks.md
// alternates the two variants over rounds).
func BenchmarkSeedHTTP(b *testing.B) {
	for _, v := range seedVariants(b) {
		srv := httptest.NewServer(v.h)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		url := srv.URL + "/longrunningtask?iterations=1&interval=0s"
		b.Run(v.name, func(b *testing.B) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
		client.CloseIdleConnections()
		srv.Close()
	}
}

// abandonSeed starts a long seed request with request id id on a raw
// connection, closes the connection once its task is listed, and returns
// the task's final record.
func abandonSeed(t *testing.T, d *taskd, id string) *task.Task {
	t.Helper()
	conn := testlog.RawGet(t, d.Addr, "/longrunningtask?iterations=50&interval=100ms", id)
	tk := scopedTask(t, d.URL)
	conn.Close()
	return waitTask(t, d.URL, tk.ID, func(t *task.Task) bool { return t.State.Final() })
}

package taskhttp_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/internal/testlog"
	"github.com/go-cancellation/cancellation/task"
)

const jsonType = "application/json"

func TestCreateGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := do(t, "POST", e.url+"/tasks", jsonType, `{"kind":"longrunning","params":{"iterations":2,"interval":"10ms"},"timeout":"10m"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /tasks: %d %s", r.status, r.body)
	}
	tk := r.task(t)
	if loc := r.header.Get("Location"); loc != "/tasks/"+tk.ID {
		t.Fatalf("Location %q", loc)
	}
	if tk.Kind != "longrunning" || tk.State != task.Queued || string(tk.Params) != `{"iterations":2,"interval":"10ms"}` || tk.Timeout != task.Duration(10*time.Minute) {
		t.Fatalf("created %s", r.body)
	}
	// The JSON's shape: RFC 3339 UTC times, Go durations, no fields that
	// do not apply yet.
	var raw map[string]any
	json.Unmarshal(r.body, &raw)
	if _, err := time.Parse(time.RFC3339Nano, raw["created_at"].(string)); err != nil || !strings.HasSuffix(raw["created_at"].(string), "Z") {
		t.Fatalf("created_at %v", raw["created_at"])
	}
	for _, absent := range []string{"progress", "cancel", "started_at", "finished_at", "cause", "result", "stop_latency_ms"} {
		if _, ok := raw[absent]; ok {
			t.Errorf("a queued task has %q", absent)
		}
	}
	if raw["timeout"] != "10m0s" {
		t.Errorf("timeout %v", raw["timeout"])
	}
	got := do(t, "GET", e.url+"/tasks/"+tk.ID, "", "")
	if got.status != 200 || got.task(t).ID != tk.ID || got.header.Get("Content-Type") != jsonType {
		t.Fatalf("GET: %d %s", got.status, got.body)
	}
	wantProblem(t, do(t, "GET", e.url+"/tasks/"+task.NewID(), "", ""), 404, "no task")
	wantProblem(t, do(t, "GET", e.url+"/tasks/nonsense", "", ""), 404, "no task")
}

func TestCreateIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := `{"kind":"longrunning","params":{"iterations":1,"interval":"1s"}}`
	a := do(t, "POST", e.url+"/tasks", jsonType, body, "Idempotency-Key", "abc")
	b := do(t, "POST", e.url+"/tasks", jsonType, body, "Idempotency-Key", "abc")
	if a.status != 201 || b.status != 200 || a.task(t).ID != b.task(t).ID || b.header.Get("Location") != "/tasks/"+a.task(t).ID {
		t.Fatalf("same key: %d %s, then %d %s", a.status, a.body, b.status, b.body)
	}
	c := do(t, "POST", e.url+"/tasks", jsonType, body, "Idempotency-Key", "other")
	if c.status != 201 || c.task(t).ID == a.task(t).ID {
		t.Fatalf("another key: %d %s", c.status, c.body)
	}
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tt := range []struct {
		name, ct, body string
		status         int
		detail         string
	}{
		{"unknown kind", jsonType, `{"kind":"nope"}`, 400, `unknown task kind "nope"`},
		{"no kind", jsonType, `{}`, 400, `missing "kind"`},
		{"bad params", jsonType, `{"kind":"longrunning","params":{"iterations":0}}`, 400, "invalid iterations 0"},
		{"bad interval", jsonType, `{"kind":"longrunning","params":{"interval":"2h"}}`, 400, "invalid interval"},
		{"bad timeout", jsonType, `{"kind":"longrunning","timeout":"soon"}`, 400, `invalid duration "soon"`},
		{"negative timeout", jsonType, `{"kind":"longrunning","timeout":"-1s"}`, 400, "invalid timeout -1s"},
		{"unknown field", jsonType, `{"kind":"longrunning","prams":{}}`, 400, `unknown field "prams"`},
		{"not JSON", jsonType, `kind=longrunning`, 400, "invalid task"},
		{"trailing data", jsonType, `{"kind":"longrunning"} {}`, 400, "data after the JSON object"},
		{"text", "text/plain", `{"kind":"longrunning"}`, 415, "application/json"},
		{"no type", "", `{"kind":"longrunning"}`, 415, "application/json"},
		{"too large", jsonType, `{"kind":"longrunning","params":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}`, 413, "1 MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, do(t, "POST", e.url+"/tasks", tt.ct, tt.body), tt.status, tt.detail)
		})
	}
	if r := do(t, "POST", e.url+"/tasks", "application/json; charset=utf-8", `{"kind":"longrunning"}`); r.status != 201 {
		t.Fatalf("charset parameter: %d %s", r.status, r.body)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ids []string
	for i := range 5 {
		kind := "longrunning"
		if i == 2 {
			kind = "gate"
		}
		r := do(t, "POST", e.url+"/tasks", jsonType, `{"kind":"`+kind+`","params":{}}`)
		ids = append(ids, r.task(t).ID)
	}
	list := func(q string) (tasks []*task.Task, next string) {
		t.Helper()
		r := do(t, "GET", e.url+"/tasks"+q, "", "")
		var body struct {
			Tasks []*task.Task    `json:"tasks"`
			Next  *string         `json:"next_page_token"`
			Extra json.RawMessage `json:"-"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &body) != nil || body.Tasks == nil || body.Next == nil {
			t.Fatalf("GET /tasks%s: %d %s", q, r.status, r.body)
		}
		return body.Tasks, *body.Next
	}
	var got []string
	q := "?page_size=2"
	for {
		tasks, next := list(q)
		if len(tasks) > 2 {
			t.Fatalf("page of %d", len(tasks))
		}
		for _, tk := range tasks {
			got = append(got, tk.ID)
		}
		if next == "" {
			break
		}
		q = "?page_size=2&page_token=" + next
	}
	if len(got) != 5 {
		t.Fatalf("listed %v", got)
	}
	for i := range got {
		if got[i] != ids[4-i] {
			t.Fatalf("not newest first: %v (created %v)", got, ids)
		}
	}
	if tasks, _ := list("?kind=gate"); len(tasks) != 1 || tasks[0].ID != ids[2] {
		t.Fatalf("kind filter: %v", tasks)
	}
	if tasks, _ := list("?state=succeeded"); len(tasks) != 0 {
		t.Fatalf("state filter: %d tasks", len(tasks))
	}
	if tasks, _ := list("?page_size=5000"); len(tasks) != 5 {
		t.Fatalf("page_size above the maximum: %d", len(tasks))
	}
	wantProblem(t, do(t, "GET", e.url+"/tasks?state=done", "", ""), 400, `invalid state "done"`)
	wantProblem(t, do(t, "GET", e.url+"/tasks?page_size=0", "", ""), 400, "invalid page_size")
	wantProblem(t, do(t, "GET", e.url+"/tasks?page_size=x", "", ""), 400, "invalid page_size")
	wantProblem(t, do(t, "GET", e.url+"/tasks?page_token=zzz", "", ""), 400, "invalid page_token")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	running := do(t, "POST", e.url+"/tasks", jsonType, `{"kind":"gate"}`).task(t)
	recv(t, e.gate.started)
	// Concurrency 1: this one stays queued.
	queued := do(t, "POST", e.url+"/tasks", jsonType, `{"kind":"gate"}`).task(t)

	r := do(t, "POST", e.url+"/tasks/"+queued.ID+"/cancel", "", "")
	if c := r.task(t); r.status != 202 || c.State != task.Canceled || c.Cancel == nil || c.Cancel.Via != "node-a" || c.Cancel.RequestID == "" {
		t.Fatalf("cancel queued (no body): %d %s", r.status, r.body)
	}

	r = do(t, "POST", e.url+"/tasks/"+running.ID+"/cancel", jsonType, `{"reason":"operator: wrong input file"}`)
	if c := r.task(t); r.status != 202 || c.State != task.Canceling || c.Cancel.Reason != "operator: wrong input file" {
		t.Fatalf("cancel running: %d %s", r.status, r.body)
	}
	final := waitFinal(t, e, running.ID)
	if final.State != task.Canceled || final.Cause != "canceled: operator: wrong input file" || final.StopLatencyMS == nil {
		t.Fatalf("final %+v", final)
	}
	// Idempotent.
	r = do(t, "POST", e.url+"/tasks/"+running.ID+"/cancel", jsonType, `{"reason":"again"}`)
	if c := r.task(t); r.status != 202 || c.State != task.Canceled || c.Cancel.Reason != "operator: wrong input file" {
		t.Fatalf("cancel again: %d %s", r.status, r.body)
	}
	// The queued one never started: a task submitted after it runs first.
	after := do(t, "POST", e.url+"/tasks", jsonType, `{"kind":"gate"}`).task(t)
	if id := recv(t, e.gate.started); id != after.ID {
		t.Fatalf("started %s, want %s (the canceled queued task must never start)", id, after.ID)
	}
	close(e.gate.release)
	if final := waitFinal(t, e, after.ID); final.State != task.Succeeded {
		t.Fatalf("final %+v", final)
	}
	r = do(t, "POST", e.url+"/tasks/"+after.ID+"/cancel", jsonType, `{}`)
	if r.status != 409 || r.task(t).State != task.Succeeded {
		t.Fatalf("cancel succeeded task: %d %s", r.status, r.body)
	}
	wantProblem(t, do(t, "POST", e.url+"/tasks/"+task.NewID()+"/cancel", "", ""), 404, "no task")
	wantProblem(t, do(t, "POST", e.url+"/tasks/"+after.ID+"/cancel", "text/plain", "stop"), 415, "application/json")
	wantProblem(t, do(t, "POST", e.url+"/tasks/"+after.ID+"/cancel", jsonType, `{"why":1}`), 400, "unknown field")
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := do(t, "GET", e.url+"/healthz", "", ""); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	if r := do(t, "GET", e.url+"/readyz", "", ""); r.status != 200 {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
	tk := do(t, "POST", e.url+"/tasks", jsonType, `{"kind":"gate"}`).task(t)
	recv(t, e.gate.started)
	do(t, "POST", e.url+"/tasks/"+tk.ID+"/cancel", jsonType, `{"reason":"metrics"}`)
	waitFinal(t, e, tk.ID)
	queued := do(t, "POST", e.url+"/tasks", jsonType, `{"kind":"longrunning","params":{"iterations":1,"interval":"1h"}}`).task(t)
	_ = queued
	r := do(t, "GET", e.url+"/metrics", "", "")
	for _, want := range []string{
		`taskd_tasks{kind="gate",state="canceled"} 1`,
		`taskd_tasks{kind="gate",state="running"} 0`,
		`taskd_task_cancellations_total{cause="request"} 1`,
		`taskd_task_stop_latency_seconds_count{cause="request"} 1`,
		`taskd_http_requests_total{code="201",method="POST",route="POST /tasks"} 2`,
		`taskd_http_requests_total{code="202",method="POST",route="POST /tasks/{id}/cancel"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Log(string(r.body))
	}
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-testlog.DeadlineContext(t).Done():
		t.Fatal("nothing received before the deadline")
	}
	panic("unreachable")
}

// waitFinal follows the task's event stream to its end.
func waitFinal(t *testing.T, e *env, id string) *task.Task {
	t.Helper()
	s := openSSE(t, e.url+"/tasks/"+id+"/events", "")
	var last *task.Task
	for {
		_, tk, ok := s.next(t)
		if !ok {
			break
		}
		last = tk
	}
	if last == nil || !last.State.Final() {
		t.Fatalf("stream of %s ended at %+v", id, last)
	}
	return last
}

var _ = strconv.Itoa

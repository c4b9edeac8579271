package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-cancellation/cancellation/internal/browsertest"
	"github.com/go-cancellation/cancellation/internal/faultnet"
	"github.com/go-cancellation/cancellation/internal/testlog"
	"github.com/go-cancellation/cancellation/task"
	"github.com/go-cancellation/cancellation/task/natsstore"
	"github.com/nats-io/nats.go"
)

// The dashboard's tests drive taskd's page in a real headless Chromium,
// against taskd itself (Main.Run on 127.0.0.1:0 with its embedded NATS).

// dashboardWithTasks runs taskd with n finished tasks in its store, written
// through a second client of its embedded NATS server, and returns its URL
// once GET /tasks lists them.
func dashboardWithTasks(t *testing.T, n int) (string, *http.Client) {
	t.Helper()
	d := startTaskd(t)
	client := h1Client(t)
	url := d.Logs.Wait(t, "tasks ready", func(r testlog.Record) bool { return r.Str("msg") == "tasks ready" }).Str("nats")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	store, err := natsstore.New(context.Background(), nc, natsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	start := time.Now()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = task.NewID()
	}
	// Eight writers, each taking every eighth task.
	errs := make(chan error, 8)
	for w := range 8 {
		go func() {
			for i := w; i < n; i += 8 {
				if _, _, err := store.Create(context.Background(), dashFinishedTask(ids[i], i)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("stored %d tasks in %v", n, time.Since(start))

	// taskd lists from its own copy of the store: wait until it has the
	// newest one.
	for {
		res, err := client.Get(d.URL + "/tasks?page_size=1")
		if err != nil {
			t.Fatal(err)
		}
		var page struct{ Tasks []task.Task }
		err = json.NewDecoder(res.Body).Decode(&page)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Tasks) == 1 && page.Tasks[0].ID == ids[n-1] {
			return d.URL, client
		}
		if testlog.TimeLeft(t) <= 0 {
			t.Fatalf("GET /tasks does not list the stored tasks")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, bounded by the deadline
	}
}

// dashFinishedTask is the i-th of many stored tasks: succeeded, failed or
// canceled.
func dashFinishedTask(id string, i int) *task.Task {
	now := time.Now().UTC()
	started := now.Add(-time.Minute)
	t := &task.Task{
		ID: id, Kind: "longrunning", Params: json.RawMessage(`{"iterations":20,"interval":"1s"}`),
		Node: "node-b", Attempt: 1, CreatedAt: started.Add(-time.Second), StartedAt: &started, FinishedAt: &now,
		Progress: &task.Progress{Done: 20, Total: 20},
	}
	switch i % 10 {
	case 3:
		t.State, t.Cause, t.Progress.Done = task.Failed, "failed: node lost", 7
	case 7:
		lat := 0.3
		t.State, t.Cause, t.Progress.Done, t.StopLatencyMS = task.Canceled, "canceled: operator: wrong input file", 12, &lat
		t.Cancel = &task.CancelRequest{RequestedAt: now, Reason: "operator: wrong input file", Via: "node-b"}
	default:
		t.State, t.Result = task.Succeeded, completedMessage
	}
	return t
}

// dashRow is the CSS selector of the row of task id.
func dashRow(id string) string { return `[data-task-id="` + id + `"]` }

// dashRun runs one chromedp action and fails the test on its error.
func dashRun[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// dashDo runs chromedp actions and fails the test on their error.
func dashDo(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// dashPoll waits until the JavaScript function fn, called with args, returns a
// truthy value, and returns that value; the wait is bounded by the test's
// deadline.
//
// Right after a navigation, Chromium can answer a call with the execution
// context of the page being replaced ("Cannot find context with specified
// id", "Execution context was destroyed"): the poll starts again in the new
// one.
func dashPoll[T any](t *testing.T, ctx context.Context, what, fn string, args ...any) T {
	t.Helper()
	for {
		v, err := chromedp.Run(ctx, chromedp.PollFunction[T](fn,
			chromedp.WithPollingArgs(args...),
			chromedp.WithPollingInterval(20*time.Millisecond),
			chromedp.WithPollingTimeout(0)))
		if err == nil {
			return v
		}
		if msg := err.Error(); ctx.Err() == nil && (strings.Contains(msg, "Cannot find context with specified id") ||
			strings.Contains(msg, "Execution context was destroyed")) {
			continue
		}
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// dashGetTask reads a task from the API.
func dashGetTask(t *testing.T, client *http.Client, base, id string) map[string]any {
	t.Helper()
	res, err := client.Get(base + "/tasks/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var task map[string]any
	if err := json.NewDecoder(res.Body).Decode(&task); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /tasks/%s: %s, %v", id, res.Status, err)
	}
	return task
}

const dashProgressOf = `(id, min) => {
	const p = document.querySelector('[data-task-id="' + id + '"] progress');
	return p && p.hasAttribute('value') && p.value >= min ? p.value : 0;
}`

const dashStateOf = `(id, want) => {
	const s = document.querySelector('[data-task-id="' + id + '"] [data-field="state"]');
	return s && s.textContent === want ? s.textContent : '';
}`

func TestDashboardStartProgressCancel(t *testing.T) {
	t.Parallel()
	base := startTaskd(t).URL
	ctx := browsertest.New(t, 1400, 1000)
	client := h1Client(t)

	dashDo(t, ctx, "opening the dashboard", chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-conn="live"]`)),
		chromedp.WaitReady(chromedp.CSS(`#tasks[aria-busy="false"]`)))
	before := dashRun(t, ctx, "listing rows", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('[data-task-id]')].map(r => r.dataset.taskId)`))

	// Start from the form, untouched: the seed's task.
	dashDo(t, ctx, "submitting the start form", chromedp.Click(chromedp.CSS(`form#start-task button[type="submit"]`)))
	known, _ := json.Marshal(before)
	id := dashPoll[string](t, ctx, "the new row", `(known) => {
		const before = JSON.parse(known);
		for (const r of document.querySelectorAll('[data-task-id]')) {
			if (!before.includes(r.dataset.taskId)) return r.dataset.taskId;
		}
		return '';
	}`, string(known))
	task := dashGetTask(t, client, base, id)
	if params, _ := json.Marshal(task["params"]); task["kind"] != "longrunning" ||
		!strings.Contains(string(params), `"iterations":20`) || !strings.Contains(string(params), `"interval":"1s"`) {
		t.Errorf("the form's defaults started %v with params %s, want longrunning with 20 iterations of 1s", task["kind"], params)
	}

	// Progress moves, live.
	p1 := dashPoll[float64](t, ctx, "progress", dashProgressOf, id, 1)
	p2 := dashPoll[float64](t, ctx, "more progress", dashProgressOf, id, p1+1)
	if state := dashRun(t, ctx, "reading the state", chromedp.Text(chromedp.CSS(dashRow(id)+` [data-field="state"]`))); state != "running" {
		t.Errorf("state %q while progress moves, want running", state)
	}

	// A reason typed into the row's input survives live updates of the row.
	const reason = `operator: wrong <b>input</b> & "file"`
	input := chromedp.CSS(dashRow(id) + ` input[name="reason"]`)
	dashDo(t, ctx, "typing a reason", chromedp.SendKeys(input, reason))
	dashPoll[float64](t, ctx, "two more progress updates", dashProgressOf, id, p2+2)
	typed := dashRun(t, ctx, "reading the typed reason", chromedp.Evaluate[[]any](`(() => {
		const i = document.querySelector('[data-task-id="`+id+`"] input[name="reason"]');
		return [i.value, document.activeElement === i];
	})()`))
	if typed[0] != reason || typed[1] != true {
		t.Errorf("after live updates the reason input holds %q (focused: %v), want %q, focused", typed[0], typed[1], reason)
	}

	// Cancel: the row says canceled and shows the reason, as text.
	dashDo(t, ctx, "clicking Cancel", chromedp.Click(chromedp.CSS(dashRow(id)+` button[data-action="cancel"]`)))
	dashPoll[string](t, ctx, "state canceled", dashStateOf, id, "canceled")
	row := dashRun(t, ctx, "reading the row", chromedp.Evaluate[[]any](`(() => {
		const r = document.querySelector('[data-task-id="`+id+`"]');
		return [r.textContent, r.querySelectorAll('b').length, r.querySelectorAll('[data-action="cancel"], input[name="reason"]').length];
	})()`))
	if text, _ := row[0].(string); !strings.Contains(text, reason) {
		t.Errorf("canceled row %q does not show the reason %q", text, reason)
	}
	if row[1] != 0.0 {
		t.Errorf("the reason's markup became %v element(s): server strings must be text", row[1])
	}
	if row[2] != 0.0 {
		t.Errorf("a canceled row still has %v cancel control(s)", row[2])
	}
	task = dashGetTask(t, client, base, id)
	if c, _ := task["cancel"].(map[string]any); c == nil || c["reason"] != reason {
		t.Errorf("task's cancel = %v, want reason %q", task["cancel"], reason)
	}
	if task["state"] != "canceled" {
		t.Errorf("task's state %v, want canceled", task["state"])
	}

	// A task the API refuses is not started, and the problem's detail says
	// why under the form.
	dashDo(t, ctx, "submitting a bad interval",
		chromedp.SetValue(chromedp.CSS(`form#start-task input[name="interval"]`), "2h"),
		chromedp.Click(chromedp.CSS(`form#start-task button[type="submit"]`)))
	detail := dashPoll[string](t, ctx, "the problem's detail", `() => {
		const s = document.getElementById('start-status');
		return s.classList.contains('error') ? s.textContent : '';
	}`)
	if !strings.Contains(detail, "invalid interval 2h") {
		t.Errorf("start status %q, want the API's detail about the interval", detail)
	}

	// The state filter shows the canceled task under "canceled" and hides
	// it under "running".
	dashDo(t, ctx, "filtering canceled", chromedp.Click(chromedp.CSS(`#filter input[value="canceled"]`)))
	dashPoll[bool](t, ctx, "the canceled row under the filter", `(id) =>
		!!document.querySelector('[data-task-id="' + id + '"]') &&
		[...document.querySelectorAll('[data-field="state"]')].every(s => s.textContent === 'canceled')`, id)
	dashDo(t, ctx, "filtering running", chromedp.Click(chromedp.CSS(`#filter input[value="running"]`)))
	dashPoll[bool](t, ctx, "the canceled row hidden", `(id) =>
		!document.querySelector('[data-task-id="' + id + '"]') &&
		[...document.querySelectorAll('[data-field="state"]')].every(s => s.textContent === 'running')`, id)
	empty := dashPoll[string](t, ctx, "the empty filter's message", `() => {
		const e = document.getElementById('empty');
		return !e.hidden && document.getElementById('tasks').getAttribute('aria-busy') === 'false' ? e.innerText.trim() : '';
	}`)
	if empty != "No task is running now." {
		t.Errorf("empty filter says %q", empty)
	}
}

// dashPost starts a task through the API and returns it.
func dashPost(t *testing.T, client *http.Client, base, body string) map[string]any {
	t.Helper()
	res, err := client.Post(base+"/tasks", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var task map[string]any
	if err := json.NewDecoder(res.Body).Decode(&task); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /tasks %s: %s, %v", body, res.Status, err)
	}
	return task
}

// dashCancel cancels a task through the API.
func dashCancel(t *testing.T, client *http.Client, base, id, reason string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"reason": reason})
	res, err := client.Post(base+"/tasks/"+id+"/cancel", "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /tasks/%s/cancel: %s", id, res.Status)
	}
}

// TestDashboardScreenshot renders a realistic dashboard, checks the picture,
// and writes it to $DASHBOARD_SCREENSHOT when that is set (docs/dashboard.png
// comes from: DASHBOARD_SCREENSHOT=$PWD/docs/dashboard.png go test
// -run TestDashboardScreenshot ./cmd/taskd).
func TestDashboardScreenshot(t *testing.T) {
	t.Parallel()
	base := startTaskd(t, "-concurrency", "3").URL
	ctx := browsertest.New(t, 1400, 820)
	client := h1Client(t)

	var quick []string
	for range 3 {
		quick = append(quick, dashPost(t, client, base, `{"kind":"longrunning","params":{"iterations":5,"interval":"100ms"}}`)["id"].(string))
	}
	timedOut := dashPost(t, client, base, `{"kind":"longrunning","params":{"iterations":20,"interval":"1s"},"timeout":"1500ms"}`)["id"].(string)
	canceled := dashPost(t, client, base, `{"kind":"longrunning","params":{"iterations":20,"interval":"1s"}}`)["id"].(string)
	dashPost(t, client, base, `{"kind":"longrunning","params":{"iterations":60,"interval":"500ms"}}`)
	running := dashPost(t, client, base, `{"kind":"longrunning","params":{"iterations":20,"interval":"1s"}}`)["id"].(string)

	dashDo(t, ctx, "opening the dashboard", chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-conn="live"]`)),
		chromedp.WaitReady(chromedp.CSS(`#tasks[aria-busy="false"]`)))
	for _, id := range quick {
		dashPoll[string](t, ctx, "a quick task to succeed", dashStateOf, id, "succeeded")
	}
	dashPoll[float64](t, ctx, "progress", dashProgressOf, canceled, 2)
	dashCancel(t, client, base, canceled, "operator: wrong input file")
	dashPoll[string](t, ctx, "the cancel", dashStateOf, canceled, "canceled")
	dashPoll[bool](t, ctx, "the timeout", `(id) => {
		const s = document.querySelector('[data-task-id="' + id + '"] [data-field="state"]');
		return s && (s.textContent === 'failed' || s.textContent === 'canceled');
	}`, timedOut)
	dashPoll[float64](t, ctx, "progress", dashProgressOf, running, 3)
	// Two running, one more fills the third slot, and one waits.
	dashPost(t, client, base, `{"kind":"longrunning","params":{"iterations":30,"interval":"1s"}}`)
	queued := dashPost(t, client, base, `{"kind":"longrunning","params":{"iterations":20,"interval":"1s"}}`)["id"].(string)
	dashPoll[string](t, ctx, "a queued task", dashStateOf, queued, "queued")
	dashDo(t, ctx, "typing a reason", chromedp.SendKeys(chromedp.CSS(dashRow(running)+` input[name="reason"]`), "not needed any more"))

	shot := dashRun(t, ctx, "taking the screenshot", chromedp.CaptureScreenshot())
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1400 || b.Dy() != 820 {
		t.Errorf("screenshot is %v, want 1400×820", b)
	}
	if path := os.Getenv("DASHBOARD_SCREENSHOT"); path != "" {
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

const dashRowIDs = `[...document.querySelectorAll('[data-task-id]')].map(r => r.dataset.taskId)`

// dashCheckOrder fails the test unless ids are unique and newest first.
func dashCheckOrder(t *testing.T, ids []string) {
	t.Helper()
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("rows %d and %d out of order or repeated: %s, %s", i-1, i, ids[i-1], ids[i])
		}
	}
}

// With 10,000 tasks stored the first rows are on screen within 1 s of the
// navigation, and the page holds one page of rows, not 10,000.
func TestDashboardTenThousandTasks(t *testing.T) {
	t.Parallel()
	base, client := dashboardWithTasks(t, 10000)
	ctx := browsertest.New(t, 1400, 1000)

	// The best of three loads: one slow load on a loaded machine is
	// contention, three are the page.
	best := time.Hour
	for range 3 {
		dashDo(t, ctx, "opening the dashboard", chromedp.Navigate(base+"/"))
		ms := dashPoll[float64](t, ctx, "the first rows", `() => {
			const m = performance.getEntriesByName('taskd:first-rows')[0];
			return m && document.querySelector('[data-task-id]') ? m.startTime : 0;
		}`)
		d := time.Duration(ms * float64(time.Millisecond))
		t.Logf("first rows %v after the navigation started", d)
		best = min(best, d)
		if best <= time.Second {
			break
		}
	}
	if best > time.Second {
		t.Errorf("first rows after %v at best, want ≤ 1s", best)
	}

	ids := dashRun(t, ctx, "listing rows", chromedp.Evaluate[[]string](dashRowIDs))
	if len(ids) == 0 || len(ids) > 100 {
		t.Fatalf("%d rows in the DOM with 10,000 tasks stored, want one page (1..100)", len(ids))
	}
	dashCheckOrder(t, ids)

	// Older tasks come one page at a time.
	dashDo(t, ctx, "showing older tasks", chromedp.Click(chromedp.CSS(`#older`)))
	more := dashPoll[[]string](t, ctx, "the second page", `(n) => {
		const ids = `+dashRowIDs+`;
		return ids.length > n && !document.getElementById('older').disabled ? ids : null;
	}`, len(ids))
	if len(more) > 2*len(ids) {
		t.Errorf("%d rows after one more page of %d", len(more), len(ids))
	}
	dashCheckOrder(t, more)
	if more[0] != ids[0] || more[len(ids)-1] != ids[len(ids)-1] {
		t.Errorf("the first page changed when older tasks were added")
	}

	// A new task comes in at the top; the DOM keeps its bound.
	id := dashPost(t, client, base, `{"kind":"longrunning","params":{"iterations":1,"interval":"0s"}}`)["id"].(string)
	after := dashPoll[[]string](t, ctx, "the new task's row", `(id) => {
		const ids = `+dashRowIDs+`;
		return ids[0] === id ? ids : null;
	}`, id)
	if len(after) > len(more) {
		t.Errorf("%d rows after a new task, want at most %d", len(after), len(more))
	}
	dashCheckOrder(t, after)
}

// The page stays live across a restart of taskd: the stream reconnects and
// resumes, the task that the shutdown handed back runs again (attempt 2)
// and the row follows it, and new tasks appear without a reload.
func TestDashboardReconnects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := startTaskdOn(t, faultnet.ListenStable(t), "-data", dir)
	ctx := browsertest.New(t, 1400, 1000)
	client := h1Client(t)

	id := dashPost(t, client, d.URL, `{"kind":"longrunning","params":{"iterations":100,"interval":"200ms"}}`)["id"].(string)
	dashDo(t, ctx, "opening the dashboard", chromedp.Navigate(d.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-conn="live"]`)))
	dashPoll[float64](t, ctx, "progress", dashProgressOf, id, 2)

	if err := d.shutdown(t); err != nil {
		t.Fatalf("first taskd: %v", err)
	}
	dashPoll[bool](t, ctx, "the page to see the stream gone", `() => document.getElementById('conn').dataset.conn !== 'live'`)
	ln, err := net.Listen("tcp", d.Addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", d.Addr, err)
	}
	startTaskdOn(t, ln, "-data", dir)

	dashPoll[bool](t, ctx, "the row to show attempt 2 running", `(id) => {
		const r = document.querySelector('[data-task-id="' + id + '"]');
		return !!r && r.querySelector('[data-field="kind"]').textContent.includes('attempt 2') &&
			r.querySelector('[data-field="state"]').textContent === 'running';
	}`, id)
	p := dashPoll[float64](t, ctx, "progress of attempt 2", dashProgressOf, id, 1)
	dashPoll[float64](t, ctx, "more progress of attempt 2", dashProgressOf, id, p+1)
	if conn := dashRun(t, ctx, "reading the connection state", chromedp.AttributeValue(chromedp.CSS(`#conn`), "data-conn")); conn.Value != "live" {
		t.Errorf("connection state %q after the restart, want live", conn.Value)
	}

	next := dashPost(t, client, d.URL, `{"kind":"longrunning","params":{"iterations":1,"interval":"0s"}}`)["id"].(string)
	dashPoll[string](t, ctx, "the new task, live", dashStateOf, next, "succeeded")
}

// The seed endpoint's request shows on the dashboard while it runs, and
// canceling it there with a reason answers the waiting client with the
// seed's cancel message.
func TestDashboardCancelsSeedRequest(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	ctx := browsertest.New(t, 1400, 1000)
	dashDo(t, ctx, "opening the dashboard", chromedp.Navigate(d.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-conn="live"]`)),
		chromedp.WaitReady(chromedp.CSS(`#tasks[aria-busy="false"]`)))

	res := getAsync(t, d.URL+"/longrunningtask?iterations=50&interval=100ms", "seed-dashboard")
	id := dashPoll[string](t, ctx, "the seed's row", `() => {
		for (const r of document.querySelectorAll('[data-task-id]')) {
			if (r.querySelector('[data-field="kind"]').textContent.includes('request-scoped') &&
				r.querySelector('[data-field="state"]').textContent === 'running') return r.dataset.taskId;
		}
		return '';
	}`)
	const reason = "operator: stopped from the dashboard"
	dashDo(t, ctx, "canceling from the row",
		chromedp.SendKeys(chromedp.CSS(dashRow(id)+` input[name="reason"]`), reason),
		chromedp.Click(chromedp.CSS(dashRow(id)+` button[data-action="cancel"]`)))
	r := testlog.Recv(t, "the seed's answer", res)
	if r.err != nil || r.code != http.StatusOK || strings.TrimSpace(r.body) != cancelledMessage {
		t.Fatalf("seed answered %d %q %v, want 200 %q", r.code, r.body, r.err, cancelledMessage)
	}
	dashPoll[string](t, ctx, "state canceled", dashStateOf, id, "canceled")
	text := dashRun(t, ctx, "reading the row", chromedp.TextContent(chromedp.CSS(dashRow(id))))
	if !strings.Contains(text, reason) {
		t.Errorf("row %q does not show the reason %q", text, reason)
	}
}

// dashSetHidden makes the page believe it is hidden or shown, as a switch
// of browser tabs does.
func dashSetHidden(t *testing.T, ctx context.Context, hidden bool) {
	t.Helper()
	dashRun(t, ctx, "switching the tab", chromedp.Evaluate[bool](`(() => {
		Object.defineProperty(document, 'hidden', { configurable: true, get: () => `+map[bool]string{true: "true", false: "false"}[hidden]+` });
		document.dispatchEvent(new Event('visibilitychange'));
		return true;
	})()`))
}

// A tab hidden for 10 s gives its event stream back to the server, and when
// it is shown again it is live and shows what happened meanwhile.
func TestDashboardHiddenTabPauses(t *testing.T) {
	t.Parallel()
	d := startTaskd(t)
	ctx := browsertest.New(t, 1400, 1000)
	client := h1Client(t)
	dashDo(t, ctx, "opening the dashboard", chromedp.Navigate(d.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-conn="live"]`)),
		chromedp.WaitReady(chromedp.CSS(`#tasks[aria-busy="false"]`)))

	dashSetHidden(t, ctx, true)
	d.Logs.Wait(t, "the event stream to end", func(r testlog.Record) bool {
		return r.Str("msg") == "request" && r.Str("path") == "/events"
	})
	// The server logs the stream's end before the page has handled it:
	// wait for the page to say so.
	dashDo(t, ctx, "the connection state down while paused", chromedp.WaitVisible(chromedp.CSS(`#conn[data-conn="down"]`)))
	id := dashPost(t, client, d.URL, `{"kind":"longrunning","params":{"iterations":1,"interval":"0s"}}`)["id"].(string)

	dashSetHidden(t, ctx, false)
	dashPoll[string](t, ctx, "the task started while hidden, finished", dashStateOf, id, "succeeded")
	dashDo(t, ctx, "waiting for the stream", chromedp.WaitVisible(chromedp.CSS(`#conn[data-conn="live"]`)))
}

// The form starts a download too: choosing the kind shows its fields (and
// only its fields are required), and the row counts the bytes.
func TestDashboardStartsDownload(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("cancellation "), 20000) // 260,000 bytes
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "file.bin", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(files.Close)
	d := startTaskd(t)
	ctx := browsertest.New(t, 1400, 1000)
	dashDo(t, ctx, "opening the dashboard", chromedp.Navigate(d.URL+"/"),
		chromedp.WaitReady(chromedp.CSS(`#tasks[aria-busy="false"]`)))

	sum := sha256.Sum256(body)
	dashDo(t, ctx, "choosing the download kind", chromedp.SetValue(chromedp.CSS(`form#start-task select[name="kind"]`), "download"))
	dashRun(t, ctx, "telling the form", chromedp.Evaluate[bool](
		`document.querySelector('form#start-task select[name="kind"]').dispatchEvent(new Event('change', {bubbles: true}))`))
	dashDo(t, ctx, "filling in a download",
		chromedp.SendKeys(chromedp.CSS(`form#start-task input[name="url"]`), files.URL+"/file.bin"),
		chromedp.SendKeys(chromedp.CSS(`form#start-task input[name="sha256"]`), hex.EncodeToString(sum[:])),
		chromedp.Click(chromedp.CSS(`form#start-task button[type="submit"]`)))
	id := dashPoll[string](t, ctx, "the download's row", `() => {
		const r = document.querySelector('[data-task-id] [data-field="kind"]');
		return r && r.textContent.startsWith('download') ? r.closest('[data-task-id]').dataset.taskId : '';
	}`)
	dashPoll[string](t, ctx, "the download to succeed", dashStateOf, id, "succeeded")
	progress := dashRun(t, ctx, "reading the progress", chromedp.Text(chromedp.CSS(dashRow(id)+` [data-field="progress"]`)))
	if progress != "253.9 KiB / 253.9 KiB" {
		t.Errorf("progress %q, want 253.9 KiB / 253.9 KiB", progress)
	}
	task := dashGetTask(t, h1Client(t), d.URL, id)
	if p, _ := task["params"].(map[string]any); p["url"] != files.URL+"/file.bin" || p["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("params %v", task["params"])
	}
}

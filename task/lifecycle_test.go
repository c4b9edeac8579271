package task_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/internal/testlog"
	"github.com/go-cancellation/cancellation/task"
)

// TestLeaseLostCancelsAndHandsBack: a node that cannot renew the lease
// cancels the task itself with ErrLeaseLost; once it can write again the
// task goes back to the queue and runs again as attempt 2.
func TestLeaseLostCancelsAndHandsBack(t *testing.T) {
	t.Parallel()
	cs := &countingStore{Store: openStore(t, newBucket())}
	causes := make(chan error, 1)
	resume := make(chan struct{})
	attempts := make(chan int, 2)
	kind := task.Kind{Name: "lease", Run: func(tok cancellation.Token, run *task.Run) (string, error) {
		attempts <- run.Attempt()
		if run.Attempt() > 1 {
			return "second attempt", nil
		}
		<-tok.Done()
		causes <- context.Cause(tok)
		<-resume
		return "", tok.Err()
	}}
	const lease = 300 * time.Millisecond
	startRunner(t, runnerOpts{store: cs, lease: lease, kinds: []task.Kind{kind}})
	r2, _ := task.NewRunner(task.Config{Store: cs, Kinds: task.NewRegistry(kind)})
	tk, _, _ := r2.Submit(testlog.DeadlineContext(t), task.Spec{Kind: "lease"})
	recvT(t, attempts, "first attempt")
	cs.fail.Store(true)
	lost := time.Now()
	if cause := recvT(t, causes, "lease lost"); !errors.Is(cause, task.ErrLeaseLost) {
		t.Fatalf("cause %v, want ErrLeaseLost", cause)
	}
	if d := time.Since(lost); d > lease+testlog.TimeLeft(t)/2 {
		t.Fatalf("lease lost after %v", d)
	}
	cs.fail.Store(false)
	close(resume)
	if a := recvT(t, attempts, "second attempt"); a != 2 {
		t.Fatalf("attempt %d, want 2", a)
	}
	final := waitState(t, cs, tk.ID, task.Succeeded)
	if final.Attempt != 2 || final.Result != "second attempt" {
		t.Fatalf("final %+v", final)
	}
}

// TestLeaseRenewedWhileHealthy: a task running for several lease periods
// keeps its lease.
func TestLeaseRenewedWhileHealthy(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	const lease = time.Second
	kind := task.Kind{Name: "long", Run: func(tok cancellation.Token, run *task.Run) (string, error) {
		if err := cancellation.Sleep(tok, 2*lease); err != nil {
			return "", fmt.Errorf("canceled after %v: %w", context.Cause(tok), err)
		}
		return "ok", nil
	}}
	r := startRunner(t, runnerOpts{store: s, lease: lease, kinds: []task.Kind{kind}})
	tk, _, _ := r.Submit(testlog.DeadlineContext(t), task.Spec{Kind: "long"})
	running := waitState(t, s, tk.ID, task.Running)
	if running.Lease == nil || running.Lease.Node != "node-a" || running.Lease.Duration != task.Duration(lease) {
		t.Fatalf("running record's lease %+v", running.Lease)
	}
	ch, _ := s.Watch(testlog.DeadlineContext(t), task.WatchOptions{ID: tk.ID})
	renewed := false
	for ev := range ch {
		if ev.Task.Lease != nil && ev.Task.Lease.Renewals > 0 {
			renewed = true
		}
		if ev.Task.State.Final() {
			if ev.Task.State != task.Succeeded || !renewed {
				t.Fatalf("final %+v (renewed %v)", ev.Task, renewed)
			}
			return
		}
	}
}

// TestShutdownHandsBack: Shutdown cancels what is still running after the
// grace period with "node shutting down" and puts it back in the queue;
// the next runner runs it as attempt 2.
func TestShutdownHandsBack(t *testing.T) {
	t.Parallel()
	bucket := newBucket()
	s := openStore(t, bucket)
	g := newGate()
	a, _ := task.NewRunner(task.Config{Store: s, Kinds: task.NewRegistry(g.kind()), Node: "node-a", Logger: discard()})
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := testlog.DeadlineContext(t)
	tk, _, _ := a.Submit(ctx, task.Spec{Kind: "gate"})
	recvT(t, g.started, "start")
	if err := a.Shutdown(ctx, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if cause := recvT(t, g.causes, "cause"); !errors.Is(cause, task.ErrShuttingDown) || cause.Error() != "node shutting down" {
		t.Fatalf("cause %v", cause)
	}
	back, _, _ := s.Get(ctx, tk.ID)
	if back.State != task.Queued || back.Attempt != 1 || back.Node != "" || back.FinishedAt != nil {
		t.Fatalf("handed back record %+v", back)
	}
	if _, _, err := a.Submit(ctx, task.Spec{Kind: "gate"}); !errors.Is(err, task.ErrClosed) {
		t.Fatalf("Submit after Shutdown = %v", err)
	}
	startRunner(t, runnerOpts{store: openStore(t, bucket), node: "node-b", kinds: []task.Kind{g.kind()}})
	recvT(t, g.started, "start on node b")
	again := waitState(t, s, tk.ID, task.Running)
	if again.Attempt != 2 || again.Node != "node-b" {
		t.Fatalf("rerun %+v, want attempt 2 on node-b", again)
	}
	close(g.release)
	waitState(t, s, tk.ID, task.Succeeded)
}

func TestShutdownGraceLetsTasksFinish(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	g := newGate()
	a, _ := task.NewRunner(task.Config{Store: s, Kinds: task.NewRegistry(g.kind()), Logger: discard()})
	a.Start(t.Context())
	ctx := testlog.DeadlineContext(t)
	tk, _, _ := a.Submit(ctx, task.Spec{Kind: "gate"})
	recvT(t, g.started, "start")
	done := make(chan error, 1)
	go func() { done <- a.Shutdown(ctx, testlog.TimeLeft(t)) }()
	close(g.release)
	if err := recvT(t, done, "Shutdown"); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Get(ctx, tk.ID); got.State != task.Succeeded {
		t.Fatalf("state %s, want succeeded within the grace period", got.State)
	}
}

func TestRunScoped(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	r := startRunner(t, runnerOpts{store: s, concurrency: 1, kinds: []task.Kind{task.LongRunning()}})
	ctx := testlog.DeadlineContext(t)
	started := make(chan string, 1)
	wait := func(tok cancellation.Token, run *task.Run) (string, error) {
		started <- run.ID()
		<-tok.Done()
		return "", tok.Err()
	}
	spec := task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"iterations":5,"interval":"1s"}`)}

	// The request goes away: canceled with its cause.
	req := cancellation.New(ctx)
	errDisconnected := errors.New("client disconnected")
	type out struct {
		t   *task.Task
		err error
	}
	res := make(chan out, 1)
	go func() {
		tk, _, err := r.RunScoped(req.Token(), spec, wait)
		res <- out{tk, err}
	}()
	id := recvT(t, started, "scoped start")
	waitState(t, s, id, task.Running) // recorded after ScopedRecordDelay
	p, _ := r.Store().List(ctx, task.ListOptions{State: task.Running})
	if len(p.Tasks) != 1 || p.Tasks[0].ID != id || !p.Tasks[0].RequestScoped || p.Tasks[0].Attempt != 1 {
		t.Fatalf("running scoped task not listed: %+v", p.Tasks)
	}
	req.CancelCause(errDisconnected)
	o := recvT(t, res, "RunScoped's return")
	if !errors.Is(o.err, context.Canceled) || o.t.State != task.Canceled || o.t.Cause != "client disconnected" || o.t.StopLatencyMS == nil {
		t.Fatalf("RunScoped = %+v, %v", o.t, o.err)
	}

	// Canceled through the API.
	go func() {
		tk, _, err := r.RunScoped(ctx, spec, wait)
		res <- out{tk, err}
	}()
	id = recvT(t, started, "second scoped start")
	waitState(t, s, id, task.Running)
	if _, err := r.Cancel(ctx, id, task.CancelRequest{Reason: "stop it"}); err != nil {
		t.Fatal(err)
	}
	o = recvT(t, res, "RunScoped's return")
	if o.t.State != task.Canceled || o.t.Cause != "canceled: stop it" {
		t.Fatalf("RunScoped after Cancel = %+v, %v", o.t, o.err)
	}
	if _, _, err := r.RunScoped(ctx, task.Spec{Kind: "nope"}, wait); !errors.Is(err, task.ErrUnknownKind) {
		t.Fatalf("unknown kind: %v", err)
	}
}

// TestRunScopedShortNotRecorded: a request-scoped task that ends within
// the record delay costs the store nothing, and still reports its end.
func TestRunScopedShortNotRecorded(t *testing.T) {
	t.Parallel()
	cs := &countingStore{Store: openStore(t, newBucket())}
	stopped := make(chan task.Stopped, 1)
	r := startRunner(t, runnerOpts{store: cs, kinds: []task.Kind{task.LongRunning()}, onStop: func(st task.Stopped) { stopped <- st }})
	ctx := testlog.DeadlineContext(t)
	tk, res, err := r.RunScoped(ctx, task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"iterations":1,"interval":"0s"}`)},
		func(tok cancellation.Token, run *task.Run) (string, error) {
			run.Progress(1, 1, "done")
			return "quick", nil
		})
	if err != nil || res != "quick" || tk.State != task.Succeeded || tk.Progress.Done != 1 || !tk.RequestScoped {
		t.Fatalf("RunScoped = %+v, %q, %v", tk, res, err)
	}
	if st := recvT(t, stopped, "OnStop"); st.Task.ID != tk.ID {
		t.Fatalf("OnStop for %s", st.Task.ID)
	}
	if _, _, err := cs.Get(ctx, tk.ID); !errors.Is(err, task.ErrNotFound) {
		t.Fatalf("short scoped task in the store: %v", err)
	}
	if n := cs.creates.Load() + cs.updates.Load(); n != 0 {
		t.Fatalf("%d store writes for a short scoped task", n)
	}
}

func TestRetentionDeletesFinished(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	r := startRunner(t, runnerOpts{store: s, retention: 100 * time.Millisecond, kinds: []task.Kind{task.LongRunning()}})
	ctx := testlog.DeadlineContext(t)
	tk, _, _ := r.Submit(ctx, task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"iterations":1,"interval":"0s"}`)})
	done := waitState(t, s, tk.ID, task.Succeeded)
	_, rev, _ := s.Get(ctx, tk.ID)
	ch, _ := s.Watch(ctx, task.WatchOptions{ID: tk.ID, After: rev})
	for ev := range ch {
		if ev.Deleted {
			if age := time.Since(*done.FinishedAt); age < 100*time.Millisecond {
				t.Fatalf("deleted %v after it finished, before the retention", age)
			}
			return
		}
	}
	t.Fatal("finished task not deleted after the retention")
}

func TestLongRunningLogsAndProgress(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	sink := testlog.NewSink()
	r := startRunner(t, runnerOpts{store: s, logger: sink.Logger(), kinds: []task.Kind{task.LongRunning()}})
	tk, _, _ := r.Submit(testlog.DeadlineContext(t), task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"iterations":2,"interval":"1ms"}`)})
	waitState(t, s, tk.ID, task.Succeeded)
	for _, msg := range []string{"Iteration 1 of 2 completed.", "Iteration 2 of 2 completed."} {
		sink.Wait(t, msg, func(r testlog.Record) bool { return r.Str("msg") == msg && r.Str("task") == tk.ID })
	}
	stop := sink.Wait(t, "stop line", func(r testlog.Record) bool { return r.Str("msg") == "task stopped" })
	if stop.Str("task") != tk.ID || stop.Str("state") != "succeeded" {
		t.Fatalf("stop line %v", stop)
	}
}

func TestDownloadKind(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("cancellation ", 80000)
	sum := sha256.Sum256([]byte(body))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "file.txt", time.Unix(0, 0), strings.NewReader(body))
	}))
	defer ts.Close()
	dir := t.TempDir()
	s := openStore(t, newBucket())
	r := startRunner(t, runnerOpts{store: s, kinds: []task.Kind{task.Download(dir, ts.Client())}})
	params, _ := json.Marshal(task.DownloadParams{URL: ts.URL + "/file.txt", SHA256: hex.EncodeToString(sum[:])})
	tk, _, err := r.Submit(testlog.DeadlineContext(t), task.Spec{Kind: "download", Params: params})
	if err != nil {
		t.Fatal(err)
	}
	final := waitState(t, s, tk.ID, task.Succeeded)
	path := filepath.Join(dir, tk.ID, "file.txt")
	got, err := os.ReadFile(path)
	if err != nil || string(got) != body {
		t.Fatalf("downloaded file: %d bytes, %v", len(got), err)
	}
	if p := final.Progress; p == nil || p.Done != int64(len(body)) || p.Total != int64(len(body)) {
		t.Fatalf("progress %+v", final.Progress)
	}
	if !strings.Contains(final.Result, path) {
		t.Fatalf("result %q", final.Result)
	}
}

// TestDownloadResumesAfterHandBack: a download stopped by a drain keeps its
// .part, and the task's next attempt resumes it with a Range request.
func TestDownloadResumesAfterHandBack(t *testing.T) {
	t.Parallel()
	const half = 512 << 10
	body := strings.Repeat("0123456789abcdef", 2*half/16)
	ranges := make(chan string, 4)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if rg := r.Header.Get("Range"); rg != "" {
			ranges <- rg
			http.ServeContent(w, r, "big.bin", time.Unix(0, 0), strings.NewReader(body))
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write([]byte(body[:half]))
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // the rest never comes on the first attempt
	}))
	defer ts.Close()
	dir := t.TempDir()
	bucket := newBucket()
	s := openStore(t, bucket)
	kind := task.Download(dir, ts.Client())
	a, _ := task.NewRunner(task.Config{Store: s, Kinds: task.NewRegistry(kind), Node: "node-a", Logger: discard()})
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := testlog.DeadlineContext(t)
	params, _ := json.Marshal(task.DownloadParams{URL: ts.URL + "/big.bin"})
	tk, _, err := a.Submit(ctx, task.Spec{Kind: "download", Params: params})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the first half to be reported, then drain node a.
	ch, _ := s.Watch(ctx, task.WatchOptions{ID: tk.ID, After: 1})
	for ev := range ch {
		if ev.Task != nil && ev.Task.Progress != nil && ev.Task.Progress.Done >= half {
			break
		}
	}
	if err := a.Shutdown(ctx, 0); err != nil {
		t.Fatal(err)
	}
	back, _, _ := s.Get(ctx, tk.ID)
	part := filepath.Join(dir, tk.ID, "big.bin.part")
	if fi, err := os.Stat(part); back.State != task.Queued || err != nil || fi.Size() < half {
		t.Fatalf("after the drain: state %s, .part %v %v", back.State, fi, err)
	}
	startRunner(t, runnerOpts{store: openStore(t, bucket), node: "node-b", kinds: []task.Kind{kind}})
	final := waitState(t, s, tk.ID, task.Succeeded)
	if rg := recvT(t, ranges, "a Range request"); rg != fmt.Sprintf("bytes=%d-", half) {
		t.Fatalf("second attempt asked for %q, want the rest after %d bytes", rg, half)
	}
	got, err := os.ReadFile(filepath.Join(dir, tk.ID, "big.bin"))
	if err != nil || string(got) != body || final.Attempt != 2 {
		t.Fatalf("file %d bytes (%v), attempt %d", len(got), err, final.Attempt)
	}
}

// enqueueFailing fails Enqueue while fail is set.
type enqueueFailing struct {
	task.Store
	fail atomic.Bool
	hits atomic.Int64
}

func (e *enqueueFailing) Enqueue(ctx context.Context, id string) error {
	if e.fail.Load() {
		e.hits.Add(1)
		return errUnreachable
	}
	return e.Store.Enqueue(ctx, id)
}

// TestSubmitNotQueued: a task that cannot be put on the queue is retried
// for a lease, then marked failed ("not queued: …") instead of being left
// queued with nothing to run it.
func TestSubmitNotQueued(t *testing.T) {
	t.Parallel()
	s := &enqueueFailing{Store: openStore(t, newBucket())}
	s.fail.Store(true)
	r := startRunner(t, runnerOpts{store: s, lease: 300 * time.Millisecond, kinds: []task.Kind{task.LongRunning()}})
	ctx := testlog.DeadlineContext(t)
	spec := task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"iterations":1,"interval":"0s"}`), IdempotencyKey: "k1"}
	if _, _, err := r.Submit(ctx, spec); !errors.Is(err, errUnreachable) || s.hits.Load() < 2 {
		t.Fatalf("Submit with the queue unreachable: %v after %d tries", err, s.hits.Load())
	}
	p, _ := s.List(ctx, task.ListOptions{})
	if len(p.Tasks) != 1 || p.Tasks[0].State != task.Failed || !strings.HasPrefix(p.Tasks[0].Cause, "not queued: ") {
		t.Fatalf("task not queued: %+v", p.Tasks)
	}

	// The same key again, the queue back: the failed task, not a new one.
	s.fail.Store(false)
	again, created, err := r.Submit(ctx, spec)
	if err != nil || created || again.ID != p.Tasks[0].ID || again.State != task.Failed {
		t.Fatalf("Submit again with the key = %+v, %v, %v", again, created, err)
	}
}

// brokenWatch hands the runner a first watch that delivers nothing and
// ends when the test closes it, as a watch broken by the network does.
type brokenWatch struct {
	task.Store
	first chan task.Event
	calls atomic.Int64
}

func (b *brokenWatch) Watch(ctx context.Context, opts task.WatchOptions) (<-chan task.Event, error) {
	if opts.ID == "" && b.calls.Add(1) == 1 {
		return b.first, nil
	}
	return b.Store.Watch(ctx, opts)
}

// TestCancelMissedByBrokenWatch: a cancel written while the runner's watch
// was broken, before it had seen any change, reaches the running task once
// the watch is re-established (the new watch starts after it).
func TestCancelMissedByBrokenWatch(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	b := &brokenWatch{Store: s, first: make(chan task.Event)}
	g := newGate()
	// A long lease: the first renewal, which would also find the cancel
	// in the record, comes long after the test's bound below.
	const lease = 3 * time.Minute
	r := startRunner(t, runnerOpts{store: b, lease: lease, kinds: []task.Kind{g.kind()}})
	ctx := testlog.DeadlineContext(t)
	tk, _, err := r.Submit(ctx, task.Spec{Kind: "gate"})
	if err != nil {
		t.Fatal(err)
	}
	recvT(t, g.started, "start")
	other, _ := task.NewRunner(task.Config{Store: s, Kinds: task.NewRegistry(g.kind()), Node: "node-b"})
	if _, err := other.Cancel(ctx, tk.ID, task.CancelRequest{Reason: "while the watch was down"}); err != nil {
		t.Fatal(err)
	}
	close(b.first)
	bound := time.NewTimer(min(lease/3, testlog.TimeLeft(t)))
	defer bound.Stop()
	var ce *task.CancelError
	select {
	case cause := <-g.causes:
		if !errors.As(cause, &ce) || ce.Request.Reason != "while the watch was down" {
			t.Fatalf("cause %v", cause)
		}
	case <-bound.C:
		t.Fatal("the cancel written while the watch was broken did not reach the task")
	}
	waitState(t, s, tk.ID, task.Canceled)
}

// TestLeaseLostAtLastAttempt: a node that loses the lease of a task's last
// attempt marks it failed with "node lost" instead of queuing it again.
func TestLeaseLostAtLastAttempt(t *testing.T) {
	t.Parallel()
	cs := &countingStore{Store: openStore(t, newBucket())}
	causes := make(chan error, 1)
	resume := make(chan struct{})
	kind := task.Kind{Name: "lease", Run: func(tok cancellation.Token, run *task.Run) (string, error) {
		<-tok.Done()
		causes <- context.Cause(tok)
		<-resume
		return "", tok.Err()
	}}
	startRunner(t, runnerOpts{store: cs, lease: 300 * time.Millisecond, kinds: []task.Kind{kind}})
	r2, _ := task.NewRunner(task.Config{Store: cs, Kinds: task.NewRegistry(kind)})
	tk, _, err := r2.Submit(testlog.DeadlineContext(t), task.Spec{Kind: "lease", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, cs, tk.ID, task.Running)
	cs.fail.Store(true)
	if cause := recvT(t, causes, "lease lost"); !errors.Is(cause, task.ErrLeaseLost) {
		t.Fatalf("cause %v, want ErrLeaseLost", cause)
	}
	cs.fail.Store(false)
	close(resume)
	final := waitState(t, cs, tk.ID, task.Failed)
	if final.Attempt != 1 || !strings.HasPrefix(final.Cause, "node lost: node-a lost the lease of attempt 1 of 1") {
		t.Fatalf("final %+v", final)
	}
}

// TestRunScopedManyRecorded: request-scoped tasks that start together wait
// for their record delay side by side; each long one is recorded, the
// short ones between them never are.
func TestRunScopedManyRecorded(t *testing.T) {
	t.Parallel()
	cs := &countingStore{Store: openStore(t, newBucket())}
	r := startRunner(t, runnerOpts{store: cs, kinds: []task.Kind{task.LongRunning()}})
	ctx := testlog.DeadlineContext(t)
	spec := task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"iterations":5,"interval":"1s"}`)}
	quick := func(cancellation.Token, *task.Run) (string, error) { return "quick", nil }
	var short []string
	type long struct {
		req *cancellation.Source
		id  chan string
		end chan error
	}
	var longs []long
	for i := range 3 {
		l := long{req: cancellation.New(ctx), id: make(chan string, 1), end: make(chan error, 1)}
		go func() {
			_, _, err := r.RunScoped(l.req.Token(), spec, func(tok cancellation.Token, run *task.Run) (string, error) {
				l.id <- run.ID()
				<-tok.Done()
				return "", tok.Err()
			})
			l.end <- err
		}()
		longs = append(longs, l)
		if i < 2 {
			tk, _, err := r.RunScoped(ctx, spec, quick)
			if err != nil {
				t.Fatal(err)
			}
			short = append(short, tk.ID)
		}
	}
	for i, l := range longs {
		id := recvT(t, l.id, "long scoped start")
		waitState(t, cs, id, task.Running)
		l.req.Cancel()
		if err := recvT(t, l.end, "long scoped end"); !errors.Is(err, context.Canceled) {
			t.Fatalf("long %d ended with %v", i, err)
		}
	}
	for _, id := range short {
		if _, _, err := cs.Get(ctx, id); !errors.Is(err, task.ErrNotFound) {
			t.Fatalf("short scoped task %s in the store: %v", id, err)
		}
	}
}

// queueStore reports every QueueLen answer on lens and counts the Enqueues
// of each id.
type queueStore struct {
	task.Store
	lens     chan int
	mu       sync.Mutex
	enqueued map[string]int
}

func newQueueStore(s task.Store) *queueStore {
	return &queueStore{Store: s, lens: make(chan int, 1000), enqueued: make(map[string]int)}
}

func (q *queueStore) QueueLen(ctx context.Context) (int, error) {
	n, err := q.Store.QueueLen(ctx)
	if err == nil {
		select {
		case q.lens <- n:
		default:
		}
	}
	return n, err
}

func (q *queueStore) Enqueue(ctx context.Context, id string) error {
	q.mu.Lock()
	q.enqueued[id]++
	q.mu.Unlock()
	return q.Store.Enqueue(ctx, id)
}

func (q *queueStore) enqueues(id string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.enqueued[id]
}

const requeueMsg = "task was queued but not on the work queue; queuing it again"

// TestOrphanedQueuedTaskRunsAgain: a queued record whose id never reached
// the work queue (its node stopped between the two writes) is queued again
// once the queue has been empty for two leases, and runs once.
func TestOrphanedQueuedTaskRunsAgain(t *testing.T) {
	t.Parallel()
	s := newQueueStore(openStore(t, newBucket()))
	ctx := testlog.DeadlineContext(t)
	orphan := &task.Task{ID: task.NewID(), Kind: "longrunning", Params: json.RawMessage(`{"iterations":1,"interval":"0s"}`),
		State: task.Queued, MaxAttempts: 3, CreatedAt: time.Now()}
	if _, _, err := s.Create(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	sink := testlog.NewSink()
	const lease = 300 * time.Millisecond
	start := time.Now()
	startRunner(t, runnerOpts{store: s, lease: lease, logger: sink.Logger(), kinds: []task.Kind{task.LongRunning()}})
	done := waitState(t, s, orphan.ID, task.Succeeded)
	if took := time.Since(start); took < 2*lease {
		t.Errorf("queued again after %v, before two leases of empty queue", took)
	}
	if done.Attempt != 1 || s.enqueues(orphan.ID) != 1 {
		t.Errorf("attempt %d after %d Enqueues, want the orphan queued once and run once", done.Attempt, s.enqueues(orphan.ID))
	}
	sink.Wait(t, "the requeue warning", func(r testlog.Record) bool {
		return r.Str("msg") == requeueMsg && r.Str("task") == orphan.ID
	})
}

// TestWaitingTaskNotRequeued: a queued task whose id waits on the queue
// behind a full runner is not queued again, however long it waits.
func TestWaitingTaskNotRequeued(t *testing.T) {
	t.Parallel()
	s := newQueueStore(openStore(t, newBucket()))
	g := newGate()
	sink := testlog.NewSink()
	const lease = 300 * time.Millisecond
	r := startRunner(t, runnerOpts{store: s, concurrency: 1, lease: lease, logger: sink.Logger(), kinds: []task.Kind{g.kind()}})
	ctx := testlog.DeadlineContext(t)
	first, _, err := r.Submit(ctx, task.Spec{Kind: "gate"})
	if err != nil {
		t.Fatal(err)
	}
	recvT(t, g.started, "first start")
	waiting, _, err := r.Submit(ctx, task.Spec{Kind: "gate"})
	if err != nil {
		t.Fatal(err)
	}
	// Four checks that saw the waiting id on the queue: more than the three
	// leases after which an orphan is queued again.
	for seen := 0; seen < 4; {
		if n := testlog.Recv(t, "a queue check", s.lens); n > 0 {
			seen++
		}
	}
	if n := s.enqueues(waiting.ID); n != 1 {
		t.Fatalf("the waiting task was queued %d times, want once", n)
	}
	close(g.release)
	waitState(t, s, first.ID, task.Succeeded)
	if done := waitState(t, s, waiting.ID, task.Succeeded); done.Attempt != 1 || g.runs.Load() != 2 {
		t.Fatalf("attempt %d, %d runs; want each task run once", done.Attempt, g.runs.Load())
	}
	if n := sink.Count(func(r testlog.Record) bool { return r.Str("msg") == requeueMsg }); n != 0 {
		t.Fatalf("%d requeue warnings for a task that was on the queue:\n%s", n, sink.Dump())
	}
}

package task_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/internal/testlog"
	"github.com/go-cancellation/cancellation/task"
)

func TestIDsUniqueURLSafeSorted(t *testing.T) {
	t.Parallel()
	const n = 10000
	ids := make([]string, n)
	seen := make(map[string]bool, n)
	for i := range ids {
		ids[i] = task.NewID()
		if seen[ids[i]] {
			t.Fatalf("duplicate id %s", ids[i])
		}
		seen[ids[i]] = true
		if url.PathEscape(ids[i]) != ids[i] || !task.ValidID(ids[i]) {
			t.Fatalf("id %q is not URL-safe or not valid", ids[i])
		}
	}
	if !slices.IsSorted(ids) {
		t.Fatal("ids made one after another do not sort in creation order")
	}
	for _, bad := range []string{"", "t_", "x_01JD0000000000000000000000", "t_01JD000000000000000000000I", "t_01jd0000000000000000000000"} {
		if task.ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestStatesMoveForwardOnly(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	r := startRunner(t, runnerOpts{store: s, kinds: []task.Kind{task.LongRunning()}})
	ctx := testlog.DeadlineContext(t)
	events, err := s.Watch(ctx, task.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tk, created, err := r.Submit(ctx, task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"iterations":3,"interval":"5ms"}`)})
	if err != nil || !created || tk.State != task.Queued || tk.Attempt != 0 {
		t.Fatalf("Submit = %+v, %v, %v", tk, created, err)
	}
	rank := map[task.State]int{task.Queued: 0, task.Running: 1, task.Canceling: 2, task.Succeeded: 3, task.Failed: 3, task.Canceled: 3}
	prev := task.Queued
	var last *task.Task
	for ev := range events {
		if ev.ID != tk.ID {
			continue
		}
		// A watcher may miss a state superseded before delivery, never
		// see one go backwards.
		if st := ev.Task.State; rank[st] < rank[prev] || prev.Final() {
			t.Fatalf("state went from %s to %s", prev, st)
		}
		prev, last = ev.Task.State, ev.Task
		if prev.Final() {
			break
		}
	}
	if last.State != task.Succeeded || last.Result != task.CompletedMessage || last.Attempt != 1 ||
		last.Node != "node-a" || last.StartedAt == nil || last.FinishedAt == nil || last.Lease != nil {
		t.Fatalf("final record %+v", last)
	}
	if p := last.Progress; p == nil || p.Done != 3 || p.Total != 3 || p.Message != "Iteration 3 of 3 completed." {
		t.Fatalf("final progress %+v, want 3 of 3", last.Progress)
	}
	if string(last.Params) != `{"iterations":3,"interval":"5ms"}` {
		t.Fatalf("params %s", last.Params)
	}
}

func TestCanMove(t *testing.T) {
	t.Parallel()
	ok := map[[2]task.State]bool{
		{task.Queued, task.Running}: true, {task.Queued, task.Canceled}: true,
		{task.Running, task.Canceling}: true, {task.Running, task.Succeeded}: true,
		{task.Running, task.Failed}: true, {task.Running, task.Canceled}: true,
		{task.Running, task.Queued}: true, {task.Canceling, task.Canceled}: true,
		{task.Canceling, task.Succeeded}: true, {task.Canceling, task.Failed}: true,
		{task.Canceling, task.Queued}: true,
	}
	for _, a := range task.States {
		for _, b := range task.States {
			if got := a.CanMove(b); got != ok[[2]task.State{a, b}] {
				t.Errorf("%s.CanMove(%s) = %v", a, b, got)
			}
		}
	}
}

func TestCancelQueuedNeverStarts(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	g := newGate()
	r := startRunner(t, runnerOpts{store: s, concurrency: 1, kinds: []task.Kind{g.kind()}})
	ctx := testlog.DeadlineContext(t)
	first, _, err := r.Submit(ctx, task.Spec{Kind: "gate"})
	if err != nil {
		t.Fatal(err)
	}
	recvT(t, g.started, "start of the first task")
	second, _, err := r.Submit(ctx, task.Spec{Kind: "gate"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Cancel(ctx, second.ID, task.CancelRequest{Reason: "not needed"})
	if err != nil || got.State != task.Canceled || got.Cause != "canceled: not needed" || got.FinishedAt == nil {
		t.Fatalf("Cancel of a queued task = %+v, %v", got, err)
	}
	close(g.release)
	waitState(t, s, first.ID, task.Succeeded)
	// A third task runs after the canceled one would have: once it ran,
	// the queue has passed the second.
	third, _, _ := r.Submit(ctx, task.Spec{Kind: "gate"})
	recvT(t, g.started, "start of the third task")
	waitState(t, s, third.ID, task.Succeeded)
	if n := g.runs.Load(); n != 2 {
		t.Fatalf("%d tasks ran, want 2: the canceled queued task started", n)
	}
	if tk, _ := r.Get(ctx, second.ID); tk.State != task.Canceled || tk.Attempt != 0 || tk.StartedAt != nil {
		t.Fatalf("canceled queued task %+v", tk)
	}
}

func TestCancelReachesTokenWithReason(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	g := newGate()
	var stopped = make(chan task.Stopped, 1)
	r := startRunner(t, runnerOpts{store: s, kinds: []task.Kind{g.kind()}, onStop: func(st task.Stopped) { stopped <- st }})
	ctx := testlog.DeadlineContext(t)
	tk, _, _ := r.Submit(ctx, task.Spec{Kind: "gate"})
	recvT(t, g.started, "start")
	got, err := r.Cancel(ctx, tk.ID, task.CancelRequest{Reason: "operator: wrong input file", RequestID: "req-1"})
	if err != nil || got.State != task.Canceling || got.Cancel.Via != "node-a" {
		t.Fatalf("Cancel = %+v, %v; want canceling via node-a", got, err)
	}
	cause := recvT(t, g.causes, "cancellation of the token")
	var ce *task.CancelError
	if !errors.As(cause, &ce) || ce.Request.Reason != "operator: wrong input file" || ce.Request.Via != "node-a" || ce.Request.RequestID != "req-1" {
		t.Fatalf("token's cause %#v, want a *CancelError with the reason and sender", cause)
	}
	final := waitState(t, s, tk.ID, task.Canceled)
	if final.Cause != "canceled: operator: wrong input file" || final.StopLatencyMS == nil || final.Cancel.Reason != "operator: wrong input file" {
		t.Fatalf("final record %+v", final)
	}
	st := recvT(t, stopped, "OnStop")
	if task.CauseKind(st.Cause) != task.CauseRequest || st.StopLatency <= 0 {
		t.Fatalf("OnStop got %+v", st)
	}
	// Idempotent: again is fine and keeps the first reason.
	again, err := r.Cancel(ctx, tk.ID, task.CancelRequest{Reason: "second"})
	if err != nil || again.State != task.Canceled || again.Cancel.Reason != "operator: wrong input file" {
		t.Fatalf("second Cancel = %+v, %v", again, err)
	}
}

func TestCancelFromAnotherNodeByWatch(t *testing.T) {
	t.Parallel()
	bucket := newBucket()
	g := newGate()
	a := startRunner(t, runnerOpts{store: openStore(t, bucket), node: "node-a", kinds: []task.Kind{g.kind()}})
	// Node b only answers the API: it is never started, so it runs nothing.
	b, err := task.NewRunner(task.Config{Store: openStore(t, bucket), Kinds: task.NewRegistry(g.kind()), Node: "node-b"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testlog.DeadlineContext(t)
	tk, _, _ := b.Submit(ctx, task.Spec{Kind: "gate"})
	recvT(t, g.started, "start on node a")
	if _, err := b.Cancel(ctx, tk.ID, task.CancelRequest{Reason: "from b"}); err != nil {
		t.Fatal(err)
	}
	var ce *task.CancelError
	if cause := recvT(t, g.causes, "cancel delivered to node a"); !errors.As(cause, &ce) || ce.Request.Via != "node-b" {
		t.Fatalf("cause %v, want a cancel via node-b", cause)
	}
	final := waitState(t, a.Store(), tk.ID, task.Canceled)
	if final.Node != "node-a" || final.Cancel.Via != "node-b" {
		t.Fatalf("final %+v", final)
	}
}

func TestCancelFinishedConflicts(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	r := startRunner(t, runnerOpts{store: s, kinds: []task.Kind{task.LongRunning()}})
	ctx := testlog.DeadlineContext(t)
	tk, _, _ := r.Submit(ctx, task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"iterations":1,"interval":"0s"}`)})
	waitState(t, s, tk.ID, task.Succeeded)
	got, err := r.Cancel(ctx, tk.ID, task.CancelRequest{})
	if !errors.Is(err, task.ErrFinished) || got.State != task.Succeeded || got.Cancel != nil {
		t.Fatalf("Cancel of a succeeded task = %+v, %v; want it unchanged and ErrFinished", got, err)
	}
	if _, err := r.Cancel(ctx, task.NewID(), task.CancelRequest{}); !errors.Is(err, task.ErrNotFound) {
		t.Fatalf("Cancel of an unknown task = %v", err)
	}
}

func TestTimeoutIsASourceTimer(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	g := newGate()
	r := startRunner(t, runnerOpts{store: s, kinds: []task.Kind{g.kind()}})
	ctx := testlog.DeadlineContext(t)
	tk, _, err := r.Submit(ctx, task.Spec{Kind: "gate", Timeout: 50 * time.Millisecond})
	if err != nil || tk.Timeout != task.Duration(50*time.Millisecond) {
		t.Fatalf("Submit = %+v, %v", tk, err)
	}
	cause := recvT(t, g.causes, "timeout")
	var te *task.TimeoutError
	if !errors.As(cause, &te) || !errors.Is(cause, context.DeadlineExceeded) {
		t.Fatalf("cause %v, want a *TimeoutError", cause)
	}
	final := waitState(t, s, tk.ID, task.Failed)
	if final.Cause != "timeout: not finished within 50ms" {
		t.Fatalf("cause %q", final.Cause)
	}
	if _, _, err := r.Submit(ctx, task.Spec{Kind: "gate", Timeout: -time.Second}); !errors.Is(err, task.ErrInvalid) {
		t.Fatalf("negative timeout: %v", err)
	}
}

// TestProgressCoalesced: a million reports cause a bounded number of
// writes, at most one per interval, and the final value is stored.
func TestProgressCoalesced(t *testing.T) {
	t.Parallel()
	cs := &countingStore{Store: openStore(t, newBucket())}
	var elapsed time.Duration
	flood := task.Kind{Name: "flood", Run: func(tok cancellation.Token, run *task.Run) (string, error) {
		start := time.Now()
		const n = 1_000_000
		for i := int64(1); i <= n; i++ {
			run.Progress(i, n, "")
		}
		elapsed = time.Since(start)
		return "done", nil
	}}
	r := startRunner(t, runnerOpts{store: cs, kinds: []task.Kind{flood}})
	tk, _, _ := r.Submit(testlog.DeadlineContext(t), task.Spec{Kind: "flood"})
	final := waitState(t, cs, tk.ID, task.Succeeded)
	if final.Progress == nil || final.Progress.Done != 1_000_000 {
		t.Fatalf("final progress %+v, want the last value reported", final.Progress)
	}
	// Writes: the claim, the final record, and progress at most once per
	// 100ms of reporting (plus one at the start and lease renewals).
	bound := int64(elapsed/task.DefaultProgressInterval) + 4 + int64(elapsed/(task.DefaultLease/3))
	if n := cs.updates.Load(); n > bound {
		t.Fatalf("%d store writes for 1e6 progress reports in %v; want at most %d", n, elapsed, bound)
	}
	t.Logf("1e6 reports in %v: %d writes", elapsed, cs.updates.Load())
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	g := newGate()
	r := startRunner(t, runnerOpts{store: s, concurrency: 2, kinds: []task.Kind{g.kind()}})
	ctx := testlog.DeadlineContext(t)
	var ids []string
	for range 5 {
		tk, _, _ := r.Submit(ctx, task.Spec{Kind: "gate"})
		ids = append(ids, tk.ID)
	}
	recvT(t, g.started, "first start")
	recvT(t, g.started, "second start")
	if p, _ := s.List(ctx, task.ListOptions{State: task.Queued}); len(p.Tasks) != 3 {
		t.Fatalf("%d queued with 2 running, want 3", len(p.Tasks))
	}
	close(g.release)
	for _, id := range ids {
		waitState(t, s, id, task.Succeeded)
	}
	if p := g.peak.Load(); p != 2 {
		t.Fatalf("peak of %d tasks at once, want 2", p)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := openStore(t, newBucket())
	r, err := task.NewRunner(task.Config{Store: s, Kinds: task.NewRegistry(task.LongRunning())})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testlog.DeadlineContext(t)
	spec := task.Spec{Kind: "longrunning", IdempotencyKey: "k1"}
	a, created, err := r.Submit(ctx, spec)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	b, created, err := r.Submit(ctx, spec)
	if err != nil || created || b.ID != a.ID {
		t.Fatalf("second Submit with the key = %s, %v, %v; want %s, false", b.ID, created, err, a.ID)
	}
}

func TestKindsRegistry(t *testing.T) {
	t.Parallel()
	reg := task.NewRegistry(task.LongRunning(), task.Download(t.TempDir(), nil))
	if err := reg.Register(task.LongRunning()); err == nil {
		t.Fatal("registering a kind twice succeeded")
	}
	if err := reg.Register(task.Kind{Name: "nil"}); err == nil {
		t.Fatal("registering a kind without Run succeeded")
	}
	if got := reg.Names(); !slices.Equal(got, []string{"download", "longrunning"}) {
		t.Fatalf("Names = %v", got)
	}
	r, _ := task.NewRunner(task.Config{Store: openStore(t, newBucket()), Kinds: reg})
	ctx := testlog.DeadlineContext(t)
	for _, tt := range []struct {
		spec task.Spec
		want error
		msg  string
	}{
		{task.Spec{Kind: "nope"}, task.ErrUnknownKind, "known kinds are [download longrunning]"},
		{task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"iterations":0}`)}, task.ErrInvalid, "invalid iterations 0"},
		{task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"interval":"2h"}`)}, task.ErrInvalid, "invalid interval 2h0m0s"},
		{task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"interval":"soon"}`)}, task.ErrInvalid, `invalid duration "soon"`},
		{task.Spec{Kind: "longrunning", Params: json.RawMessage(`{"iterations":"5"}`)}, task.ErrInvalid, "iterations must be a number"},
		{task.Spec{Kind: "download", Params: json.RawMessage(`{"url":"ftp://x"}`)}, task.ErrInvalid, "invalid url"},
		{task.Spec{Kind: "download", Params: json.RawMessage(`{"url":"http://x/a","sha256":"zz"}`)}, task.ErrInvalid, "invalid sha256"},
	} {
		if _, _, err := r.Submit(ctx, tt.spec); !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Submit(%s %s) = %v, want %v saying %q", tt.spec.Kind, tt.spec.Params, err, tt.want, tt.msg)
		}
	}
	tk, _, err := r.Submit(ctx, task.Spec{Kind: "longrunning"})
	if err != nil || string(tk.Params) != `{"iterations":20,"interval":"1s"}` {
		t.Fatalf("defaults: %s, %v", tk.Params, err)
	}
}

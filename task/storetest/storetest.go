// Package storetest is the conformance suite every task.Store passes:
// records with compare-and-set updates, idempotent creation, listing
// newest first with filters and pages, watches with resumption, and the
// work queue.
//
// Call [Run] from a test of the store's package with a function that
// returns a new, empty store. The suite's subtests run in parallel on
// their own stores; they use t.Deadline for their bounds.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/task"
)

// Run runs the suite. newStore returns an empty store; it is called once
// per subtest, and the store is cleaned up through t.Cleanup by newStore's
// owner.
func Run(t *testing.T, newStore func(t *testing.T) task.Store) {
	tests := []struct {
		name string
		f    func(*testing.T, task.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateDuplicate", testCreateDuplicate},
		{"Idempotency", testIdempotency},
		{"UpdateCompareAndSet", testUpdateCAS},
		{"NoLostUpdate", testNoLostUpdate},
		{"NotFound", testNotFound},
		{"ListNewestFirstFiltersPages", testList},
		{"ListReadsOwnWrites", testListOwnWrites},
		{"Delete", testDelete},
		{"WatchChanges", testWatch},
		{"WatchOneTaskResume", testWatchResume},
		{"Queue", testQueue},
		{"QueueLen", testQueueLen},
		{"DequeueHonoursContext", testDequeueContext},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.f(t, newStore(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx := t.Context()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Second))
		t.Cleanup(cancel)
	}
	return ctx
}

func newTask(kind string) *task.Task {
	return &task.Task{
		ID: task.NewID(), Kind: kind, State: task.Queued, Attempt: 0,
		Params:    json.RawMessage(`{"iterations":3,"interval":"1s"}`),
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
}

func mustCreate(t *testing.T, s task.Store, tk *task.Task) uint64 {
	t.Helper()
	_, rev, err := s.Create(ctxFor(t), tk)
	if err != nil {
		t.Fatalf("Create(%s): %v", tk.ID, err)
	}
	return rev
}

func testCreateGet(t *testing.T, s task.Store) {
	ctx := ctxFor(t)
	tk := newTask("longrunning")
	tk.Timeout = task.Duration(time.Minute)
	stored, rev, err := s.Create(ctx, tk)
	if err != nil || rev == 0 || stored.ID != tk.ID {
		t.Fatalf("Create = %v, %d, %v", stored, rev, err)
	}
	got, grev, err := s.Get(ctx, tk.ID)
	if err != nil || grev != rev {
		t.Fatalf("Get = rev %d, %v; want rev %d", grev, err, rev)
	}
	a, _ := json.Marshal(tk)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Fatalf("Get returned\n%s\nwant\n%s", b, a)
	}
}

func testCreateDuplicate(t *testing.T, s task.Store) {
	tk := newTask("longrunning")
	mustCreate(t, s, tk)
	if _, _, err := s.Create(ctxFor(t), tk); !errors.Is(err, task.ErrExists) {
		t.Fatalf("second Create with the same id = %v, want ErrExists", err)
	}
}

func testIdempotency(t *testing.T, s task.Store) {
	ctx := ctxFor(t)
	first := newTask("longrunning")
	first.IdempotencyKey = "order-42"
	mustCreate(t, s, first)
	// Concurrent creations with the same key all get the first task.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			again := newTask("longrunning")
			again.IdempotencyKey = "order-42"
			got, _, err := s.Create(ctx, again)
			switch {
			case !errors.Is(err, task.ErrExists):
				errs <- fmt.Errorf("create with a used key: %v, want ErrExists", err)
			case got == nil || got.ID != first.ID:
				errs <- fmt.Errorf("create with a used key returned %v, want task %s", got, first.ID)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	other := newTask("longrunning")
	other.IdempotencyKey = "order-43"
	if _, _, err := s.Create(ctx, other); err != nil {
		t.Fatalf("Create with a new key: %v", err)
	}
}

func testUpdateCAS(t *testing.T, s task.Store) {
	ctx := ctxFor(t)
	tk := newTask("longrunning")
	rev := mustCreate(t, s, tk)
	tk.State = task.Running
	rev2, err := s.Update(ctx, tk, rev)
	if err != nil || rev2 <= rev {
		t.Fatalf("Update = %d, %v; want a revision above %d", rev2, err, rev)
	}
	tk.State = task.Queued // a stale writer tries to move it back
	if _, err := s.Update(ctx, tk, rev); !errors.Is(err, task.ErrConflict) {
		t.Fatalf("Update with a stale revision = %v, want ErrConflict", err)
	}
	got, _, _ := s.Get(ctx, tk.ID)
	if got.State != task.Running {
		t.Fatalf("state after a rejected update = %s, want running", got.State)
	}
}

// testNoLostUpdate: writers racing read-modify-write loops lose nothing.
func testNoLostUpdate(t *testing.T, s task.Store) {
	ctx := ctxFor(t)
	tk := newTask("longrunning")
	mustCreate(t, s, tk)
	const writers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for range each {
				for {
					cur, rev, err := s.Get(ctx, tk.ID)
					if err != nil {
						errs <- err
						return
					}
					if cur.Progress == nil {
						cur.Progress = &task.Progress{}
					}
					cur.Progress.Done++
					if _, err = s.Update(ctx, cur, rev); err == nil {
						break
					} else if !errors.Is(err, task.ErrConflict) {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, _, _ := s.Get(ctx, tk.ID)
	if got.Progress.Done != writers*each {
		t.Fatalf("counter = %d after %d increments: updates were lost", got.Progress.Done, writers*each)
	}
}

func testNotFound(t *testing.T, s task.Store) {
	ctx := ctxFor(t)
	for _, id := range []string{task.NewID(), "nope", "../etc", ""} {
		if _, _, err := s.Get(ctx, id); !errors.Is(err, task.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
	tk := newTask("x")
	if _, err := s.Update(ctx, tk, 1); !errors.Is(err, task.ErrNotFound) && !errors.Is(err, task.ErrConflict) {
		t.Errorf("Update of a missing task = %v, want ErrNotFound or ErrConflict", err)
	}
}

func testList(t *testing.T, s task.Store) {
	ctx := ctxFor(t)
	var ids []string
	for i := range 25 {
		tk := newTask("a")
		if i%5 == 0 {
			tk.Kind = "b"
		}
		if i%2 == 0 {
			tk.State = task.Running
		}
		mustCreate(t, s, tk)
		ids = append(ids, tk.ID)
	}
	// All, newest first, in pages of 10.
	var got []string
	opts := task.ListOptions{PageSize: 10}
	for pages := 0; ; pages++ {
		p, err := s.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Tasks) > 10 || pages > 3 {
			t.Fatalf("page of %d tasks, page %d", len(p.Tasks), pages)
		}
		for _, tk := range p.Tasks {
			got = append(got, tk.ID)
		}
		if p.NextPageToken == "" {
			break
		}
		opts.PageToken = p.NextPageToken
	}
	if len(got) != len(ids) {
		t.Fatalf("listed %d tasks, want %d", len(got), len(ids))
	}
	for i := range got {
		if got[i] != ids[len(ids)-1-i] {
			t.Fatalf("list position %d: %s, want %s (newest first)", i, got[i], ids[len(ids)-1-i])
		}
	}
	p, err := s.List(ctx, task.ListOptions{Kind: "b", State: task.Running})
	if err != nil {
		t.Fatal(err)
	}
	// i in {0, 10, 20}: kind b and even.
	if len(p.Tasks) != 3 || p.NextPageToken != "" {
		t.Fatalf("kind=b state=running: %d tasks (next %q), want 3", len(p.Tasks), p.NextPageToken)
	}
	for _, tk := range p.Tasks {
		if tk.Kind != "b" || tk.State != task.Running {
			t.Fatalf("filtered list has %s %s", tk.Kind, tk.State)
		}
	}
	if _, err := s.List(ctx, task.ListOptions{PageToken: "%%%"}); !errors.Is(err, task.ErrInvalid) {
		t.Fatalf("List with a malformed page token = %v, want ErrInvalid", err)
	}
	if p, _ := s.List(ctx, task.ListOptions{PageSize: 5000}); len(p.Tasks) != 25 {
		t.Fatalf("page size over the maximum: %d tasks", len(p.Tasks))
	}
}

func testListOwnWrites(t *testing.T, s task.Store) {
	ctx := ctxFor(t)
	tk := newTask("a")
	rev := mustCreate(t, s, tk)
	tk.State = task.Succeeded
	if _, err := s.Update(ctx, tk, rev); err != nil {
		t.Fatal(err)
	}
	p, err := s.List(ctx, task.ListOptions{State: task.Succeeded})
	if err != nil || len(p.Tasks) != 1 || p.Tasks[0].ID != tk.ID {
		t.Fatalf("List right after Update = %v, %v; want the updated task", p.Tasks, err)
	}
}

func testDelete(t *testing.T, s task.Store) {
	ctx := ctxFor(t)
	tk := newTask("a")
	rev := mustCreate(t, s, tk)
	if err := s.Delete(ctx, tk.ID, rev+1000); !errors.Is(err, task.ErrConflict) {
		t.Fatalf("Delete with a wrong revision = %v, want ErrConflict", err)
	}
	if err := s.Delete(ctx, tk.ID, rev); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, tk.ID); !errors.Is(err, task.ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
	if p, _ := s.List(ctx, task.ListOptions{}); len(p.Tasks) != 0 {
		t.Fatalf("List after Delete has %d tasks", len(p.Tasks))
	}
}

func recv(t *testing.T, ch <-chan task.Event) task.Event {
	t.Helper()
	ctx := ctxFor(t)
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-ctx.Done():
		t.Fatal("no event before the test's deadline")
	}
	panic("unreachable")
}

func testWatch(t *testing.T, s task.Store) {
	ctx, cancel := context.WithCancel(ctxFor(t))
	before := newTask("a")
	mustCreate(t, s, before)
	ch, err := s.Watch(ctx, task.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tk := newTask("a")
	rev := mustCreate(t, s, tk)
	tk.State = task.Running
	rev2, err := s.Update(ctx, tk, rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, tk.ID, rev2); err != nil {
		t.Fatal(err)
	}
	// The creation, the update and the deletion, in that order; a change
	// superseded before it was delivered may be missing (a watcher needs
	// only the latest), never one of the task written before the watch.
	var last uint64
	for {
		e := recv(t, ch)
		if e.ID != tk.ID || e.Rev <= last {
			t.Fatalf("event %+v after revision %d: want a later change of %s (changes only, not %s)", e, last, tk.ID, before.ID)
		}
		last = e.Rev
		switch {
		case e.Deleted:
			if e.Rev <= rev2 {
				t.Fatalf("deletion at %d, before the update at %d", e.Rev, rev2)
			}
		case e.Rev == rev && e.Task.State == task.Queued, e.Rev == rev2 && e.Task.State == task.Running:
			continue
		default:
			t.Fatalf("event %+v: want the creation at %d or the update at %d", e, rev, rev2)
		}
		break
	}
	cancel()
	for range ch { // must close
	}
}

func testWatchResume(t *testing.T, s task.Store) {
	ctx := ctxFor(t)
	other := newTask("a")
	tk := newTask("a")
	rev := mustCreate(t, s, tk)
	mustCreate(t, s, other)
	tk.Progress = &task.Progress{Done: 1, Total: 3}
	rev2, err := s.Update(ctx, tk, rev)
	if err != nil {
		t.Fatal(err)
	}
	// Resume one task's watch after rev: the update at rev2 comes first,
	// the other task never.
	ch, err := s.Watch(ctx, task.WatchOptions{ID: tk.ID, After: rev})
	if err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, ch); ev.Rev != rev2 || ev.Task.Progress.Done != 1 {
		t.Fatalf("resumed watch starts with %+v, want rev %d", ev, rev2)
	}
	tk.Progress.Done = 2
	rev3, err := s.Update(ctx, tk, rev2)
	if err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, ch); ev.Rev != rev3 || ev.Task.Progress.Done != 2 {
		t.Fatalf("then %+v, want rev %d", ev, rev3)
	}
	// Resuming at the latest revision delivers nothing old.
	ch2, err := s.Watch(ctx, task.WatchOptions{After: rev3})
	if err != nil {
		t.Fatal(err)
	}
	last := newTask("a")
	rev4 := mustCreate(t, s, last)
	if ev := recv(t, ch2); ev.Rev != rev4 || ev.ID != last.ID {
		t.Fatalf("watch after %d starts with %+v, want %s at %d", rev3, ev, last.ID, rev4)
	}
}

func testQueue(t *testing.T, s task.Store) {
	ctx := ctxFor(t)
	ids := []string{task.NewID(), task.NewID(), task.NewID()}
	for _, id := range ids {
		if err := s.Enqueue(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Dequeue(ctx)
	if err != nil || c.ID() != ids[0] {
		t.Fatalf("Dequeue = %v, %v; want %s first", c, err, ids[0])
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for range 3 {
		c, err := s.Dequeue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen[c.ID()]++
		if err := c.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("dequeued %v, want each of %v once (a released claim comes back)", seen, ids)
		}
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if c, err := s.Dequeue(short); err == nil {
		t.Fatalf("Dequeue of an empty queue returned %s: acknowledged ids came back", c.ID())
	}
}

func testDequeueContext(t *testing.T, s task.Store) {
	ctx, cancel := context.WithCancel(ctxFor(t))
	done := make(chan error, 1)
	go func() {
		_, err := s.Dequeue(ctx)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Dequeue after cancel = %v, want context.Canceled", err)
		}
	case <-ctxFor(t).Done():
		t.Fatal("Dequeue did not return after its context was canceled")
	}
}

func testPing(t *testing.T, s task.Store) {
	if err := s.Ping(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
}

// testQueueLen: QueueLen counts ids waiting and ids claimed but not yet
// acknowledged; an acknowledged id leaves, a released one stays.
func testQueueLen(t *testing.T, s task.Store) {
	ctx := ctxFor(t)
	want := func(n int, after string) {
		t.Helper()
		if got, err := s.QueueLen(ctx); err != nil || got != n {
			t.Fatalf("QueueLen after %s = %d, %v; want %d", after, got, err, n)
		}
	}
	want(0, "nothing")
	for range 2 {
		if err := s.Enqueue(ctx, task.NewID()); err != nil {
			t.Fatal(err)
		}
	}
	want(2, "two Enqueues")
	c, err := s.Dequeue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want(2, "a Dequeue (claimed, not acknowledged)")
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	want(2, "a Release")
	for range 2 {
		c, err := s.Dequeue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want(0, "acknowledging both")
}

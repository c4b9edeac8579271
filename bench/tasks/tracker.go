package tasks

import (
	"context"
	"fmt"
	"sync"
)

// Tracker is the [Events] sink the harness waits on: it remembers when each
// blocking task started running and when its context was canceled, and
// counts events so that a measurement can wait for "n tasks done". Safe for
// concurrent use.
type Tracker struct {
	countOnly bool // count events without remembering ids (memory measurements)
	mu        sync.Mutex
	tasks     map[string]*tracked
	counts    [3]int // running, canceled, done
	waiters   []countWaiter
}

type tracked struct {
	running, canceled chan struct{}
	runAt, cancelAt   int64
	cause             string
}

type countWaiter struct {
	kind, n int
	ch      chan struct{}
}

const (
	evRunning = iota
	evCanceled
	evDone
)

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{tasks: map[string]*tracked{}} }

func (t *Tracker) get(id string) *tracked {
	e := t.tasks[id]
	if e == nil {
		e = &tracked{running: make(chan struct{}), canceled: make(chan struct{})}
		t.tasks[id] = e
	}
	return e
}

func (t *Tracker) count(kind int) {
	t.counts[kind]++
	w := t.waiters[:0]
	for _, cw := range t.waiters {
		if cw.kind == kind && t.counts[kind] >= cw.n {
			close(cw.ch)
			continue
		}
		w = append(w, cw)
	}
	t.waiters = w
}

// Running records that task id runs. Does not block.
func (t *Tracker) Running(id string, at int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count(evRunning)
	if e := t.record(id); e != nil && !isClosed(e.running) {
		e.runAt = at
		close(e.running)
	}
}

// Canceled records that the context of task id was canceled. Does not
// block.
func (t *Tracker) Canceled(id string, at int64, cause string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count(evCanceled)
	if e := t.record(id); e != nil && !isClosed(e.canceled) {
		e.cancelAt, e.cause = at, cause
		close(e.canceled)
	}
}

// record is the entry events of task id are written to, nil when the
// tracker only counts.
func (t *Tracker) record(id string) *tracked {
	if t.countOnly {
		return nil
	}
	return t.get(id)
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Done counts a no-op task's return. Does not block.
func (t *Tracker) Done(string, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count(evDone)
}

// WaitRunning blocks until task id runs or ctx is done, and returns when
// it started.
func (t *Tracker) WaitRunning(ctx context.Context, id string) (int64, error) {
	t.mu.Lock()
	e := t.get(id)
	t.mu.Unlock()
	select {
	case <-e.running:
		return e.runAt, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("task %s never ran: %w", id, context.Cause(ctx))
	}
}

// WaitCanceled blocks until the context of task id was canceled or ctx is
// done, and returns when that happened and the cause the task saw.
func (t *Tracker) WaitCanceled(ctx context.Context, id string) (int64, string, error) {
	t.mu.Lock()
	e := t.get(id)
	t.mu.Unlock()
	select {
	case <-e.canceled:
		return e.cancelAt, e.cause, nil
	case <-ctx.Done():
		return 0, "", fmt.Errorf("task %s: context never canceled: %w", id, context.Cause(ctx))
	}
}

// Forget drops what the tracker remembers of task id.
func (t *Tracker) Forget(id string) {
	t.mu.Lock()
	delete(t.tasks, id)
	t.mu.Unlock()
}

// Counts returns how many Running, Canceled and Done events arrived.
func (t *Tracker) Counts() (running, canceled, done int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[evRunning], t.counts[evCanceled], t.counts[evDone]
}

func (t *Tracker) waitCount(ctx context.Context, kind, n int) error {
	t.mu.Lock()
	if t.counts[kind] >= n {
		t.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	t.waiters = append(t.waiters, countWaiter{kind, n, ch})
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		r, c, d := t.Counts()
		return fmt.Errorf("waiting for %d events (running %d, canceled %d, done %d): %w", n, r, c, d, context.Cause(ctx))
	}
}

// WaitDone blocks until n Done events arrived in total or ctx is done.
func (t *Tracker) WaitDone(ctx context.Context, n int) error { return t.waitCount(ctx, evDone, n) }

// WaitRunningCount blocks until n Running events arrived in total or ctx is
// done.
func (t *Tracker) WaitRunningCount(ctx context.Context, n int) error {
	return t.waitCount(ctx, evRunning, n)
}

// WaitCanceledCount blocks until n Canceled events arrived in total or ctx
// is done.
func (t *Tracker) WaitCanceledCount(ctx context.Context, n int) error {
	return t.waitCount(ctx, evCanceled, n)
}

package task

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-cancellation/cancellation"
)

// ErrNodeLost is the cause of a task whose node stopped renewing its lease
// (it crashed, was cut off or frozen) when the task had no attempt left, or
// was request-scoped: it is marked failed instead of running again.
var ErrNodeLost = errors.New("node lost")

// leases follows the leases of tasks that run on other nodes (or on an
// earlier incarnation of this one), as seen by this runner: the revision of
// each running record and the time, on this process's monotonic clock, at
// which this runner first saw that revision. A lease has ended when its
// record has not changed for the lease's duration since then; wall clocks
// of different machines are never compared.
//
// The runner that holds a lease arms its own lease timer from before the
// write of the revision observed here, so its timer fires (and the task is
// canceled with ErrLeaseLost) before this runner can see the lease as
// ended; the takeover is a compare-and-set on that same revision, so it
// fails if the holder renewed in the meantime.
type leases struct {
	mu   sync.Mutex
	seen map[string]*leaseSeen
}

type leaseSeen struct {
	rev uint64
	at  time.Time // monotonic
	dur time.Duration
}

// observe records a task's record as seen now.
func (l *leases) observe(id string, t *Task, rev uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = make(map[string]*leaseSeen)
	}
	cur := l.seen[id]
	if cur != nil && rev <= cur.rev {
		return
	}
	if t == nil || (t.State != Running && t.State != Canceling) || t.Lease == nil {
		delete(l.seen, id)
		return
	}
	l.seen[id] = &leaseSeen{rev: rev, at: time.Now(), dur: time.Duration(t.Lease.Duration)}
}

// ended returns the ids and revisions of leases that ended by now.
func (l *leases) ended() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out map[string]uint64
	for id, s := range l.seen {
		if time.Since(s.at) >= s.dur {
			if out == nil {
				out = make(map[string]uint64)
			}
			out[id] = s.rev
		}
	}
	return out
}

// forget drops id if its revision is still rev.
func (l *leases) forget(id string, rev uint64) {
	l.mu.Lock()
	if s := l.seen[id]; s != nil && s.rev == rev {
		delete(l.seen, id)
	}
	l.mu.Unlock()
}

// loadLeases observes every task that is running now (called by Start,
// after the watch began, so nothing falls between the two).
func (r *Runner) loadLeases(ctx context.Context) error {
	for _, st := range []State{Running, Canceling} {
		opts := ListOptions{State: st, PageSize: MaxPageSize}
		for {
			page, err := r.store.List(ctx, opts)
			if err != nil {
				return err
			}
			for _, t := range page.Tasks {
				if cur, rev, err := r.store.Get(ctx, t.ID); err == nil {
					r.leases.observe(t.ID, cur, rev)
				}
			}
			if page.NextPageToken == "" {
				break
			}
			opts.PageToken = page.NextPageToken
		}
	}
	return nil
}

// takeOver checks the leases seen by this runner every tenth of its own
// lease and takes over the tasks whose lease ended.
func (r *Runner) takeOver() {
	life := r.life.Token()
	every := min(max(r.cfg.Lease/10, 5*time.Millisecond), time.Second)
	for cancellation.Sleep(life, every) == nil {
		for id, rev := range r.leases.ended() {
			if life.IsCanceled() {
				return
			}
			r.takeOverOne(life, id, rev)
		}
	}
}

// takeOverOne ends the lease of task id, seen at rev and not renewed since:
// a task whose cancel was requested ends canceled (the cancel is never
// lost); a request-scoped task, or one without attempts left, fails with
// ErrNodeLost; any other goes back to the queue for its next attempt.
func (r *Runner) takeOverOne(ctx context.Context, id string, rev uint64) {
	t, cur, err := r.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		r.leases.forget(id, rev)
		return
	}
	if err != nil {
		return // unreachable store: try again on the next round
	}
	if cur != rev {
		r.leases.observe(id, t, cur)
		return
	}
	if r.holds(t) {
		// This runner runs it: it renews the lease, or cancels the task
		// itself when it cannot.
		r.leases.forget(id, rev)
		return
	}
	lost := "?"
	if t.Lease != nil {
		lost = t.Lease.Node
	}
	fin := now()
	t.Lease = nil
	switch {
	case t.State == Canceling && t.Cancel != nil:
		t.State, t.Cause, t.FinishedAt = Canceled, (&CancelError{Request: *t.Cancel}).Error(), &fin
	case t.RequestScoped || t.Attempt >= max(t.MaxAttempts, 1):
		t.State, t.FinishedAt = Failed, &fin
		t.Cause = fmt.Sprintf("%v: %s stopped renewing the lease of attempt %d of %d", ErrNodeLost, lost, t.Attempt, max(t.MaxAttempts, 1))
	default:
		t.State, t.Node = Queued, ""
	}
	if _, err := r.store.Update(ctx, t, rev); err != nil {
		if !errors.Is(err, ErrConflict) {
			r.log.Warn("task takeover not written", "task", id, "error", err)
		}
		return // the watch brings the newer revision, or we try again
	}
	r.leases.forget(id, rev)
	attrs := []any{"task", id, "lost_node", lost, "state", t.State, "attempt", t.Attempt}
	if t.Cause != "" {
		attrs = append(attrs, "cause", t.Cause)
	}
	r.log.Info("task lease ended", attrs...)
	if t.State == Queued {
		r.enqueue(id)
	}
}

// holds reports whether this runner runs the attempt that t records.
func (r *Runner) holds(t *Task) bool {
	r.mu.Lock()
	rt := r.running[t.ID]
	r.mu.Unlock()
	return rt != nil && rt.owns(t)
}

// enqueue puts id on the work queue, retrying until it succeeds or the
// runner's life ends (then it logs the loss).
func (r *Runner) enqueue(id string) {
	life := r.life.Token()
	backoff := 10 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(life), r.cfg.Lease)
		err := r.store.Enqueue(ctx, id)
		cancel()
		if err == nil {
			return
		}
		r.log.Warn("task not put on the queue; retrying", "task", id, "error", err)
		if cancellation.Sleep(life, backoff) != nil {
			r.log.Error("task not put on the queue", "task", id, "error", err)
			return
		}
		backoff = min(2*backoff, time.Second)
	}
}

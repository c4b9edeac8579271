package task

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-cancellation/cancellation"
)

// running is a task running on this runner: its sources, the last record
// it wrote, its coalesced progress and its lease renewal.
type running struct {
	r      *Runner
	id     string
	scoped bool            // request-scoped: never handed back, not canceled by Shutdown
	ctx    context.Context // the parent: the runner's life, or the request

	lease *cancellation.Source // canceled with ErrLeaseLost when not renewed
	src   *cancellation.Source // the task's: child of lease, or lease itself (see newRunning)

	// node and attempt identify the run: a record with others belongs to
	// another run (the task was taken over) and is never written by this
	// one.
	node    string
	attempt int
	// leaseEnd is when the lease ends unless renewed (monoNow time): the
	// lease timer's deadline, or a little earlier.
	leaseEnd atomic.Int64

	canceledAt atomic.Int64 // when src was canceled (monoNow; set by markCanceled)
	reg        cancellation.Registration

	// run and start are the Run handed to the task's function and, for a
	// request-scoped task, the record it starts with: kept here so a
	// short request allocates them once, with rt.
	run     Run
	start   Task
	fin     time.Time // the final record's FinishedAt
	scopedT Task      // a request-scoped task's first record (rec)
	started time.Time // a request-scoped record's StartedAt

	wmu sync.Mutex // serializes writes of rec
	rec *Task
	rev uint64

	pmu       sync.Mutex
	prog      *Progress // the last reported; points to progBuf once set
	progBuf   Progress
	dirty     bool
	lastFlush time.Time
	flushT    *time.Timer
	flushWG   sync.WaitGroup
	pclosed   bool

	renewOnce sync.Once
	renewStop chan struct{}
	renewDone chan struct{}

	// A request-scoped task waits in the runner's recordQueue (rev stays
	// 0 until then: writes change rec in memory only); recordWG is done
	// when record has run or will never run. It is registered in the
	// runner's live set by record (registered, under wmu).
	queued     bool     // in the queue (under recordQueue.mu)
	due        int64    // when to record it (monoNow time)
	qnext      *running // the next in the queue
	qprev      *running
	recordWG   sync.WaitGroup
	recorded   atomic.Bool // the store has the record (rev != 0)
	registered bool
}

// record writes a request-scoped task's record for the first time and
// starts renewing its lease. It runs on a goroutine of its own, started by
// the runner's recordQueue.
func (rt *running) record() {
	defer rt.recordWG.Done()
	rt.wmu.Lock()
	rt.r.register(rt) // scoped: never refused
	rt.registered = true
	rt.rec.Lease = &Lease{Node: rt.r.cfg.Node, Duration: Duration(rt.r.cfg.Lease)}
	rt.pmu.Lock()
	if rt.prog != nil {
		p := *rt.prog
		rt.rec.Progress = &p
	}
	rt.dirty = false // the record has the latest progress
	rt.pmu.Unlock()
	rt.leaseEnd.Store(monoNow() + int64(rt.r.cfg.Lease))
	rt.lease.CancelAfterCause(rt.r.cfg.Lease, ErrLeaseLost)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(rt.ctx), rt.r.cfg.Lease)
	stored, rev, err := rt.r.store.Create(ctx, rt.rec)
	cancel()
	if err != nil {
		rt.r.log.Warn("task not recorded; it runs untracked", "task", rt.id, "kind", rt.rec.Kind, "error", err)
	} else {
		rt.rec, rt.rev = stored, rev
		rt.recorded.Store(true)
		rt.r.log.Info("task started", "task", rt.id, "node", rt.node, "attempt", rt.attempt,
			"kind", stored.Kind, "request_scoped", true)
	}
	rt.wmu.Unlock()
	rt.pmu.Lock()
	if rt.dirty && rt.flushT == nil && !rt.pclosed {
		rt.scheduleFlushLocked() // reported while the record was written
	}
	rt.pmu.Unlock()
	rt.startRenewing()
}

// stopRecording keeps a request-scoped task that has not been recorded yet
// from being recorded, or waits until it was.
func (rt *running) stopRecording() {
	if !rt.scoped {
		return
	}
	if rt.r.recordQ.remove(rt) {
		rt.recordWG.Done()
	}
	rt.recordWG.Wait()
}

// recordQueue holds the request-scoped tasks not recorded yet, in the
// order they are due (all wait the same ScopedRecordDelay), with one timer
// for the first: a short request costs a list insert and removal under a
// mutex, not a timer of its own. It is safe for concurrent use.
type recordQueue struct {
	mu         sync.Mutex
	head, tail *running
	timer      *time.Timer // fires when the head is due; nil until first used
	armed      bool
	delay      time.Duration
}

// add queues rt, due after the delay.
func (q *recordQueue) add(rt *running) {
	q.mu.Lock()
	defer q.mu.Unlock()
	rt.due = monoNow() + int64(q.delay)
	rt.queued, rt.qprev, rt.qnext = true, q.tail, nil
	if q.tail != nil {
		q.tail.qnext = rt
	} else {
		q.head = rt
	}
	q.tail = rt
	if !q.armed {
		q.armed = true
		if q.timer == nil {
			q.timer = time.AfterFunc(q.delay, q.fire)
		} else {
			q.timer.Reset(q.delay)
		}
	}
}

// remove takes rt out of the queue and reports whether it was in it (so
// it will never be recorded).
func (q *recordQueue) remove(rt *running) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !rt.queued {
		return false
	}
	q.unlinkLocked(rt)
	return true
}

func (q *recordQueue) unlinkLocked(rt *running) {
	if rt.qprev != nil {
		rt.qprev.qnext = rt.qnext
	} else {
		q.head = rt.qnext
	}
	if rt.qnext != nil {
		rt.qnext.qprev = rt.qprev
	} else {
		q.tail = rt.qprev
	}
	rt.queued, rt.qprev, rt.qnext = false, nil, nil
}

// fire records the tasks that are due, each on a goroutine of its own (a
// store write may be slow), and re-arms the timer for the next.
func (q *recordQueue) fire() {
	q.mu.Lock()
	now := monoNow()
	var due []*running
	for q.head != nil && q.head.due <= now {
		rt := q.head
		q.unlinkLocked(rt)
		due = append(due, rt)
	}
	if q.head != nil {
		q.timer.Reset(time.Duration(q.head.due - now))
	} else {
		q.armed = false
	}
	q.mu.Unlock()
	for _, rt := range due {
		go rt.record()
	}
}

// monoEpoch anchors monoNow: durations since it are read on the
// monotonic clock.
var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) }

func (r *Runner) newRunning(parent context.Context, t *Task) *running {
	rt := new(running)
	r.initRunning(rt, parent, t)
	return rt
}

// initRunning sets up rt, new, for t.
func (r *Runner) initRunning(rt *running, parent context.Context, t *Task) {
	end := monoNow() + int64(r.cfg.Lease)
	lease := cancellation.New(parent)
	if t.RequestScoped {
		// Nobody else knows of the task until it is recorded: its lease
		// starts then (see record).
		end = math.MaxInt64
	} else {
		lease.CancelAfterCause(r.cfg.Lease, ErrLeaseLost)
	}
	src := lease
	if !t.RequestScoped || t.Timeout > 0 {
		// The task's own Source under the lease's: its timeout timer and
		// the lease timer are two timers. A request-scoped task without a
		// timeout has only the lease timer, once recorded: one Source
		// serves as both (its cause says which stopped it).
		src = cancellation.New(lease.Token())
	}
	rt.r, rt.id, rt.scoped, rt.ctx, rt.lease, rt.src, rt.rec = r, t.ID, t.RequestScoped, parent, lease, src, t
	rt.node, rt.attempt = r.cfg.Node, t.Attempt
	rt.leaseEnd.Store(end)
	if t.Progress != nil {
		rt.progBuf = *t.Progress
		rt.prog = &rt.progBuf
	}
	rt.reg = rt.src.Token().Register(rt.markCanceled)
}

func (rt *running) markCanceled() { rt.canceledAt.Store(monoNow()) }

// stopLatency is the time since the task's token was canceled.
func (rt *running) stopLatency() time.Duration {
	rt.reg.Wait()
	return time.Duration(monoNow() - rt.canceledAt.Load())
}

// release frees the sources.
func (rt *running) release() {
	rt.src.Cancel()
	rt.lease.Cancel()
}

// owns reports whether the record t is of this run: the same node and
// attempt. A record taken over by another node (after this one was cut
// off or frozen past its lease) is not.
func (rt *running) owns(t *Task) bool {
	return t.Node == rt.node && t.Attempt == rt.attempt
}

// check cancels the lease with ErrLeaseLost if its time is up, even when
// its timer has not fired yet (the process was frozen, or the timer's
// goroutine has not run), and returns the task token's error.
func (rt *running) check() error {
	if monoNow() >= rt.leaseEnd.Load() {
		rt.lease.CancelAfterCause(0, ErrLeaseLost)
	}
	return rt.src.Token().Err()
}

// cancel cancels the task's token for a cancel request.
func (rt *running) cancel(req CancelRequest) {
	rt.src.CancelCause(&CancelError{Request: req})
}

// write applies change to the latest record and stores it with a
// compare-and-set, re-reading and re-applying on a conflict. change
// returns false to leave the record alone. write returns the record as
// stored, or nil when it could not be written.
func (rt *running) write(change func(*Task) bool) *Task {
	rt.wmu.Lock()
	defer rt.wmu.Unlock()
	rev := rt.rev
	if rev == 0 {
		// Not recorded (yet): a request-scoped task keeps its record in
		// memory, changed in place (nobody else holds it).
		if !rt.owns(rt.rec) || !change(rt.rec) {
			return nil
		}
		return rt.rec
	}
	ctx := context.WithoutCancel(rt.ctx)
	t := rt.rec.Clone()
	for attempt := 0; ; attempt++ {
		if !rt.owns(t) || !change(t) {
			return nil
		}
		wctx, cancel := context.WithTimeout(ctx, rt.r.cfg.Lease)
		newRev, err := rt.r.store.Update(wctx, t, rev)
		cancel()
		if err == nil {
			rt.rec, rt.rev = t, newRev
			return t
		}
		if !errors.Is(err, ErrConflict) || attempt > 100 {
			rt.r.log.Warn("task record not written", "task", rt.id, "error", err)
			return nil
		}
		gctx, cancel := context.WithTimeout(ctx, rt.r.cfg.Lease)
		t, rev, err = rt.r.store.Get(gctx, rt.id)
		cancel()
		if err != nil {
			rt.r.log.Warn("task record not read", "task", rt.id, "error", err)
			return nil
		}
		if t.Cancel != nil && (t.State == Canceling || t.State == Canceled) {
			// A cancel request the watch has not delivered yet.
			rt.cancel(*t.Cancel)
		}
	}
}

// setProgress records p and makes sure a flush is scheduled: at most one
// write per progress interval, always with the latest value.
func (rt *running) setProgress(p Progress) {
	rt.pmu.Lock()
	defer rt.pmu.Unlock()
	if rt.pclosed {
		return // the final record has rt.prog
	}
	if rt.prog == nil {
		rt.prog = &rt.progBuf
	}
	*rt.prog = p // read only under pmu, copied before it is used elsewhere
	if rt.dirty {
		return
	}
	rt.dirty = true
	if rt.flushT == nil && rt.recorded.Load() {
		// Unrecorded, the record takes the progress when it is written.
		rt.scheduleFlushLocked()
	}
}

func (rt *running) scheduleFlushLocked() {
	wait := rt.r.cfg.ProgressInterval - time.Since(rt.lastFlush)
	rt.flushWG.Add(1)
	rt.flushT = time.AfterFunc(max(wait, 0), rt.flush)
}

func (rt *running) flush() {
	defer rt.flushWG.Done()
	rt.pmu.Lock()
	if rt.pclosed {
		rt.pmu.Unlock()
		return
	}
	p := *rt.prog
	rt.dirty = false
	rt.pmu.Unlock()

	rt.write(func(t *Task) bool {
		if t.State != Running && t.State != Canceling {
			return false
		}
		t.Progress = &p
		return true
	})

	rt.pmu.Lock()
	rt.lastFlush = time.Now()
	rt.flushT = nil
	if rt.dirty && !rt.pclosed {
		rt.scheduleFlushLocked()
	}
	rt.pmu.Unlock()
}

// finalProgress stops progress writes and returns the last value reported
// (nil if none), for the final record.
func (rt *running) finalProgress() *Progress {
	rt.pmu.Lock()
	rt.pclosed = true
	if rt.flushT != nil && rt.flushT.Stop() {
		rt.flushWG.Done()
	}
	p := rt.prog
	rt.pmu.Unlock()
	rt.flushWG.Wait()
	return p
}

// startRenewing renews the lease every Lease/3. Each successful renewal
// re-arms the lease timer for a full lease measured from before the write,
// so the timer fires before any other node can see the lease as ended.
func (rt *running) startRenewing() {
	rt.renewOnce.Do(rt.renew)
}

func (rt *running) renew() {
	rt.renewStop = make(chan struct{})
	rt.renewDone = make(chan struct{})
	go func() {
		defer close(rt.renewDone)
		every := rt.r.cfg.Lease / 3
		t := time.NewTimer(every)
		defer t.Stop()
		for {
			select {
			case <-rt.renewStop:
				return
			case <-rt.lease.Token().Done():
				return
			case <-t.C:
			}
			t0 := time.Now()
			ok := rt.write(func(t *Task) bool {
				if t.State != Running && t.State != Canceling || t.Lease == nil || t.Lease.Node != rt.r.cfg.Node {
					return false
				}
				t.Lease.Renewals++
				return true
			}) != nil
			if ok {
				rt.leaseEnd.Store(int64(t0.Sub(monoEpoch)) + int64(rt.r.cfg.Lease))
				rt.lease.CancelAfterCause(rt.r.cfg.Lease-time.Since(t0), ErrLeaseLost)
			}
			t.Reset(every)
		}
	}()
}

func (rt *running) stopRenewing() {
	rt.renewOnce.Do(func() {}) // never start after this
	if rt.renewStop == nil {
		return // never started
	}
	close(rt.renewStop)
	<-rt.renewDone
}

package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/go-cancellation/cancellation"
)

// Defaults of [Config].
const (
	DefaultConcurrency       = 8
	DefaultLease             = 10 * time.Second
	DefaultRetention         = 24 * time.Hour
	DefaultMaxAttempts       = 3
	DefaultProgressInterval  = 100 * time.Millisecond
	DefaultScopedRecordDelay = 100 * time.Millisecond
)

// Config configures a [Runner]. Store and Kinds are required; the zero
// value of every other field means its default.
type Config struct {
	Store Store
	Kinds *Registry
	// Node names this runner in records ("node") and cancel requests
	// ("via"). Default: the host name.
	Node string
	// Concurrency is how many queued tasks run at once on this runner
	// (request-scoped tasks are not counted). Default DefaultConcurrency.
	Concurrency int
	// Lease is how long a running task's claim holds without renewal;
	// the runner renews it every Lease/3 and cancels the task with
	// ErrLeaseLost when it could not renew in time. Default DefaultLease.
	Lease time.Duration
	// Retention is how long finished tasks are kept; negative keeps them
	// forever. Default DefaultRetention.
	Retention time.Duration
	// MaxAttempts is the default max_attempts of a new task. Default
	// DefaultMaxAttempts.
	MaxAttempts int
	// ProgressInterval is the least time between two progress writes of
	// one task. Default DefaultProgressInterval.
	ProgressInterval time.Duration
	// Logger receives the runner's log lines (one per task start and
	// stop). Default: slog.Default().
	Logger *slog.Logger
	// ScopedRecordDelay is how long a request-scoped task (RunScoped)
	// runs before it is written to the store: one that ends sooner is never
	// listed and costs no store write. Negative records at once (still
	// without blocking RunScoped). Default DefaultScopedRecordDelay.
	ScopedRecordDelay time.Duration
	// OnStop, if set, is called once for every task this runner ran
	// (before its "task stopped" log line),
	// after its final (or handed-back) record was written. It is called on
	// the task's goroutine and must not block.
	OnStop func(Stopped)
}

// Stopped describes a task that stopped on this runner: its record as
// written, the cause of its token's cancellation (nil if it was not
// canceled), and the time from the cancellation reaching this node to the
// function's return.
type Stopped struct {
	Task        *Task // shared with RunScoped's caller: read it, do not modify it
	Cause       error
	StopLatency time.Duration
	HandedBack  bool // it went back to the queue to run again
}

// Spec describes a task to start.
type Spec struct {
	Kind    string
	Params  json.RawMessage
	Timeout time.Duration // 0: none
	// IdempotencyKey, if set: a second Submit with the same key returns
	// the first task instead of creating another.
	IdempotencyKey string
	MaxAttempts    int // 0: the runner's default
}

// Runner runs tasks: it takes queued tasks off the store's work queue (at
// most Concurrency at once), runs each kind's function under a Source
// whose token is canceled by a cancel request (from any node, delivered by
// watching the store), the task's timeout, a lost lease or the node
// shutting down, and records every state change as a compare-and-set.
//
// Make one with [NewRunner], call [Runner.Start], and [Runner.Shutdown]
// when done. All methods are safe for concurrent use.
type Runner struct {
	cfg   Config
	store Store
	log   *slog.Logger

	life     *cancellation.Source // canceled by Shutdown's end: watcher, sweeper
	pulling  *cancellation.Source // canceled when Shutdown begins: the pull loop
	slots    chan struct{}
	pullDone chan struct{}  // closed when the puller has returned
	bg       sync.WaitGroup // background goroutines
	tasks    sync.WaitGroup // running task functions
	mu       sync.Mutex
	running  map[string]*running
	leases   leases // of tasks running elsewhere: see takeOver
	closed   bool
	started  bool
	shutOnce sync.Once
	recordQ  recordQueue // request-scoped tasks not recorded yet
}

// NewRunner checks cfg, fills in its defaults and returns a Runner that is
// not started yet.
func NewRunner(cfg Config) (*Runner, error) {
	if cfg.Store == nil || cfg.Kinds == nil {
		return nil, errors.New("task.NewRunner: Config.Store and Config.Kinds are required")
	}
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.ScopedRecordDelay == 0 {
		cfg.ScopedRecordDelay = DefaultScopedRecordDelay
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	life := cancellation.New()
	return &Runner{
		cfg:      cfg,
		store:    cfg.Store,
		log:      cfg.Logger,
		life:     life,
		pulling:  cancellation.New(life.Token()),
		slots:    make(chan struct{}, cfg.Concurrency),
		pullDone: make(chan struct{}),
		running:  make(map[string]*running),
		recordQ:  recordQueue{delay: max(cfg.ScopedRecordDelay, 0)},
	}, nil
}

// Node returns the runner's node name.
func (r *Runner) Node() string { return r.cfg.Node }

// Store returns the runner's store.
func (r *Runner) Store() Store { return r.store }

// Kinds returns the runner's kind registry.
func (r *Runner) Kinds() *Registry { return r.cfg.Kinds }

// Start starts taking work: the queue puller, the watch that delivers
// cancel requests and follows the leases of tasks running elsewhere, the
// takeover of tasks whose lease ended, the retention sweeper, and the
// requeue of queued tasks whose id is not on the queue (a node stopped
// between writing the record and queuing the id; once the queue is empty
// such a task is queued again within three leases). It returns once the watch is established and the running tasks are loaded
// (so a cancel written after Start returns reaches a task this runner
// runs), or with the store's error. Start must be called once.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.started || r.closed {
		r.mu.Unlock()
		return errors.New("task.Runner.Start called twice or after Shutdown")
	}
	r.started = true
	r.mu.Unlock()
	wctx, stop := context.WithCancel(r.life.Token())
	events, err := r.store.Watch(wctx, WatchOptions{})
	if err != nil {
		stop()
		return err
	}
	if err := r.loadLeases(ctx); err != nil {
		stop()
		return err
	}
	r.bg.Add(5)
	go func() {
		defer r.bg.Done()
		defer stop()
		r.watch(events)
	}()
	go func() {
		defer r.bg.Done()
		r.takeOver()
	}()
	go func() {
		defer r.bg.Done()
		defer close(r.pullDone)
		r.pull()
	}()
	go func() {
		defer r.bg.Done()
		r.sweep()
	}()
	go func() {
		defer r.bg.Done()
		r.requeueOrphans()
	}()
	return nil
}

// Shutdown drains the runner: it stops taking work off the queue, lets
// running tasks finish for grace, then cancels the rest with the cause
// ErrShuttingDown and waits for them to return. Queued tasks stopped that
// way go back to the queue (another runner, or this one after a restart,
// runs them again with the next attempt). Request-scoped tasks are not
// canceled by Shutdown: they end when their context (the request) does,
// and Shutdown waits for them too. Shutdown blocks until every task has
// returned and its record was written, or ctx is done; it is idempotent.
func (r *Runner) Shutdown(ctx context.Context, grace time.Duration) error {
	r.shutOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		if !r.started {
			close(r.pullDone)
		}
		r.mu.Unlock()
		r.pulling.CancelCause(ErrShuttingDown)
	})
	// The puller starts tasks (tasks.Add): wait for it to stop first.
	select {
	case <-r.pullDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	done := make(chan struct{})
	go func() { r.tasks.Wait(); close(done) }()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	var err error
	select {
	case <-done:
	case <-timer.C:
		r.mu.Lock()
		for _, rt := range r.running {
			// Request-scoped tasks end with their request: the HTTP
			// server's own shutdown cancels those, with its cause.
			if !rt.scoped {
				rt.src.CancelCause(ErrShuttingDown)
			}
		}
		r.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.life.CancelCause(ErrShuttingDown)
	r.bg.Wait()
	return err
}

// Submit validates spec and queues a new task. With an IdempotencyKey
// that was used before it returns the earlier task and created false (and
// queues it again if it is still queued: the earlier Submit may have
// failed before queuing it). Queuing is retried for up to the lease
// duration (a NATS restart); when the task still cannot be queued, it is
// marked failed with the cause "not queued: …" (never left queued with
// nothing to run it) and the error returned.
// Errors wrap ErrUnknownKind or ErrInvalid for a spec to fix, ErrClosed
// after Shutdown began, or come from the store. It blocks for the store's
// writes.
func (r *Runner) Submit(ctx context.Context, spec Spec) (t *Task, created bool, err error) {
	params, err := r.check(spec)
	if err != nil {
		return nil, false, err
	}
	if r.isClosed() {
		return nil, false, ErrClosed
	}
	t = &Task{
		ID: NewID(), Kind: spec.Kind, Params: params, Timeout: Duration(spec.Timeout),
		State: Queued, MaxAttempts: spec.MaxAttempts, CreatedAt: now(),
		IdempotencyKey: spec.IdempotencyKey,
	}
	if t.MaxAttempts <= 0 {
		t.MaxAttempts = r.cfg.MaxAttempts
	}
	stored, _, err := r.store.Create(ctx, t)
	if errors.Is(err, ErrExists) && stored != nil {
		if stored.State == Queued {
			// The first Submit with this key may have failed between its
			// Create and its Enqueue (and its caller is retrying): queue it
			// again. A second message for a task is harmless: the claim
			// that finds the task no longer queued drops it.
			if err := r.store.Enqueue(ctx, stored.ID); err != nil {
				return nil, false, err
			}
		}
		return stored, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if err := r.enqueueNew(ctx, stored.ID); err != nil {
		return nil, false, err
	}
	return stored, true, nil
}

// enqueueNew queues the new task id, retrying for up to a lease; when
// that fails it marks the task failed (if it is still queued) and returns
// the error.
func (r *Runner) enqueueNew(ctx context.Context, id string) error {
	giveUp := time.Now().Add(r.cfg.Lease)
	backoff := 10 * time.Millisecond
	for {
		err := r.store.Enqueue(ctx, id)
		if err == nil {
			return nil
		}
		if time.Now().After(giveUp) || cancellation.Sleep(ctx, backoff) != nil {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Lease)
			defer cancel()
			if t, rev, gerr := r.store.Get(wctx, id); gerr == nil && t.State == Queued {
				fin := now()
				t.State, t.FinishedAt, t.Cause = Failed, &fin, fmt.Sprintf("not queued: %v", err)
				r.store.Update(wctx, t, rev)
			}
			return err
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (r *Runner) check(spec Spec) (json.RawMessage, error) {
	k, ok := r.cfg.Kinds.Lookup(spec.Kind)
	if !ok {
		return nil, fmt.Errorf("%w %q: known kinds are %v", ErrUnknownKind, spec.Kind, r.cfg.Kinds.Names())
	}
	if spec.Timeout < 0 {
		return nil, fmt.Errorf("%w: timeout %v must not be negative", ErrInvalid, spec.Timeout)
	}
	params := spec.Params
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	if k.Check != nil {
		p, err := k.Check(params)
		if err != nil {
			return nil, fmt.Errorf("%w: params of kind %q: %v", ErrInvalid, spec.Kind, err)
		}
		params = p
	}
	return params, nil
}

func (r *Runner) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Get returns a task (ErrNotFound for an unknown id).
func (r *Runner) Get(ctx context.Context, id string) (*Task, error) {
	t, _, err := r.store.Get(ctx, id)
	return t, err
}

// Cancel asks task id to stop, recording req (RequestedAt and Via are
// filled in when empty). A queued task becomes canceled and never runs; a
// running one becomes canceling, and its token is canceled with a
// *CancelError — at once when it runs on this runner, else when its node
// sees the record change. Canceling a task that is already canceling or
// canceled changes nothing and succeeds (the first request's reason
// stays); for a task that succeeded or failed Cancel returns the task and
// ErrFinished. It blocks for the store's read and write.
func (r *Runner) Cancel(ctx context.Context, id string, req CancelRequest) (*Task, error) {
	if req.RequestedAt.IsZero() {
		req.RequestedAt = now()
	}
	if req.Via == "" {
		req.Via = r.cfg.Node
	}
	for {
		t, rev, err := r.store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		switch t.State {
		case Succeeded, Failed:
			return t, ErrFinished
		case Canceled, Canceling:
			return t, nil
		case Queued:
			c := req
			t.Cancel = &c
			t.State = Canceled
			fin := now()
			t.FinishedAt = &fin
			t.Cause = (&CancelError{Request: req}).Error()
		case Running:
			c := req
			t.Cancel = &c
			t.State = Canceling
		default:
			return t, fmt.Errorf("task %s has an unknown state %q", id, t.State)
		}
		if _, err := r.store.Update(ctx, t, rev); errors.Is(err, ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		if t.State == Canceling {
			r.mu.Lock()
			rt := r.running[id]
			r.mu.Unlock()
			if rt != nil {
				rt.cancel(req)
			}
		}
		return t, nil
	}
}

// RunScoped runs f as a task of spec's kind on the calling goroutine,
// recorded in the store (so it is listed, watched and cancelable like any
// other) but never queued: it starts at once, is not counted against
// Concurrency, and is canceled with ctx's cause when ctx is done (for a
// request, "client disconnected"). f's token is also canceled by a cancel
// request, the task's timeout and a lost lease; not by Shutdown, which
// waits for ctx to end it. RunScoped
// blocks until f returned and the final record was written, and returns
// that record with f's result and error. The task is written to the store
// only once it has run for Config.ScopedRecordDelay (100 ms): a shorter one
// is never listed and costs no write (its record is still returned, and
// OnStop and the stop log line still see it). When the store cannot be
// written, f still runs (the error is logged).
// spec.Params are recorded as given: f is the caller's own function, so
// the kind's Check is not run; pass params normalized as the kind's Check
// would. Errors wrapping ErrUnknownKind or ErrInvalid (a negative
// timeout), and ErrClosed, are returned before f runs.
func (r *Runner) RunScoped(ctx context.Context, spec Spec, f Func) (*Task, string, error) {
	if _, ok := r.cfg.Kinds.Lookup(spec.Kind); !ok {
		return nil, "", fmt.Errorf("%w %q: known kinds are %v", ErrUnknownKind, spec.Kind, r.cfg.Kinds.Names())
	}
	if spec.Timeout < 0 {
		return nil, "", fmt.Errorf("%w: timeout %v must not be negative", ErrInvalid, spec.Timeout)
	}
	params := spec.Params
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, "", ErrClosed
	}
	r.tasks.Add(1) // under mu: never concurrent with Shutdown's Wait
	r.mu.Unlock()
	defer r.tasks.Done()
	start := now()
	// The record and its StartedAt live in rt: no allocations of their
	// own.
	rt := new(running)
	rt.started = start
	t := &rt.scopedT
	*t = Task{
		ID: NewID(), Kind: spec.Kind, Params: params, Timeout: Duration(spec.Timeout),
		State: Running, Node: r.cfg.Node, Attempt: 1, MaxAttempts: 1, RequestScoped: true,
		CreatedAt: start, StartedAt: &rt.started,
		// Lease: set when recorded (see record).
	}
	r.initRunning(rt, ctx, t)
	// Recorded only once it has run for ScopedRecordDelay: a request that
	// ends sooner costs the store nothing. Registered in the live set only
	// then too: nobody can ask to cancel a task the store does not list,
	// and Shutdown leaves scoped tasks to their request.
	rt.recordWG.Add(1)
	r.recordQ.add(rt)
	final, res, ferr := r.execute(rt, f)
	return final, res, ferr
}

// pull takes queued tasks while a slot is free.
func (r *Runner) pull() {
	tok := r.pulling.Token()
	backoff := 10 * time.Millisecond
	for {
		select {
		case r.slots <- struct{}{}:
		case <-tok.Done():
			return
		}
		claim, err := r.store.Dequeue(tok)
		if err != nil {
			<-r.slots
			if tok.IsCanceled() {
				return
			}
			r.log.Warn("task queue", "error", err)
			if cancellation.Sleep(tok, backoff) != nil {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		if !r.claim(claim) {
			<-r.slots
		}
	}
}

// claim moves a dequeued task from queued to running and starts it; it
// reports whether it started (and so holds the slot until it ends).
func (r *Runner) claim(c Claim) bool {
	ctx := r.life.Token()
	id := c.ID()
	for {
		t, rev, err := r.store.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			c.Ack(ctx)
			return false
		}
		if err != nil {
			r.log.Warn("task claim", "task", id, "error", err)
			c.Release(ctx)
			return false
		}
		if t.State != Queued {
			// Canceled while queued, or a duplicate delivery: never start.
			c.Ack(ctx)
			return false
		}
		k, ok := r.cfg.Kinds.Lookup(t.Kind)
		fin := now()
		if !ok {
			t.State, t.FinishedAt = Failed, &fin
			t.Cause = fmt.Sprintf("%v %q on node %s", ErrUnknownKind, t.Kind, r.cfg.Node)
			if _, err := r.store.Update(ctx, t, rev); errors.Is(err, ErrConflict) {
				continue
			}
			c.Ack(ctx)
			return false
		}
		t.State, t.Node, t.StartedAt = Running, r.cfg.Node, &fin
		t.Attempt++
		t.Lease = &Lease{Node: r.cfg.Node, Duration: Duration(r.cfg.Lease)}
		t.Cause, t.Result, t.FinishedAt, t.StopLatencyMS = "", "", nil, nil
		rt := r.newRunning(r.life.Token(), t)
		if !r.register(rt) {
			rt.release()
			c.Release(ctx)
			return false
		}
		newRev, err := r.store.Update(ctx, t, rev)
		if err != nil {
			r.unregister(rt)
			rt.release()
			if errors.Is(err, ErrConflict) {
				continue
			}
			r.log.Warn("task claim", "task", id, "error", err)
			c.Release(ctx)
			return false
		}
		c.Ack(ctx)
		rt.rec, rt.rev = t, newRev
		rt.recorded.Store(true)
		r.tasks.Add(1)
		go func() {
			defer r.tasks.Done()
			defer func() { <-r.slots }()
			r.execute(rt, k.Run)
		}()
		return true
	}
}

func (r *Runner) register(rt *running) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed && !rt.rec.RequestScoped {
		return false
	}
	r.running[rt.id] = rt
	return true
}

func (r *Runner) unregister(rt *running) {
	r.mu.Lock()
	if r.running[rt.id] == rt {
		delete(r.running, rt.id)
	}
	r.mu.Unlock()
}

// watch delivers cancel requests written by other nodes to the tasks
// running here. When the watch breaks it is re-established from the last
// revision seen, so no request is missed.
func (r *Runner) watch(events <-chan Event) {
	life := r.life.Token()
	var last uint64
	for {
		for ev := range events {
			last = ev.Rev
			r.leases.observe(ev.ID, ev.Task, ev.Rev)
			if ev.Task == nil || ev.Task.Cancel == nil {
				continue
			}
			r.mu.Lock()
			rt := r.running[ev.ID]
			r.mu.Unlock()
			if rt != nil {
				rt.cancel(*ev.Task.Cancel)
			}
		}
		for !life.IsCanceled() {
			var err error
			if events, err = r.store.Watch(life, WatchOptions{After: last}); err == nil {
				break
			}
			r.log.Warn("task watch", "error", err)
			if cancellation.Sleep(life, time.Second) != nil {
				return
			}
		}
		if life.IsCanceled() {
			return
		}
		r.resync(life)
	}
}

// resync reads the records of the tasks running here, and of those
// running elsewhere, after the watch broke: a change the new watch does
// not replay (it resumes after the last revision seen, which misses
// nothing unless none was seen yet) still cancels a task here.
func (r *Runner) resync(ctx context.Context) {
	r.mu.Lock()
	mine := make([]*running, 0, len(r.running))
	for _, rt := range r.running {
		mine = append(mine, rt)
	}
	r.mu.Unlock()
	for _, rt := range mine {
		if t, _, err := r.store.Get(ctx, rt.id); err == nil && t.Cancel != nil &&
			(t.State == Canceling || t.State == Canceled) {
			rt.cancel(*t.Cancel)
		}
	}
	if err := r.loadLeases(ctx); err != nil {
		r.log.Warn("task leases not reloaded", "error", err)
	}
}

// sweep deletes finished tasks older than the retention.
func (r *Runner) sweep() {
	if r.cfg.Retention < 0 {
		return
	}
	every := min(max(r.cfg.Retention/4, 10*time.Millisecond), time.Minute)
	life := r.life.Token()
	for cancellation.Sleep(life, every) == nil {
		r.sweepOnce(life)
	}
}

func (r *Runner) sweepOnce(ctx context.Context) {
	cut := time.Now().Add(-r.cfg.Retention)
	for _, st := range []State{Succeeded, Failed, Canceled} {
		opts := ListOptions{State: st, PageSize: MaxPageSize}
		for {
			page, err := r.store.List(ctx, opts)
			if err != nil {
				return
			}
			for _, t := range page.Tasks {
				if t.FinishedAt != nil && t.FinishedAt.Before(cut) {
					if _, rev, err := r.store.Get(ctx, t.ID); err == nil {
						r.store.Delete(ctx, t.ID, rev)
					}
				}
			}
			if page.NextPageToken == "" {
				break
			}
			opts.PageToken = page.NextPageToken
		}
	}
}

// requeueOrphans puts back on the work queue the tasks whose record says
// queued but whose id is not on the queue: a node that stopped between
// writing a queued record (a new task, or one handed back after its lease
// ended) and queuing its id left it there, and nothing would run it.
//
// Once a lease, while the queue is empty (QueueLen 0: no id waiting and
// none claimed), it looks at the queued records; one whose revision has
// not changed for two leases of empty queue is an orphan: every writer of
// a queued record queues its id within a lease or marks the task failed.
// A busy queue postpones the check until it drains. Several runners may
// queue the same orphan at once; the second id is harmless, since the claim
// that finds the task no longer queued drops it (claims are compare-and-set
// on the record).
func (r *Runner) requeueOrphans() {
	life := r.life.Token()
	seen := make(map[string]orphanSeen)
	for cancellation.Sleep(life, r.cfg.Lease) == nil {
		r.requeueOrphansOnce(life, seen)
	}
}

// orphanSeen is a queued record as requeueOrphans first saw it, with the
// queue empty ever since.
type orphanSeen struct {
	rev uint64
	at  time.Time // monotonic
}

func (r *Runner) requeueOrphansOnce(ctx context.Context, seen map[string]orphanSeen) {
	if n, err := r.store.QueueLen(ctx); err != nil || n > 0 {
		clear(seen)
		return
	}
	now := time.Now()
	still := make(map[string]bool, len(seen))
	opts := ListOptions{State: Queued, PageSize: MaxPageSize}
	for {
		page, err := r.store.List(ctx, opts)
		if err != nil {
			return
		}
		for _, lt := range page.Tasks {
			t, rev, err := r.store.Get(ctx, lt.ID)
			if err != nil || t.State != Queued {
				continue
			}
			s, ok := seen[t.ID]
			if !ok || s.rev != rev {
				seen[t.ID], still[t.ID] = orphanSeen{rev: rev, at: now}, true
				continue
			}
			if now.Sub(s.at) < 2*r.cfg.Lease {
				still[t.ID] = true
				continue
			}
			r.log.Warn("task was queued but not on the work queue; queuing it again",
				"task", t.ID, "queued_since", s.at.Format(time.RFC3339Nano))
			if err := r.store.Enqueue(ctx, t.ID); err != nil {
				r.log.Warn("task not put on the queue; will retry", "task", t.ID, "error", err)
				still[t.ID] = true
			}
		}
		if page.NextPageToken == "" {
			break
		}
		opts.PageToken = page.NextPageToken
	}
	for id := range seen {
		if !still[id] {
			delete(seen, id)
		}
	}
}

// execute runs f for rt, writes the final record and returns it.
func (r *Runner) execute(rt *running, f Func) (*Task, string, error) {
	defer rt.release()
	defer func() {
		if !rt.scoped || rt.registered {
			r.unregister(rt)
		}
	}()
	rt.wmu.Lock() // a scoped task's record may be being written
	var start *Task
	if rt.scoped && rt.rev == 0 {
		// Not recorded yet: record and the final write replace rt.rec's
		// fields, never change what they point to, so a shallow copy in
		// rt is the record as it was at the start, without allocating.
		rt.start = *rt.rec
		start = &rt.start
	} else {
		start = rt.rec.Clone()
	}
	recorded := rt.rev != 0
	rt.wmu.Unlock()
	// Every line of this run, the function's included, names the task,
	// the node and the attempt: enough to tell runs apart in merged logs.
	run := &rt.run
	*run = Run{task: start, base: r.log, node: r.cfg.Node, rt: rt}
	if start.Timeout > 0 {
		rt.src.CancelAfterCause(time.Duration(start.Timeout), &TimeoutError{Timeout: time.Duration(start.Timeout)})
	}
	if start.Cancel != nil && !start.RequestScoped {
		// Canceled between the claim's read and its write: never lose it.
		rt.cancel(*start.Cancel)
	}
	if recorded {
		rt.startRenewing() // a scoped task starts renewing once recorded
	}
	if !start.RequestScoped {
		run.Logger().Info("task started", "kind", start.Kind)
	} // a request-scoped one logs its start when it is recorded
	tok := rt.src.Token()
	res, ferr := safeRun(f, tok, run)
	var cause error
	var latency time.Duration
	canceled := tok.IsCanceled() && ferr != nil &&
		(errors.Is(ferr, context.Canceled) || errors.Is(ferr, context.DeadlineExceeded))
	if canceled {
		cause = context.Cause(tok)
		latency = rt.stopLatency()
	}
	rt.stopRecording()
	rt.stopRenewing()
	handBack := canceled && !start.RequestScoped &&
		(errors.Is(cause, ErrShuttingDown) || errors.Is(cause, ErrLeaseLost))
	prog := rt.finalProgress()
	rt.fin = now() // in rt: no allocation of its own
	fin := &rt.fin
	final := rt.write(func(t *Task) bool {
		if t.State != Running && t.State != Canceling {
			return false // not ours any more
		}
		if prog != nil {
			t.Progress = prog
		}
		t.Lease = nil
		switch {
		case handBack && t.State == Running && errors.Is(cause, ErrLeaseLost) && t.Attempt >= max(t.MaxAttempts, 1):
			// Lost like a dead node's, and no attempt left: as the
			// takeover would.
			t.State, t.FinishedAt = Failed, fin
			t.Cause = fmt.Sprintf("%v: %s lost the lease of attempt %d of %d", ErrNodeLost, r.cfg.Node, t.Attempt, max(t.MaxAttempts, 1))
			return true
		case handBack && t.State == Running:
			t.State, t.Node = Queued, ""
			return true
		case ferr == nil:
			t.State, t.Result = Succeeded, res
		case canceled:
			var te *TimeoutError
			if errors.As(cause, &te) {
				t.State = Failed
			} else {
				t.State = Canceled
			}
			t.Cause = cause.Error()
			if handBack && t.Cancel != nil {
				// Asked to stop while draining: the request wins, the
				// task is not handed back.
				t.Cause = (&CancelError{Request: *t.Cancel}).Error()
			}
			ms := float64(latency) / float64(time.Millisecond)
			t.StopLatencyMS = &ms
		default:
			t.State, t.Cause = Failed, ferr.Error()
		}
		t.FinishedAt = fin
		return true
	})
	lostRecord := final == nil
	if lostRecord {
		final = rt.rec
	}
	handedBack := final.State == Queued
	if handedBack {
		r.enqueue(rt.id)
	}
	if r.cfg.OnStop != nil {
		r.cfg.OnStop(Stopped{Task: final, Cause: cause, StopLatency: latency, HandedBack: handedBack})
	}
	if start.RequestScoped && rt.rev == 0 {
		// A request-scoped task too short to be recorded logs nothing
		// more than its request does.
		return final, res, ferr
	}
	attrs := []any{"kind", final.Kind, "state", final.State}
	if final.Cause != "" {
		attrs = append(attrs, "cause", final.Cause)
	}
	if c := final.Cancel; c != nil {
		attrs = append(attrs, "reason", c.Reason, "via", c.Via)
		if c.RequestID != "" {
			attrs = append(attrs, "cancel_request_id", c.RequestID)
		}
	}
	if canceled {
		attrs = append(attrs, "stop_latency", latency)
	}
	if handedBack || lostRecord {
		if handedBack {
			attrs = append(attrs, "handed_back", true)
		} else {
			// Not written: the record was finished or taken over
			// elsewhere, or the store was unreachable.
			attrs = append(attrs, "record_written", false)
		}
		if cause != nil {
			attrs = append(attrs, "cause", cause.Error())
		}
	}
	run.Logger().Info("task stopped", attrs...)
	return final, res, ferr // rt and its records are not used after this
}

// safeRun calls f, turning a panic into an error (with the stack).
func safeRun(f Func, tok cancellation.Token, run *Run) (res string, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v\n%s", v, debug.Stack())
		}
	}()
	return f(tok, run)
}

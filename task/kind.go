package task

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/go-cancellation/cancellation"
)

// Func is the work of a task kind. It runs on a goroutine of the [Runner]
// (or, for a request-scoped task, on the caller's) and must return soon
// after tok is canceled — with tok.Err() or an error wrapping it — as every
// function in this module does when given tok as its context. The cause
// (context.Cause(tok)) says why: a *CancelError, a *TimeoutError,
// ErrLeaseLost, ErrShuttingDown or the cause of the request's context.
// The result is the task's Result when it succeeds.
type Func func(tok cancellation.Token, run *Run) (result string, err error)

// Kind is a registered task kind.
type Kind struct {
	// Name is what "kind" says in a task.
	Name string
	// Check validates a task's params and returns them normalized (with
	// defaults filled in); its error message says what to change. Nil
	// accepts any JSON object (or no params).
	Check func(params json.RawMessage) (json.RawMessage, error)
	// Run does the work.
	Run Func
}

// Registry holds the kinds a [Runner] can run. The zero value is empty and
// ready to use; every method is safe for concurrent use and never blocks
// beyond a short lock.
type Registry struct {
	mu    sync.RWMutex
	kinds map[string]Kind
}

// NewRegistry returns a registry with the given kinds; it panics if two
// have the same name or one is invalid (a programmer error).
func NewRegistry(kinds ...Kind) *Registry {
	r := &Registry{}
	for _, k := range kinds {
		if err := r.Register(k); err != nil {
			panic("cancellation: " + err.Error())
		}
	}
	return r
}

// Register adds k. It fails when k has no name or no Run function, or a
// kind of that name is already registered.
func (r *Registry) Register(k Kind) error {
	if k.Name == "" || k.Run == nil {
		return fmt.Errorf("task kind %q: a kind needs a name and a Run function", k.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[k.Name]; dup {
		return fmt.Errorf("task kind %q registered twice", k.Name)
	}
	if r.kinds == nil {
		r.kinds = make(map[string]Kind)
	}
	r.kinds[k.Name] = k
	return nil
}

// Lookup returns the kind called name.
func (r *Registry) Lookup(name string) (Kind, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.kinds[name]
	return k, ok
}

// Names returns the registered kinds' names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Run is the handle a [Func] gets: the task's identity and params, a
// logger, and progress reporting. Its methods are safe for concurrent use
// by the goroutines the function starts.
type Run struct {
	task *Task // as at the start of this attempt; never modified
	base *slog.Logger
	node string
	rt   *running

	logOnce sync.Once
	logger  *slog.Logger
}

// ID returns the task's id.
func (r *Run) ID() string { return r.task.ID }

// Attempt returns which attempt this is, counting from 1.
func (r *Run) Attempt() int { return r.task.Attempt }

// Task returns a copy of the task's record as it was when this attempt
// started.
func (r *Run) Task() *Task { return r.task.Clone() }

// Params decodes the task's (normalized) params into v.
func (r *Run) Params(v any) error {
	if len(r.task.Params) == 0 {
		return nil
	}
	return json.Unmarshal(r.task.Params, v)
}

// Logger returns the runner's logger with the attributes task=<id>,
// node and attempt: enough to tell runs apart in merged logs. It is made
// on the first call.
func (r *Run) Logger() *slog.Logger {
	r.logOnce.Do(func() {
		r.logger = r.base.With("task", r.task.ID, "node", r.node, "attempt", r.task.Attempt)
	})
	return r.logger
}

// Check returns nil while the task may go on, and its token's error
// (context.Canceled or context.DeadlineExceeded, the reason in the
// token's cause) once it must stop. Call it right before a step that must
// not run on two nodes at once: besides the token it checks the task's
// lease against this process's monotonic clock, so a process that was
// frozen (SIGSTOP, a paused VM) past the end of its lease stops here even
// when the lease timer has not fired yet; it then cancels the token with
// ErrLeaseLost at once. Check does not block beyond the callbacks of that
// cancellation.
func (r *Run) Check() error {
	if r.rt == nil {
		return nil
	}
	return r.rt.check()
}

// Progress reports how far the task has come. It never blocks and costs
// about as much as a mutex: reports are coalesced, so the store sees at
// most one write per progress interval (100 ms by default) per task, and
// always the last value reported (at the latest with the task's final
// state).
func (r *Run) Progress(done, total int64, message string) {
	if r.rt != nil {
		r.rt.setProgress(Progress{Done: done, Total: total, Message: message})
	}
}

package task

import (
	"context"
	"time"
)

// Store keeps task records and the work queue. Every change to a record is
// a compare-and-set on its revision: [Store.Update] succeeds only when the
// stored revision is still the one the caller read, so no update is lost
// and no state goes backwards. Revisions grow across the whole store (a
// later write anywhere has a larger revision), which makes them usable as
// event ids.
//
// Implementations must pass the conformance suite in package
// task/storetest. Every method is safe for concurrent use; methods that
// take a context block until they are done or ctx is done.
type Store interface {
	// Create stores a new task (its State queued or running, its ID from
	// NewID) and returns the stored copy and its revision. When a task
	// with the same ID exists, it returns ErrExists. When t.IdempotencyKey
	// is set and a task was already created with that key, it creates
	// nothing and returns that task, its revision and an error wrapping
	// ErrExists.
	Create(ctx context.Context, t *Task) (*Task, uint64, error)

	// Get returns a task and its revision, or ErrNotFound.
	Get(ctx context.Context, id string) (*Task, uint64, error)

	// Update replaces the task t.ID if its revision is still rev and
	// returns the new revision; otherwise it changes nothing and returns
	// an error wrapping ErrConflict (or ErrNotFound).
	Update(ctx context.Context, t *Task, rev uint64) (uint64, error)

	// Delete removes a task if its revision is still rev (ErrConflict
	// otherwise). Watchers see an Event with Deleted set.
	Delete(ctx context.Context, id string, rev uint64) error

	// List returns tasks newest first (by ID), filtered and paged as opts
	// says. A write that returned before List was called is reflected.
	List(ctx context.Context, opts ListOptions) (Page, error)

	// Watch returns a channel of changes, in revision order, until ctx is
	// done or the store is closed; then the channel is closed. See
	// WatchOptions for where it starts. Every record is complete, so a
	// watcher needs only the latest: one that falls behind may see only the
	// last of several quick changes of a task (never an older one after a
	// newer). The caller must keep reading; a consumer that stops reading
	// holds only its own watch back.
	Watch(ctx context.Context, opts WatchOptions) (<-chan Event, error)

	// Enqueue puts a task id on the work queue.
	Enqueue(ctx context.Context, id string) error

	// Dequeue blocks until a task id is available on the work queue and
	// claims it, or ctx is done (then it returns ctx's error). A claim not
	// acknowledged within the store's redelivery time is handed out again.
	Dequeue(ctx context.Context) (Claim, error)

	// QueueLen returns how many task ids are on the work queue: waiting,
	// or claimed by Dequeue and neither acknowledged nor released yet. A
	// Runner uses it to find queued tasks that have no id on the queue
	// (their node stopped between writing the record and queuing it).
	QueueLen(ctx context.Context) (int, error)

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
}

// Claim is a task id taken off the work queue. Ack removes it from the
// queue for good; Release puts it back at once for another Dequeue. A
// Claim's methods are safe for concurrent use; only the first call counts.
type Claim interface {
	ID() string
	Ack(ctx context.Context) error
	Release(ctx context.Context) error
}

// ListOptions filters and pages [Store.List].
type ListOptions struct {
	State     State  // only tasks in this state; "" for all
	Kind      string // only tasks of this kind; "" for all
	PageSize  int    // at most this many (0 means DefaultPageSize; capped at MaxPageSize)
	PageToken string // NextPageToken of the previous page; "" for the first
}

// The page sizes of [Store.List].
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Page is one page of [Store.List]: the tasks, newest first, and the token
// of the next page ("" when this is the last).
type Page struct {
	Tasks         []*Task
	NextPageToken string
}

// WatchOptions says what [Store.Watch] delivers.
type WatchOptions struct {
	// ID, if set, watches that one task; otherwise every task.
	ID string
	// After, if not zero, starts with every watched task whose latest
	// revision is greater than After (each once, at its latest state),
	// then goes on with changes: a client that saw events up to After
	// resumes without a gap. Zero means changes from now on only.
	After uint64
}

// Event is one change: the task as written with its revision, or, when
// Deleted is set, the removal of task ID (Task is nil then).
type Event struct {
	Rev     uint64
	ID      string
	Task    *Task
	Deleted bool
}

// Size returns the page size opts asks for, bounded to
// 1..[MaxPageSize]. It never blocks.
func (opts ListOptions) Size() int {
	switch {
	case opts.PageSize <= 0:
		return DefaultPageSize
	case opts.PageSize > MaxPageSize:
		return MaxPageSize
	}
	return opts.PageSize
}

// Match reports whether t passes the filters of opts. It never blocks.
func (opts ListOptions) Match(t *Task) bool {
	return (opts.State == "" || t.State == opts.State) && (opts.Kind == "" || t.Kind == opts.Kind)
}

// now is the clock of records, in UTC at microsecond precision so a time
// survives its JSON round trip unchanged.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

package task

import (
	"encoding/json"
	"fmt"
	"time"
)

// State is where a task is in its life. The only moves are
//
//	queued → running → succeeded | failed | canceled
//	running → canceling → canceled (or succeeded | failed, when the function
//	                                 returned its own result first)
//	queued → canceled   (a task canceled while queued never runs)
//	running | canceling → queued (handed back: drain, lease lost; it runs
//	                              again with the next attempt)
//
// A State is a plain string; comparing and copying it is safe anywhere.
type State string

// The states of a task. Succeeded, Failed and Canceled are final.
const (
	Queued    State = "queued"
	Running   State = "running"
	Canceling State = "canceling"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	Canceled  State = "canceled"
)

// States lists every state in the order of a task's life. It must not be
// modified.
var States = []State{Queued, Running, Canceling, Succeeded, Failed, Canceled}

// Final reports whether s is a final state: nothing changes a task after
// it. It never blocks.
func (s State) Final() bool { return s == Succeeded || s == Failed || s == Canceled }

// Valid reports whether s is one of [States]. It never blocks.
func (s State) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// CanMove reports whether a task may go from s to next (see [State]).
// Stores do not check it; [Runner] never makes another move. It never
// blocks.
func (s State) CanMove(next State) bool {
	switch s {
	case Queued:
		return next == Running || next == Canceled
	case Running:
		return next == Canceling || next == Queued || next.Final()
	case Canceling:
		return next == Queued || next.Final()
	}
	return false
}

// Progress is how far a task has come: Done of Total units (steps, bytes),
// with an optional message. Total is 0 when unknown.
type Progress struct {
	Done    int64  `json:"done"`
	Total   int64  `json:"total"`
	Message string `json:"message,omitempty"`
}

// CancelRequest records that someone asked a task to stop: when, why
// (free text from the caller) and through which node (and request) the
// request came in.
type CancelRequest struct {
	RequestedAt time.Time `json:"requested_at"`
	Reason      string    `json:"reason,omitempty"`
	Via         string    `json:"via,omitempty"`
	RequestID   string    `json:"request_id,omitempty"`
}

// Lease says which node runs a task and for how long its claim holds
// without renewal. The node renews it by writing the record (Renewals
// grows), so any observer can tell a live lease from a lost one by its own
// monotonic clock: a lease whose record has not changed for Duration has
// ended. Wall clocks of different machines are never compared.
type Lease struct {
	Node     string   `json:"node"`
	Duration Duration `json:"duration"`
	Renewals int64    `json:"renewals"`
}

// Task is a task's record: the one representation the store keeps and the
// HTTP API serves. Times are UTC; fields that do not apply yet are nil or
// empty and left out of the JSON.
//
// A Task is a plain value: it is not safe to modify one from several
// goroutines, and the pointers that [Store] and [Runner] return are copies
// the caller owns.
type Task struct {
	ID          string          `json:"id"`
	Kind        string          `json:"kind"`
	Params      json.RawMessage `json:"params,omitempty"`
	Timeout     Duration        `json:"timeout,omitempty"`
	State       State           `json:"state"`
	Progress    *Progress       `json:"progress,omitempty"`
	Node        string          `json:"node,omitempty"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts,omitempty"`
	// RequestScoped is set for a task that runs inside an HTTP request on
	// the node that received it (GET /longrunningtask): it is never
	// queued and never runs again.
	RequestScoped bool           `json:"request_scoped,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
	StartedAt     *time.Time     `json:"started_at,omitempty"`
	FinishedAt    *time.Time     `json:"finished_at,omitempty"`
	Cancel        *CancelRequest `json:"cancel,omitempty"`
	Cause         string         `json:"cause,omitempty"`
	Result        string         `json:"result,omitempty"`
	StopLatencyMS *float64       `json:"stop_latency_ms,omitempty"`
	Lease         *Lease         `json:"lease,omitempty"`
	// IdempotencyKey is the Idempotency-Key the task was created with.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Clone returns a deep copy of t. It never blocks.
func (t *Task) Clone() *Task {
	c := *t
	c.Params = append(json.RawMessage(nil), t.Params...)
	if t.Progress != nil {
		p := *t.Progress
		c.Progress = &p
	}
	if t.StartedAt != nil {
		v := *t.StartedAt
		c.StartedAt = &v
	}
	if t.FinishedAt != nil {
		v := *t.FinishedAt
		c.FinishedAt = &v
	}
	if t.Cancel != nil {
		v := *t.Cancel
		c.Cancel = &v
	}
	if t.StopLatencyMS != nil {
		v := *t.StopLatencyMS
		c.StopLatencyMS = &v
	}
	if t.Lease != nil {
		v := *t.Lease
		c.Lease = &v
	}
	return &c
}

// Duration is a time.Duration that is written in JSON in Go syntax
// ("1m30s") and read from a Go duration string or from a number of
// nanoseconds.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string (or nanoseconds as a number).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration must be a string such as \"90s\" or \"10m\"")
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a Go duration such as \"90s\" or \"10m\"", s)
	}
	*d = Duration(v)
	return nil
}

// String returns d in Go syntax.
func (d Duration) String() string { return time.Duration(d).String() }

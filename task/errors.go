package task

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors of [Store] methods.
var (
	ErrNotFound = errors.New("task not found")
	ErrExists   = errors.New("task already exists")
	ErrConflict = errors.New("task changed concurrently (revision conflict)")
)

// Errors of [Runner] methods.
var (
	// ErrFinished is returned by Runner.Cancel for a task that already
	// succeeded or failed; the task is returned with it.
	ErrFinished = errors.New("task already finished")
	// ErrUnknownKind is wrapped by the error of Submit for a kind nobody
	// registered.
	ErrUnknownKind = errors.New("unknown task kind")
	// ErrInvalid is wrapped by the error of Submit for bad params or a bad
	// timeout; the message says what to change.
	ErrInvalid = errors.New("invalid task")
	// ErrClosed is returned by Runner methods that start work after
	// Shutdown began.
	ErrClosed = errors.New("task runner shut down")
)

// Causes with which the [Runner] cancels a task's token. Test for them
// with errors.Is(context.Cause(tok), …).
var (
	// ErrLeaseLost: the node could not renew the task's lease in time, so
	// another node may take the task over; the task is handed back.
	ErrLeaseLost = errors.New("lease lost")
	// ErrShuttingDown: the node is draining and the grace period is over;
	// the task is handed back to the queue.
	ErrShuttingDown = errors.New("node shutting down")
)

// CancelError is the cause of a task canceled on request: the request's
// reason and where it came from. Its message is "canceled: " and the
// reason ("canceled" without one).
type CancelError struct{ Request CancelRequest }

// Error returns "canceled: <reason>".
func (e *CancelError) Error() string {
	if e.Request.Reason == "" {
		return "canceled"
	}
	return "canceled: " + e.Request.Reason
}

// TimeoutError is the cause of a task whose timeout passed; errors.Is(err,
// context.DeadlineExceeded) holds.
type TimeoutError struct{ Timeout time.Duration }

// Error says which timeout passed.
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timeout: not finished within %v", e.Timeout)
}

// Unwrap returns context.DeadlineExceeded.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// The kinds of cause returned by [CauseKind]: bounded, for metric labels.
const (
	CauseRequest  = "request"    // a cancel request (*CancelError)
	CauseTimeout  = "timeout"    // the task's timeout (*TimeoutError)
	CauseLease    = "lease_lost" // ErrLeaseLost
	CauseShutdown = "shutdown"   // ErrShuttingDown
	CauseDeadline = "deadline"   // another context.DeadlineExceeded
	CauseOther    = "other"
)

// CauseKind classifies the cause of a task's cancellation into one of a
// few kinds (CauseRequest, ...). It never blocks.
func CauseKind(cause error) string {
	var ce *CancelError
	var te *TimeoutError
	switch {
	case errors.As(cause, &ce):
		return CauseRequest
	case errors.As(cause, &te):
		return CauseTimeout
	case errors.Is(cause, ErrLeaseLost):
		return CauseLease
	case errors.Is(cause, ErrShuttingDown):
		return CauseShutdown
	case errors.Is(cause, context.DeadlineExceeded):
		return CauseDeadline
	}
	return CauseOther
}

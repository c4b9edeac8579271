package cancellation

import (
	"context"
	"fmt"
	"time"
)

// Shield returns a token for bounded cleanup after ctx ends: the token
// ignores ctx's cancellation until ctx is done, then allows budget more and
// is canceled, with Err context.DeadlineExceeded and a cause that says
// "shielded cleanup budget of <budget> exceeded after: <ctx's cause>" and
// unwraps to ctx's cause. A budget <= 0 cancels it as soon as ctx is done.
// Values flow from ctx. It is context.WithoutCancel with a bound: cleanup
// (flushing, a graceful shutdown, a final status write) gets to run when
// ctx is canceled, but cannot hang forever.
//
// If ctx is already done, the budget starts now. The budget is measured from
// the moment Shield learns that ctx is done: synchronously inside the
// Cancel of a [Token] ctx, through context.AfterFunc for other contexts.
//
// Call release when the cleanup is over: it cancels the token (cause
// context.Canceled, unless the budget already ran out) and frees its link
// to ctx and its timer at once instead of when ctx ends. release is
// idempotent and safe for concurrent use; it blocks only to run the token's
// own callbacks. Shield does not block; it panics if ctx is nil.
func Shield(ctx context.Context, budget time.Duration) (tok Token, release func()) {
	if ctx == nil {
		panic("cancellation: Shield with nil ctx")
	}
	src := New(context.WithoutCancel(ctx))
	expire := func() { src.CancelAfterCause(budget, &shieldError{budget: budget, cause: context.Cause(ctx)}) }
	var stop func() bool
	switch p := ctx.(type) {
	case Token:
		// Synchronously inside p's Cancel: the budget starts exactly then.
		stop = p.Register(expire).Stop
	default:
		if ctx.Err() != nil {
			expire()
		} else if ctx.Done() != nil {
			stop = context.AfterFunc(ctx, expire)
		}
	}
	return src.Token(), func() {
		if stop != nil {
			stop()
		}
		src.Cancel()
	}
}

// shieldError is the cause of a Shield token whose budget ran out.
type shieldError struct {
	budget time.Duration
	cause  error
}

func (e *shieldError) Error() string {
	return fmt.Sprintf("shielded cleanup budget of %v exceeded after: %v", e.budget, e.cause)
}

func (e *shieldError) Unwrap() error { return e.cause }

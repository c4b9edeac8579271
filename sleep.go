package cancellation

import (
	"context"
	"time"
)

// Sleep pauses the calling goroutine for d or until ctx is done, whichever
// comes first, like .NET's Task.Delay(d, token). It returns nil after d, and
// ctx.Err() as soon as ctx is done (at once if it already is). It works with
// any context, leaks no timer or goroutine, and blocks the calling goroutine
// only.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	done := ctx.Done()
	if done == nil {
		time.Sleep(d)
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

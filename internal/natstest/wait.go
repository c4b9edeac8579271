package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/internal/testlog"
	"github.com/go-cancellation/cancellation/task"
)

// Until watches task id on s until cond holds for its record, and returns
// that record. A watch that ends (a NATS restart) is started again. It
// blocks until then or until [testlog.TimeLeft] has passed, when it fails
// the test naming what. Call it from the test's goroutine.
func Until(t *testing.T, s task.Store, id, what string, cond func(*task.Task) bool) *task.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testlog.TimeLeft(t))
	defer cancel()
	for ctx.Err() == nil {
		ch, err := s.Watch(ctx, task.WatchOptions{ID: id, After: 1})
		if err != nil {
			cancellation.Sleep(ctx, 50*time.Millisecond)
			continue
		}
		if cur, _, err := s.Get(ctx, id); err == nil && cond(cur) {
			return cur
		}
		for ev := range ch {
			if ev.Task != nil && cond(ev.Task) {
				return ev.Task
			}
		}
	}
	cur, _, _ := s.Get(context.Background(), id)
	t.Fatalf("task %s: %s did not happen before the test's deadline; now %+v", id, what, cur)
	return nil
}

package task_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/internal/doccheck"
	"github.com/go-cancellation/cancellation/internal/natstest"
	"github.com/go-cancellation/cancellation/internal/testlog"
	"github.com/go-cancellation/cancellation/task"
	"github.com/go-cancellation/cancellation/task/natsstore"
)

func TestMain(m *testing.M) { os.Exit(natstest.Main(m)) }

func TestDocs(t *testing.T) { doccheck.Check(t, ".") }

var buckets atomic.Int64

// newBucket returns a fresh bucket name: stores opened with the same name
// share records and queue, like nodes of one cluster.
func newBucket() string { return fmt.Sprintf("b%d", buckets.Add(1)) }

// openStore opens a store on bucket over a connection of its own.
func openStore(t *testing.T, bucket string) *natsstore.Store {
	t.Helper()
	return natstest.Store(t, natsstore.Options{Bucket: bucket, AckWait: 2 * time.Second})
}

// gate is a kind whose tasks block until released, reporting their
// starts and the cause of their tokens.
type gate struct {
	started chan string // ids, as they start
	release chan struct{}
	causes  chan error // context.Cause of canceled tokens
	runs    atomic.Int64
	active  atomic.Int64
	peak    atomic.Int64
}

func newGate() *gate {
	return &gate{started: make(chan string, 100), release: make(chan struct{}), causes: make(chan error, 100)}
}

func (g *gate) kind() task.Kind {
	return task.Kind{Name: "gate", Run: func(tok cancellation.Token, run *task.Run) (string, error) {
		g.runs.Add(1)
		n := g.active.Add(1)
		defer g.active.Add(-1)
		for {
			p := g.peak.Load()
			if n <= p || g.peak.CompareAndSwap(p, n) {
				break
			}
		}
		g.started <- run.ID()
		select {
		case <-g.release:
			return "released", nil
		case <-tok.Done():
			g.causes <- context.Cause(tok)
			return "", tok.Err()
		}
	}}
}

type runnerOpts struct {
	store       task.Store
	node        string
	concurrency int
	lease       time.Duration
	retention   time.Duration
	kinds       []task.Kind
	onStop      func(task.Stopped)
	logger      *slog.Logger
}

// startRunner starts a runner, shut down (grace 0) when the test ends.
func startRunner(t *testing.T, o runnerOpts) *task.Runner {
	t.Helper()
	if o.node == "" {
		o.node = "node-a"
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	r, err := task.NewRunner(task.Config{
		Store: o.store, Kinds: task.NewRegistry(o.kinds...), Node: o.node,
		Concurrency: o.concurrency, Lease: o.lease, Retention: o.retention,
		OnStop: o.onStop, Logger: o.logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Shutdown(context.Background(), 0); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return r
}

func recvT[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-testlog.DeadlineContext(t).Done():
		t.Fatalf("no %s before the test's deadline", what)
	}
	panic("unreachable")
}

// waitState watches task id until it reaches state and returns it.
func waitState(t *testing.T, s task.Store, id string, want task.State) *task.Task {
	t.Helper()
	ctx, cancel := context.WithCancel(testlog.DeadlineContext(t))
	defer cancel()
	ch, err := s.Watch(ctx, task.WatchOptions{ID: id, After: 1})
	if err != nil {
		t.Fatal(err)
	}
	cur, _, err := s.Get(ctx, id)
	if err == nil && cur.State == want {
		return cur
	}
	if err == nil && cur.State.Final() {
		t.Fatalf("task %s ended %s, want %s: %+v", id, cur.State, want, cur)
	}
	for ev := range ch {
		if ev.Task != nil && ev.Task.State == want {
			return ev.Task
		}
		if ev.Task != nil && ev.Task.State.Final() {
			t.Fatalf("task %s ended %s, want %s: %+v", id, ev.Task.State, want, ev.Task)
		}
	}
	cur, _, _ = s.Get(context.Background(), id)
	t.Fatalf("task %s did not reach %s (now %+v)", id, want, cur)
	return nil
}

// countingStore counts Updates and can be made to fail them.
type countingStore struct {
	task.Store
	updates atomic.Int64
	creates atomic.Int64
	fail    atomic.Bool
}

func (c *countingStore) Create(ctx context.Context, t *task.Task) (*task.Task, uint64, error) {
	c.creates.Add(1)
	return c.Store.Create(ctx, t)
}

var errUnreachable = errors.New("store unreachable (test)")

func (c *countingStore) Update(ctx context.Context, t *task.Task, rev uint64) (uint64, error) {
	if c.fail.Load() {
		return 0, errUnreachable
	}
	c.updates.Add(1)
	return c.Store.Update(ctx, t, rev)
}

var _ = sync.Mutex{}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

package tasks

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-cancellation/cancellation/internal/faultnet"
	"github.com/redis/go-redis/v9"
)

// waitLimit bounds every single wait of a measurement: a task that never
// starts or a cancel that never arrives fails the measurement instead of
// hanging it.
const waitLimit = time.Minute

var queueSeq atomic.Int64

// QueueName returns a queue name used by no other measurement of this
// process (nor, with the pid in it, of another process on the broker).
func QueueName() string {
	return fmt.Sprintf("b%d_%d", os.Getpid(), queueSeq.Add(1))
}

type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

// quietLogs silences go-redis's process-wide logger, which prints every
// reconnection attempt.
func quietLogs() { redis.SetLogger(quietRedisLog{}) }

func withNode(ctx context.Context, p Peer, opts Options, f func(Node) error) error {
	node, err := p.Open(ctx, opts)
	if err != nil {
		return fmt.Errorf("%s: open: %w", p.Name(), err)
	}
	err = f(node)
	if cerr := node.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%s: close: %w", p.Name(), cerr)
	}
	return err
}

func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, waitLimit)
}

// warm submits one no-op task and waits until it ran, so that connections
// and worker loops exist before a measurement starts.
func warm(ctx context.Context, node Node, tr *Tracker) error {
	_, _, done := tr.Counts()
	if _, err := node.Submit(ctx, Noop); err != nil {
		return err
	}
	wctx, cancel := bounded(ctx)
	defer cancel()
	return tr.WaitDone(wctx, done+1)
}

// Throughput submits n no-op tasks from submitters goroutines to a node
// running workers of them at once, and returns tasks per second from the
// first submit to the n-th task's return.
func Throughput(ctx context.Context, p Peer, b Broker, n, submitters, workers int) (float64, error) {
	tr := NewTracker()
	var rate float64
	err := withNode(ctx, p, Options{Broker: b, Queue: QueueName(), Workers: workers, Events: tr}, func(node Node) error {
		if err := warm(ctx, node, tr); err != nil {
			return err
		}
		_, _, base := tr.Counts()
		t0 := Mono()
		var wg sync.WaitGroup
		errs := make(chan error, submitters)
		for i := range submitters {
			wg.Go(func() {
				for j := i; j < n; j += submitters {
					if _, err := node.Submit(ctx, Noop); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		wctx, cancel := bounded(ctx)
		defer cancel()
		if err := tr.WaitDone(wctx, base+n); err != nil {
			return err
		}
		rate = float64(n) / Since(t0, Mono()).Seconds()
		return nil
	})
	return rate, err
}

// cancelOneByOne runs batches of up to batch blocking tasks; once a batch
// runs it cancels its tasks one at a time through canceler, each after the
// previous one's context was canceled, and returns for each the time from
// the start of the Cancel call to the worker seeing its context canceled.
func cancelOneByOne(ctx context.Context, canceler Node, tr *Tracker, n, batch int) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, n)
	for len(lat) < n {
		ids := make([]string, min(batch, n-len(lat)))
		for i := range ids {
			id, err := canceler.Submit(ctx, Block)
			if err != nil {
				return nil, err
			}
			ids[i] = id
		}
		wctx, cancel := bounded(ctx)
		for _, id := range ids {
			if _, err := tr.WaitRunning(wctx, id); err != nil {
				cancel()
				return nil, err
			}
		}
		for _, id := range ids {
			t0 := Mono()
			if err := canceler.Cancel(ctx, id); err != nil {
				cancel()
				return nil, err
			}
			at, _, err := tr.WaitCanceled(wctx, id)
			if err != nil {
				cancel()
				return nil, err
			}
			lat = append(lat, Since(t0, at))
			tr.Forget(id)
		}
		cancel()
	}
	return lat, nil
}

// CancelLatency measures n cancels of running tasks on one node that both
// runs and cancels them (batch tasks running at a time): the time from the
// cancel call to the task's context being canceled.
func CancelLatency(ctx context.Context, p Peer, b Broker, n, batch int) ([]time.Duration, error) {
	tr := NewTracker()
	var lat []time.Duration
	err := withNode(ctx, p, Options{Broker: b, Queue: QueueName(), Workers: batch, Events: tr}, func(node Node) error {
		if err := warm(ctx, node, tr); err != nil {
			return err
		}
		var err error
		lat, err = cancelOneByOne(ctx, node, tr, n, batch)
		return err
	})
	return lat, err
}

// RemoteCancelLatency is [CancelLatency] across processes: the tasks run
// in a worker process (this executable, see [MaybeWorker]) and are
// canceled from this one.
func RemoteCancelLatency(ctx context.Context, p Peer, b Broker, n, batch int) ([]time.Duration, error) {
	tr := NewTracker()
	queue := QueueName()
	rem, err := startRemote(ctx, p, b, queue, batch, tr)
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	err = withNode(ctx, p, Options{Broker: b, Queue: queue}, func(node Node) error {
		if err := warm(ctx, node, tr); err != nil {
			return err
		}
		var err error
		lat, err = cancelOneByOne(ctx, node, tr, n, batch)
		return err
	})
	if serr := rem.stop(); err == nil && serr != nil {
		err = fmt.Errorf("%s worker process: %w", p.Name(), serr)
	}
	return lat, err
}

// liveBytes is the heap and stack memory in use after two collections.
func liveBytes() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}

// MemoryRunning returns the heap and stack bytes per running task of a
// node (this process) running n blocking tasks at once, measured against
// the same node idle. For a system whose broker is embedded in the
// process, the broker's share is included.
func MemoryRunning(ctx context.Context, p Peer, b Broker, n int) (float64, error) {
	tr := NewTracker()
	tr.countOnly = true
	var per float64
	err := withNode(ctx, p, Options{Broker: b, Queue: QueueName(), Workers: n, Events: tr}, func(node Node) error {
		if err := warm(ctx, node, tr); err != nil {
			return err
		}
		ids := make([]string, 0, n)
		before := liveBytes()
		for range n {
			id, err := node.Submit(ctx, Block)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		wctx, cancel := bounded(ctx)
		defer cancel()
		if err := tr.WaitRunningCount(wctx, n); err != nil {
			return err
		}
		per = float64(liveBytes()-before) / float64(n)
		for _, id := range ids {
			if err := node.Cancel(ctx, id); err != nil {
				return err
			}
		}
		return tr.WaitCanceledCount(wctx, n)
	})
	return per, err
}

// MemoryQueued submits n tasks to a queue no worker serves and returns the
// broker's growth per task ([Node.BrokerBytes]) and this process's heap
// growth per task.
func MemoryQueued(ctx context.Context, p Peer, b Broker, n int) (broker, heap float64, err error) {
	err = withNode(ctx, p, Options{Broker: b, Queue: QueueName()}, func(node Node) error {
		if _, err := node.Submit(ctx, Noop); err != nil { // connections, lazily created structures
			return err
		}
		b0, err := node.BrokerBytes(ctx)
		if err != nil {
			return err
		}
		h0 := liveBytes()
		for range n {
			if _, err := node.Submit(ctx, Noop); err != nil {
				return err
			}
		}
		heap = float64(liveBytes()-h0) / float64(n)
		b1, err := node.BrokerBytes(ctx)
		if err != nil {
			return err
		}
		broker = float64(b1-b0) / float64(n)
		return nil
	})
	return broker, heap, err
}

// Outcome is what became of a cancel sent while the worker was cut off
// from its broker.
type Outcome struct {
	// Stopped says whether the task's context was canceled within the
	// window after the worker could reconnect.
	Stopped bool
	// After is the time from reopening the proxy to the context being
	// canceled (negative: it was canceled while still cut off).
	After time.Duration
	// Cause is what the task's context said (context.Cause).
	Cause string
}

func (o Outcome) String() string {
	if !o.Stopped {
		return "lost"
	}
	return fmt.Sprintf("obeyed after %.2fs", o.After.Seconds())
}

// Disconnected runs one blocking task in a worker process that reaches the
// broker through a TCP proxy, cuts the proxy, cancels the task from this
// process, keeps the worker cut off for down, reopens the proxy and waits
// up to window for the task's context to be canceled.
func Disconnected(ctx context.Context, p Peer, b Broker, down, window time.Duration) (Outcome, error) {
	proxy, err := faultnet.ListenNetwork(b.Network, b.Addr)
	if err != nil {
		return Outcome{}, err
	}
	defer proxy.Close()
	tr := NewTracker()
	queue := QueueName()
	rem, err := startRemote(ctx, p, Broker{"tcp", proxy.Addr()}, queue, 2, tr)
	if err != nil {
		return Outcome{}, err
	}
	var out Outcome
	err = withNode(ctx, p, Options{Broker: b, Queue: queue}, func(node Node) error {
		id, err := node.Submit(ctx, Block)
		if err != nil {
			return err
		}
		wctx, cancel := bounded(ctx)
		defer cancel()
		if _, err := tr.WaitRunning(wctx, id); err != nil {
			return err
		}
		proxy.Set(faultnet.Cut)
		if err := node.Cancel(ctx, id); err != nil {
			return fmt.Errorf("cancel while the worker is cut off: %w", err)
		}
		select { // the outage itself: the worker stays cut off this long
		case <-time.After(down):
		case <-ctx.Done():
			return ctx.Err()
		}
		proxy.Set(faultnet.Pass)
		restored := Mono()
		wctx, cancel = context.WithTimeout(ctx, window)
		defer cancel()
		at, cause, err := tr.WaitCanceled(wctx, id)
		if err != nil {
			return nil // lost: out stays zero
		}
		out = Outcome{Stopped: true, After: Since(restored, at), Cause: cause}
		return nil
	})
	if serr := rem.stop(); err == nil && serr != nil {
		err = fmt.Errorf("%s worker process: %w", p.Name(), serr)
	}
	return out, err
}

// Percentile returns the p-th percentile (0..100, nearest rank) of d, which
// it sorts.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(float64(len(d))*p/100+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

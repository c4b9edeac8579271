package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/bench/tasks"
)

func TestMain(m *testing.M) {
	tasks.MaybeWorker() // the cross-process benchmarks start this binary as their worker
	code := m.Run()
	for _, s := range setups {
		if s.cleanup != nil {
			s.cleanup()
		}
	}
	os.Exit(code)
}

type setup struct {
	broker  tasks.Broker
	cleanup func()
	err     error
}

var (
	setupMu sync.Mutex
	setups  = map[string]*setup{}
)

// brokerOf sets up p once per process and skips b when p is unavailable
// (no TASKBENCH_POSTGRES or TASKBENCH_REDIS, as in CI).
func brokerOf(b *testing.B, p tasks.Peer) tasks.Broker {
	b.Helper()
	setupMu.Lock()
	defer setupMu.Unlock()
	s := setups[p.Name()]
	if s == nil {
		s = &setup{}
		s.broker, s.cleanup, s.err = p.Setup(context.Background())
		setups[p.Name()] = s
	}
	if errors.Is(s.err, tasks.ErrUnavailable) {
		b.Skip(s.err)
	}
	if s.err != nil {
		b.Fatal(s.err)
	}
	return s.broker
}

func eachPeer(b *testing.B, f func(*testing.B, tasks.Peer, tasks.Broker)) {
	for _, p := range tasks.Peers() {
		b.Run("system="+p.Name(), func(b *testing.B) { f(b, p, brokerOf(b, p)) })
	}
}

// BenchmarkThroughput submits max(b.N, 200) no-op tasks to one node and
// reports tasks per second.
func BenchmarkThroughput(b *testing.B) {
	eachPeer(b, func(b *testing.B, p tasks.Peer, br tasks.Broker) {
		rate, err := tasks.Throughput(context.Background(), p, br, max(b.N, 200), 4, 50)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(rate, "tasks/s")
	})
}

// BenchmarkCancelLatency cancels max(b.N, 20) running tasks one at a time,
// from the node that runs them and from another process, and reports the
// p50 and p99 of the time to the task's context being canceled.
func BenchmarkCancelLatency(b *testing.B) {
	eachPeer(b, func(b *testing.B, p tasks.Peer, br tasks.Broker) {
		for _, where := range []string{"process", "remote"} {
			b.Run("where="+where, func(b *testing.B) {
				measure := tasks.CancelLatency
				if where == "remote" {
					measure = tasks.RemoteCancelLatency
				}
				lat, err := measure(context.Background(), p, br, max(b.N, 20), 10)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(ms(tasks.Percentile(lat, 50)), "p50-ms")
				b.ReportMetric(ms(tasks.Percentile(lat, 99)), "p99-ms")
			})
		}
	})
}

// BenchmarkMemory reports the bytes per running task (this process) and
// per queued task (broker and this process).
func BenchmarkMemory(b *testing.B) {
	eachPeer(b, func(b *testing.B, p tasks.Peer, br tasks.Broker) {
		ctx := context.Background()
		running, err := tasks.MemoryRunning(ctx, p, br, max(b.N, 100))
		if err != nil {
			b.Fatal(err)
		}
		broker, heap, err := tasks.MemoryQueued(ctx, p, br, max(b.N, 200))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(running, "B/running")
		b.ReportMetric(broker, "broker-B/queued")
		b.ReportMetric(heap, "heap-B/queued")
	})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func TestParseBroker(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want tasks.Broker
		ok   bool
	}{
		{"unix:/tmp/x/.s.PGSQL.5432", tasks.Broker{Network: "unix", Addr: "/tmp/x/.s.PGSQL.5432"}, true},
		{"tcp:127.0.0.1:6379", tasks.Broker{Network: "tcp", Addr: "127.0.0.1:6379"}, true},
		{"127.0.0.1:6379", tasks.Broker{Network: "tcp", Addr: "127.0.0.1:6379"}, true},
		{"unix:", tasks.Broker{}, false},
		{"redis", tasks.Broker{}, false},
	} {
		got, err := tasks.ParseBroker(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseBroker(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in && "tcp:"+tc.in != got.String() {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

// TestTracker: waiters see events that come before and after they wait,
// with the timestamps and cause of the first event of each kind.
func TestTracker(t *testing.T) {
	tr := tasks.NewTracker()
	tr.Running("a", 1)
	tr.Running("a", 2) // a duplicate does not move the time
	ctx := t.Context()
	if at, err := tr.WaitRunning(ctx, "a"); err != nil || at != 1 {
		t.Fatalf("WaitRunning(a) = %d, %v; want 1", at, err)
	}
	got := make(chan error, 1)
	go func() {
		at, cause, err := tr.WaitCanceled(ctx, "b")
		if err == nil && (at != 5 || cause != "why") {
			err = fmt.Errorf("WaitCanceled(b) = %d, %q; want 5, why", at, cause)
		}
		got <- err
	}()
	done := make(chan error, 1)
	go func() { done <- tr.WaitDone(ctx, 2) }()
	tr.Canceled("b", 5, "why")
	tr.Done("x", 6)
	tr.Done("y", 7)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := tr.WaitRunning(short, "never"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitRunning of a task that never runs: %v", err)
	}
	if r, c, d := tr.Counts(); r != 2 || c != 1 || d != 2 {
		t.Fatalf("Counts() = %d, %d, %d; want 2, 1, 2", r, c, d)
	}
}

// Package core benchmarks package cancellation side by side with the
// standard library's context: every pair is named
// BenchmarkX/impl=cancellation and BenchmarkX/impl=context so that benchstat
// (or ../compare.sh) can compare them.
package core

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
)

var (
	sinkBool bool
	sinkErr  error
)

func noop() {}

// check a live token: IsCanceled vs ctx.Err.
func BenchmarkCheckLive(b *testing.B) {
	b.Run("impl=cancellation", func(b *testing.B) {
		b.ReportAllocs()
		s := cancellation.New()
		tok := s.Token()
		for b.Loop() {
			sinkBool = tok.IsCanceled()
		}
	})
	b.Run("impl=context", func(b *testing.B) {
		b.ReportAllocs()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for b.Loop() {
			sinkBool = ctx.Err() != nil
		}
	})
}

// Err of a canceled token, read by GOMAXPROCS goroutines at once.
func BenchmarkErrCanceledParallel(b *testing.B) {
	b.Run("impl=cancellation", func(b *testing.B) {
		b.ReportAllocs()
		s := cancellation.New()
		s.Cancel()
		tok := s.Token()
		b.RunParallel(func(pb *testing.PB) {
			var err error
			for pb.Next() {
				err = tok.Err()
			}
			sinkErr = err
		})
	})
	b.Run("impl=context", func(b *testing.B) {
		b.ReportAllocs()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		b.RunParallel(func(pb *testing.PB) {
			var err error
			for pb.Next() {
				err = ctx.Err()
			}
			sinkErr = err
		})
	})
}

// New(parentToken)+Cancel vs WithCancel(parent)+cancel.
func BenchmarkNewCancel(b *testing.B) {
	b.Run("impl=cancellation", func(b *testing.B) {
		b.ReportAllocs()
		p := cancellation.New()
		tok := p.Token()
		for b.Loop() {
			cancellation.New(tok).Cancel()
		}
	})
	b.Run("impl=context", func(b *testing.B) {
		b.ReportAllocs()
		p, pcancel := context.WithCancel(context.Background())
		defer pcancel()
		for b.Loop() {
			_, cancel := context.WithCancel(p)
			cancel()
		}
	})
}

// Register+Stop vs context.AfterFunc+stop.
func BenchmarkRegisterStop(b *testing.B) {
	b.Run("impl=cancellation", func(b *testing.B) {
		b.ReportAllocs()
		s := cancellation.New()
		tok := s.Token()
		for b.Loop() {
			tok.Register(noop).Stop()
		}
	})
	b.Run("impl=context", func(b *testing.B) {
		b.ReportAllocs()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for b.Loop() {
			context.AfterFunc(ctx, noop)()
		}
	})
}

// New+CancelAfter(1h)+Cancel vs WithTimeout(1h)+cancel.
func BenchmarkTimeoutCancel(b *testing.B) {
	b.Run("impl=cancellation", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s := cancellation.New()
			s.CancelAfter(time.Hour)
			s.Cancel()
		}
	})
	b.Run("impl=context", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, cancel := context.WithTimeout(context.Background(), time.Hour)
			cancel()
		}
	})
}

// Re-arming a timeout vs making a fresh WithTimeout (context cannot re-arm).
func BenchmarkRearm(b *testing.B) {
	b.Run("impl=cancellation", func(b *testing.B) {
		b.ReportAllocs()
		s := cancellation.New()
		defer s.Cancel()
		for b.Loop() {
			s.CancelAfter(time.Hour)
		}
	})
	b.Run("impl=context", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, cancel := context.WithTimeout(context.Background(), time.Hour)
			cancel()
		}
	})
}

// New(a, b)+Cancel vs the AfterFunc-based merge from the context docs.
func BenchmarkMerge2(b *testing.B) {
	b.Run("impl=cancellation", func(b *testing.B) {
		b.ReportAllocs()
		pa, pb := cancellation.New(), cancellation.New()
		ta, tb := pa.Token(), pb.Token()
		for b.Loop() {
			cancellation.New(ta, tb).Cancel()
		}
	})
	b.Run("impl=context", func(b *testing.B) {
		b.ReportAllocs()
		a, acancel := context.WithCancel(context.Background())
		defer acancel()
		c, ccancel := context.WithCancel(context.Background())
		defer ccancel()
		for b.Loop() {
			ctx, cancel := mergeCancel(a, c)
			_ = ctx
			cancel()
		}
	})
}

// mergeCancel is the merge of ExampleAfterFunc_merge in the context package.
func mergeCancel(ctx, cancelCtx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(cancelCtx, func() {
		cancel(context.Cause(cancelCtx))
	})
	return ctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

const fanout = 10_000

// Cancel a parent with 10k children (only the cancel is timed).
func BenchmarkCancel10kChildren(b *testing.B) {
	b.Run("impl=cancellation", func(b *testing.B) {
		b.ReportAllocs()
		children := make([]*cancellation.Source, fanout)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			p := cancellation.New()
			for j := range children {
				children[j] = cancellation.New(p.Token())
			}
			b.StartTimer()
			p.Cancel()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/fanout, "ns/child")
	})
	b.Run("impl=context", func(b *testing.B) {
		b.ReportAllocs()
		cancels := make([]context.CancelFunc, fanout)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			p, pcancel := context.WithCancel(context.Background())
			for j := range cancels {
				_, cancels[j] = context.WithCancel(p)
			}
			b.StartTimer()
			pcancel()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/fanout, "ns/child")
	})
}

// 10k callbacks: register them, cancel, and wait until every one has run.
func BenchmarkCallbacks10k(b *testing.B) {
	b.Run("impl=cancellation", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		f := func() { n++ }
		for b.Loop() {
			s := cancellation.New()
			tok := s.Token()
			for range fanout {
				tok.Register(f)
			}
			s.Cancel() // synchronous: every callback has returned
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/fanout, "ns/callback")
	})
	b.Run("impl=context", func(b *testing.B) {
		b.ReportAllocs()
		var wg sync.WaitGroup
		f := func() { wg.Done() }
		for b.Loop() {
			ctx, cancel := context.WithCancel(context.Background())
			wg.Add(fanout)
			for range fanout {
				context.AfterFunc(ctx, f)
			}
			cancel()
			wg.Wait() // AfterFunc runs each f in its own goroutine
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/fanout, "ns/callback")
	})
}

// Heap bytes per live child of a live parent (B/op is per child).
func BenchmarkLiveChildBytes(b *testing.B) {
	b.Run("impl=cancellation", func(b *testing.B) {
		b.ReportAllocs()
		p := cancellation.New()
		tok := p.Token()
		keep := make([]*cancellation.Source, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			keep[i] = cancellation.New(tok)
		}
		b.StopTimer()
		p.Cancel()
		runtime.KeepAlive(keep)
	})
	b.Run("impl=context", func(b *testing.B) {
		b.ReportAllocs()
		p, pcancel := context.WithCancel(context.Background())
		keep := make([]context.Context, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var cancel context.CancelFunc
			keep[i], cancel = context.WithCancel(p)
			_ = cancel // canceled through the parent
		}
		b.StopTimer()
		pcancel()
		runtime.KeepAlive(keep)
	})
}

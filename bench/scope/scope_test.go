// Package scope benchmarks cancellation.Scope beside errgroup and
// sourcegraph/conc's pool: the cost each adds per goroutine it runs.
package scope

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sourcegraph/conc/pool"
	"golang.org/x/sync/errgroup"

	"github.com/go-cancellation/cancellation"
)

// batch is how many goroutines each group runs before Wait: the cost of
// making and waiting for a group is shared by that many.
const batch = 64

// group runs one batch of no-op goroutines in a new group that cancels on
// the first error, under parent, with at most limit at once (< 0: no
// limit).
type group struct {
	name string
	run  func(tok cancellation.Token, ctx context.Context, limit int) error
}

var groups = []group{
	{"scope", func(tok cancellation.Token, _ context.Context, limit int) error {
		s := cancellation.NewScope(tok)
		s.SetLimit(limit)
		for range batch {
			s.Go(func(cancellation.Token) error { return nil })
		}
		return s.Wait()
	}},
	{"errgroup", func(_ cancellation.Token, ctx context.Context, limit int) error {
		g, _ := errgroup.WithContext(ctx)
		g.SetLimit(limit)
		for range batch {
			g.Go(func() error { return nil })
		}
		return g.Wait()
	}},
	{"conc", func(_ cancellation.Token, ctx context.Context, limit int) error {
		p := pool.New().WithContext(ctx).WithCancelOnError()
		if limit > 0 {
			p = p.WithMaxGoroutines(limit)
		}
		for range batch {
			p.Go(func(context.Context) error { return nil })
		}
		return p.Wait()
	}},
}

// BenchmarkGo reports ns per goroutine run in a group (Go + run + a share
// of the group's creation and Wait) for each implementation as the metric
// <impl>-ns/goroutine: the median over its batches. Each iteration runs
// one batch with one implementation, taking turns, so that all run under
// the same machine load. limit=8 bounds the goroutines running at once.
func BenchmarkGo(b *testing.B) {
	for _, limit := range []int{-1, 8} {
		name := "unlimited"
		if limit > 0 {
			name = fmt.Sprintf("limit=%d", limit)
		}
		b.Run(name, func(b *testing.B) {
			parent := cancellation.New()
			defer parent.Cancel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			turns := make([][]time.Duration, len(groups))
			b.ReportAllocs()
			for i := range b.N {
				k := i % len(groups)
				start := time.Now()
				if err := groups[k].run(parent.Token(), ctx, limit); err != nil {
					b.Fatal(err)
				}
				turns[k] = append(turns[k], time.Since(start))
			}
			for k, g := range groups {
				if len(turns[k]) > 0 {
					slices.Sort(turns[k])
					b.ReportMetric(float64(turns[k][len(turns[k])/2].Nanoseconds())/batch, g.name+"-ns/goroutine")
				}
			}
		})
	}
}

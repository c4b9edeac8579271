// Package scope benchmarks cancellation.Scope beside errgroup and
// sourcegraph/conc's pool: the cost each adds per goroutine it runs.
package scope

import (
	"context"
	"fmt"
	"testing"

	"github.com/sourcegraph/conc/pool"
	"golang.org/x/sync/errgroup"

	"github.com/go-cancellation/cancellation"
)

// batch is how many goroutines each group runs before Wait: the cost of
// making and waiting for a group is shared by that many.
const batch = 64

// BenchmarkGo reports ns per goroutine run in a group (Go + run + a share
// of the group's creation and Wait), for groups that cancel on the first
// error, each with a parent context. limit=8 bounds the goroutines.
func BenchmarkGo(b *testing.B) {
	for _, limit := range []int{-1, 8} {
		name := "unlimited"
		if limit > 0 {
			name = fmt.Sprintf("limit=%d", limit)
		}
		b.Run(name+"/impl=scope", func(b *testing.B) {
			parent := cancellation.New()
			defer parent.Cancel()
			b.ReportAllocs()
			for i := 0; i < b.N; i += batch {
				s := cancellation.NewScope(parent.Token())
				s.SetLimit(limit)
				for range min(batch, b.N-i) {
					s.Go(func(cancellation.Token) error { return nil })
				}
				if err := s.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/impl=errgroup", func(b *testing.B) {
			parent, cancel := context.WithCancel(context.Background())
			defer cancel()
			b.ReportAllocs()
			for i := 0; i < b.N; i += batch {
				g, _ := errgroup.WithContext(parent)
				g.SetLimit(limit)
				for range min(batch, b.N-i) {
					g.Go(func() error { return nil })
				}
				if err := g.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/impl=conc", func(b *testing.B) {
			parent, cancel := context.WithCancel(context.Background())
			defer cancel()
			b.ReportAllocs()
			for i := 0; i < b.N; i += batch {
				p := pool.New().WithContext(parent).WithCancelOnError()
				if limit > 0 {
					p = p.WithMaxGoroutines(limit)
				}
				for range min(batch, b.N-i) {
					p.Go(func(context.Context) error { return nil })
				}
				if err := p.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

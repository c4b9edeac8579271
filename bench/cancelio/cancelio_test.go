// Package cancelio benchmarks package cancelio beside a bare Read and the
// usual alternative, a wrapper that runs each Read in a goroutine and
// selects on ctx.Done().
package cancelio

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelio"
)

// goReader is the goroutine-per-read peer: each Read starts a goroutine
// that reads into a buffer of its own, and returns on the first of the
// result and ctx.Done(). A canceled Read leaves its goroutine blocked (and
// drops what it reads later); it cannot be interrupted.
type goReader struct {
	ctx context.Context
	r   io.Reader
}

type result struct {
	b   []byte
	err error
}

func (g goReader) Read(p []byte) (int, error) {
	if err := g.ctx.Err(); err != nil {
		return 0, err
	}
	ch := make(chan result, 1)
	go func(n int) {
		b := make([]byte, n)
		n, err := g.r.Read(b)
		ch <- result{b[:n], err}
	}(len(p))
	select {
	case r := <-ch:
		return copy(p, r.b), r.err
	case <-g.ctx.Done():
		return 0, g.ctx.Err()
	}
}

type impl struct {
	name string
	wrap func(ctx context.Context, r *os.File) io.Reader
}

var impls = []impl{
	{"bare", func(_ context.Context, r *os.File) io.Reader { return r }},
	{"cancelio", func(ctx context.Context, r *os.File) io.Reader { return cancelio.Reader(ctx, r) }},
	{"cancelio-context", nil}, // cancelio.Reader over a stdlib context
	{"goroutine", func(ctx context.Context, r *os.File) io.Reader { return goReader{ctx, r} }},
}

// BenchmarkPipeRead reports ns per Read of size bytes from an os.Pipe
// that never blocks: the benchmark fills the pipe with one 32 KiB write,
// reads it back size bytes at a time, and repeats (the write's cost is
// shared by the reads). It compares the bare Read with the wrappers bound to
// a context that is never canceled (a Token; impl=cancelio-context uses
// context.WithCancel).
func BenchmarkPipeRead(b *testing.B) {
	const chunk = 32 << 10
	for _, size := range []int{512, chunk} {
		for _, im := range impls {
			b.Run(fmt.Sprintf("size=%d/impl=%s", size, im.name), func(b *testing.B) {
				r, w, err := os.Pipe()
				if err != nil {
					b.Fatal(err)
				}
				defer func() { r.Close(); w.Close() }()
				src := cancellation.New()
				defer src.Cancel()
				var rd io.Reader
				if im.wrap == nil {
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					rd = cancelio.Reader(ctx, r)
				} else {
					rd = im.wrap(src.Token(), r)
				}
				fill := make([]byte, chunk)
				buf := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if i%(chunk/size) == 0 {
						if _, err := w.Write(fill); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := io.ReadFull(rd, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkCancelToReturn reports the time from Cancel to the return of a
// Read blocked on an empty pipe (p50 and p99 over b.N cancellations).
func BenchmarkCancelToReturn(b *testing.B) {
	for _, im := range impls {
		if im.name == "bare" || im.wrap == nil {
			continue
		}
		b.Run("impl="+im.name, func(b *testing.B) {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			defer func() { r.Close(); w.Close() }()
			lat := make([]time.Duration, 0, b.N)
			done := make(chan time.Time)
			for range b.N {
				src := cancellation.New()
				rd := im.wrap(src.Token(), r)
				go func() {
					rd.Read(make([]byte, 1))
					done <- time.Now()
				}()
				time.Sleep(200 * time.Microsecond) // let the Read park in the poller
				start := time.Now()
				src.Cancel()
				lat = append(lat, (<-done).Sub(start))
			}
			// The goroutine peer leaves its readers blocked: release them.
			w.Write(make([]byte, b.N))
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Nanoseconds()), "p99-ns")
		})
	}
}

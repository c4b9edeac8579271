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
	"github.com/go-cancellation/cancellation/bench/internal/stats"
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
	wrap func(tok cancellation.Token, stdctx context.Context, r *os.File) io.Reader
}

var (
	bare     = impl{"bare", func(_ cancellation.Token, _ context.Context, r *os.File) io.Reader { return r }}
	ours     = impl{"cancelio", func(tok cancellation.Token, _ context.Context, r *os.File) io.Reader { return cancelio.Reader(tok, r) }}
	oursStd  = impl{"cancelio-context", func(_ cancellation.Token, ctx context.Context, r *os.File) io.Reader { return cancelio.Reader(ctx, r) }}
	perRead  = impl{"goroutine", func(tok cancellation.Token, _ context.Context, r *os.File) io.Reader { return goReader{tok, r} }}
	allocing = []impl{bare, perRead}
	zeroGC   = []impl{bare, ours, oursStd}
)

// BenchmarkPipeRead reports ns per Read of size bytes from an os.Pipe
// that never blocks, for the bare Read and each wrapper bound to a context
// that is never canceled (impl=cancelio: a Token; impl=cancelio-context:
// context.WithCancel). Each iteration writes 32 KiB into the pipe (not
// timed) and reads it back through one implementation, taking turns, so
// that all of them run under the same machine load: each reports the
// median of its turns as the metric <impl>-ns/read (a turn during which the
// benchmark was descheduled does not count more than any other).
//
// The goroutine-per-read peer allocates, and the garbage collections it
// causes would land on whichever implementation runs next: it takes turns
// with the bare Read only, in BenchmarkPipeReadPeer.
func BenchmarkPipeRead(b *testing.B) { benchPipeRead(b, zeroGC) }

// BenchmarkPipeReadPeer is BenchmarkPipeRead for the goroutine-per-read
// wrapper, beside the bare Read.
func BenchmarkPipeReadPeer(b *testing.B) { benchPipeRead(b, allocing) }

func benchPipeRead(b *testing.B, impls []impl) {
	const chunk = 32 << 10
	for _, size := range []int{512, 4096, chunk} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			defer func() { r.Close(); w.Close() }()
			src := cancellation.New()
			defer src.Cancel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			readers := make([]io.Reader, len(impls))
			for i, im := range impls {
				readers[i] = im.wrap(src.Token(), ctx, r)
			}
			fill := make([]byte, chunk)
			buf := make([]byte, size)
			turns := make([][]time.Duration, len(impls))
			b.SetBytes(chunk)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				k := i % len(impls)
				if _, err := w.Write(fill); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for range chunk / size {
					if _, err := io.ReadFull(readers[k], buf); err != nil {
						b.Fatal(err)
					}
				}
				turns[k] = append(turns[k], time.Since(start))
			}
			for k, im := range impls {
				if len(turns[k]) > 0 {
					b.ReportMetric(float64(stats.Median(turns[k]).Nanoseconds())/float64(chunk/size), im.name+"-ns/read")
				}
			}
		})
	}
}

// BenchmarkCancelToReturn reports the time from Cancel to the return of a
// Read blocked on an empty pipe (p50 and p99 over b.N cancellations).
func BenchmarkCancelToReturn(b *testing.B) {
	for _, im := range []impl{ours, perRead} {
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
				rd := im.wrap(src.Token(), nil, r)
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

package cancelio

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-cancellation/cancellation"
)

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked call.
var aLongTimeAgo = time.Unix(1, 0)

// Reader returns a reader that reads from r until ctx is done, and then
// returns ctx.Err(). A Read blocked in r when ctx is canceled returns
// promptly with ctx.Err() if r has a working SetReadDeadline (see the
// package doc); otherwise ctx is checked before each Read.
//
// The reader registers on ctx once, at its first Read; the registration is
// released when ctx is done or when the reader becomes unreachable, so an
// abandoned reader holds nothing for long. Reader does not block. The
// returned reader's Read blocks as r's does; it is as safe for concurrent
// use as r.
func Reader(ctx context.Context, r io.Reader) io.Reader {
	cr := &reader{ctx: ctx, r: r}
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		cr.b = &binding{}
		cr.b.rd.set = d.SetReadDeadline
	}
	return cr
}

type reader struct {
	ctx context.Context
	r   io.Reader
	b   *binding // nil: r has no deadlines
}

func (r *reader) Read(p []byte) (int, error) {
	if r.b == nil {
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		return r.r.Read(p) // not interruptible: checked between reads
	}
	if !r.b.registered.Load() {
		bind(r.b, r.ctx, r)
	}
	if err := r.b.rd.begin(r.ctx); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	return r.b.rd.finish(r.ctx, n, err)
}

// Conn returns c bound to ctx: its Read and Write return ctx.Err() once ctx
// is done, and a Read or Write blocked when ctx is canceled returns
// promptly with ctx.Err() (the deadline mechanism of net.Conn). Deadlines
// set through the returned Conn are kept and restored after such an
// interruption. Close and the other methods are c's.
//
// The Conn registers on ctx once, at its first Read or Write; Close (or ctx
// being done, or the Conn becoming unreachable) releases the registration.
// Conn does not block; the returned Conn is safe for concurrent use, as
// net.Conn requires.
func Conn(ctx context.Context, c net.Conn) net.Conn {
	cc := &conn{Conn: c, ctx: ctx, b: &binding{}}
	cc.b.rd.set, cc.b.wr.set = c.SetReadDeadline, c.SetWriteDeadline
	return cc
}

type conn struct {
	net.Conn
	ctx context.Context
	b   *binding
}

func (c *conn) Read(p []byte) (int, error) {
	if !c.b.registered.Load() {
		bind(c.b, c.ctx, c)
	}
	if err := c.b.rd.begin(c.ctx); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	return c.b.rd.finish(c.ctx, n, err)
}

func (c *conn) Write(p []byte) (int, error) {
	if !c.b.registered.Load() {
		bind(c.b, c.ctx, c)
	}
	if err := c.b.wr.begin(c.ctx); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	return c.b.wr.finish(c.ctx, n, err)
}

func (c *conn) Close() error {
	c.b.release()
	return c.Conn.Close()
}

func (c *conn) SetDeadline(t time.Time) error {
	return errors.Join(c.b.rd.setUser(t), c.b.wr.setUser(t))
}

func (c *conn) SetReadDeadline(t time.Time) error  { return c.b.rd.setUser(t) }
func (c *conn) SetWriteDeadline(t time.Time) error { return c.b.wr.setUser(t) }

// A binding is a wrapper's registration on its context: one callback that
// interrupts whichever side has a call in progress. It is kept apart from
// the wrapper, so that the registration does not keep the wrapper
// reachable and a cleanup can release it once the wrapper is garbage.
type binding struct {
	rd, wr     side
	registered atomic.Bool
	mu         sync.Mutex // guards w and released
	w          watcher
	released   bool
}

func (b *binding) interrupt() {
	b.rd.interrupt()
	b.wr.interrupt()
}

// bind registers b on ctx, once, for as long as owner is reachable.
func bind[T any](b *binding, ctx context.Context, owner *T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.registered.Load() {
		return
	}
	b.registered.Store(true)
	if b.released {
		return
	}
	b.w = watch(ctx, b.interrupt)
	runtime.AddCleanup(owner, watcher.stop, b.w)
}

// release stops the registration, for good.
func (b *binding) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.released = true
	b.w.stop()
}

// Copy copies from src to dst until EOF on src, an error, or ctx being
// done, like io.Copy, and returns the number of bytes written. If ctx is
// done first, it returns ctx.Err() exactly; a Read of src or a Write of dst
// blocked at that moment is interrupted if it supports deadlines (see the
// package doc), and otherwise Copy returns after that call. Data read from
// src but not yet written when ctx is done is not written. A successful
// Copy returns nil, not io.EOF.
//
// Copy registers on ctx once for the whole copy and uses a buffer of its
// own (it does not use src's WriterTo or dst's ReaderFrom, which could not
// be interrupted between chunks). It blocks until it returns.
func Copy(ctx context.Context, dst io.Writer, src io.Reader) (written int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var rd, wr side
	if d, ok := src.(interface{ SetReadDeadline(time.Time) error }); ok {
		rd.set = d.SetReadDeadline
	}
	if d, ok := dst.(interface{ SetWriteDeadline(time.Time) error }); ok {
		wr.set = d.SetWriteDeadline
	}
	if rd.set != nil || wr.set != nil {
		defer watch(ctx, func() { rd.interrupt(); wr.interrupt() }).stop()
	}
	buf := make([]byte, 32*1024)
	for {
		if err := rd.begin(ctx); err != nil {
			return written, err
		}
		nr, er := src.Read(buf)
		nr, er = rd.finish(ctx, nr, er)
		if nr > 0 {
			if err := wr.begin(ctx); err != nil {
				return written, err
			}
			nw, ew := dst.Write(buf[:nr])
			nw, ew = wr.finish(ctx, nw, ew)
			if nw < 0 || nr < nw {
				nw = 0
				if ew == nil {
					ew = errors.New("cancelio: invalid write result")
				}
			}
			written += int64(nw)
			if ew != nil {
				return written, ew
			}
			if nr != nw {
				return written, io.ErrShortWrite
			}
		}
		if er != nil {
			if er == io.EOF {
				return written, nil
			}
			return written, er
		}
	}
}

// A side is one direction (read or write) of a stream that a cancellation
// may interrupt by setting a past deadline.
type side struct {
	// state is calls<<1 | sideInterrupted. The flag is set (with calls > 0)
	// and cleared only under mu; calls change without it.
	state atomic.Int64
	mu    sync.Mutex // serializes interrupt, restore and setUser
	user  time.Time  // the caller's deadline, restored after an interruption; under mu
	set   func(time.Time) error
}

const sideInterrupted = 1

// begin starts an interruptible call, or returns ctx.Err() if ctx is done;
// after a nil error the caller makes the call and passes its result to
// finish. Counting the call before checking ctx pairs with interrupt
// checking the count after ctx is done: a cancellation either is seen here
// or finds the call in progress and interrupts it.
func (s *side) begin(ctx context.Context) error {
	s.state.Add(2)
	if err := ctx.Err(); err != nil {
		s.end()
		return err
	}
	return nil
}

// finish ends the call begun by begin and maps an interruption to
// ctx.Err().
func (s *side) finish(ctx context.Context, n int, err error) (int, error) {
	interrupted := s.end()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && (interrupted || errors.Is(err, os.ErrDeadlineExceeded)) {
			return n, cerr
		}
	}
	return n, err
}

// end ends a call and reports whether the stream was interrupted during
// it; the last call to end after an interruption restores the caller's
// deadline. An interrupt either flagged the stream before this call's
// decrement (then end waits for it on mu and sees the flag) or comes after
// it and finds one call fewer.
func (s *side) end() bool {
	if s.state.Add(-2)&sideInterrupted == 0 {
		return false
	}
	s.restore()
	return true
}

// restore restores the caller's deadline if no call is left in progress.
func (s *side) restore() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load() == sideInterrupted { // no call left
		_ = s.set(s.user) // best effort: the stream may be closed by now
		s.state.Add(-sideInterrupted)
	}
}

// interrupt sets a past deadline if a call is in progress. It runs from a
// callback registered on ctx, once ctx is done.
func (s *side) interrupt() {
	if s.set == nil || s.state.Load() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		v := s.state.Load()
		if v < 2 || v&sideInterrupted != 0 {
			return // no call in progress, or already interrupted
		}
		if s.state.CompareAndSwap(v, v|sideInterrupted) {
			break
		}
	}
	if s.set(aLongTimeAgo) != nil {
		// No deadline support (say, os.Stdin in blocking mode): the call
		// cannot be interrupted. Nothing to restore either.
		s.state.Add(-sideInterrupted)
	}
}

// setUser records and applies the caller's deadline; during an
// interruption it only records it, for end to restore.
func (s *side) setUser(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user = t
	if s.state.Load()&sideInterrupted != 0 {
		return nil
	}
	return s.set(t)
}

// A watcher is a callback registered on a context: through Register for a
// Token (synchronous, no allocation), context.AfterFunc otherwise, nothing
// for a context that is never canceled.
type watcher struct {
	reg     cancellation.Registration
	stopFun func() bool
}

func watch(ctx context.Context, f func()) watcher {
	if f == nil {
		return watcher{}
	}
	if tok, ok := ctx.(cancellation.Token); ok {
		return watcher{reg: tok.Register(f)}
	}
	if ctx.Done() == nil {
		return watcher{}
	}
	return watcher{stopFun: context.AfterFunc(ctx, f)}
}

// stop stops the callback; it is idempotent.
func (w watcher) stop() {
	if w.stopFun != nil {
		w.stopFun()
		return
	}
	w.reg.Stop()
}

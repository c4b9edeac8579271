package cancellation

import (
	"context"
	"sync/atomic"
	"time"
	"unsafe"
)

// A Token observes the cancellation of a [Source]; it is a context.Context.
//
// A Token is a single pointer: comparable, free to copy, and converting it to
// a context.Context allocates nothing. The zero Token never cancels. All
// methods are safe for concurrent use. None blocks, except Register, which
// runs the callback on the calling goroutine when the token is already
// canceled (AfterFunc starts a goroutine for it instead), and except that
// IsCanceled, Err and Cause may park for the moment a concurrent Cancel
// takes to publish the cancellation.
type Token struct {
	s *Source
}

// IsCanceled reports whether the token is canceled. Once it returns true,
// Done is closed. It does not block: it is a single atomic load, small enough
// to be inlined, except in the short window in which a concurrent Cancel
// publishes the cancellation (before any callback runs), when it parks on
// the Source's lock until that Cancel has closed Done. It never spins.
func (t Token) IsCanceled() bool {
	s := t.s
	if s == nil {
		return false
	}
	st := s.state.Load()
	if st&phaseMask == stCanceling {
		// Cancel closes Done in this phase (Done exists, or there would be
		// no such phase): park until it has.
		<-s.loadDone()
	}
	return st&phaseMask != stLive
}

// settled returns s's state once a canceling phase, if any, has ended: that
// phase lasts while the canceling goroutine holds s.mu.
func (s *Source) settled() uint32 {
	if st := s.state.Load(); st&phaseMask != stCanceling {
		return st
	}
	return s.settledSlow()
}

func (s *Source) settledSlow() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Load()
}

// CanBeCanceled reports whether the token can ever be canceled: false only
// for the zero Token.
func (t Token) CanBeCanceled() bool { return t.s != nil }

// Err returns nil while the token is live; after cancellation it returns
// exactly context.Canceled, or context.DeadlineExceeded if a timer (or a
// parent's deadline) canceled it. It never wraps: the reason is in Cause.
// Once Done is closed, Err is non-nil. Err takes no lock once the
// cancellation is published.
func (t Token) Err() error {
	if t.s == nil {
		return nil
	}
	switch st := t.s.settled(); {
	case st&phaseMask == stLive:
		return nil
	case st&stDeadline != 0:
		return context.DeadlineExceeded
	default:
		return context.Canceled
	}
}

// Cause returns nil while the token is live, and the cause of its
// cancellation afterwards: the error given to CancelCause, context.Canceled
// for Cancel, context.DeadlineExceeded for a timer, or the parent's cause for
// a cancellation that came from a parent. context.Cause(t) returns the same.
func (t Token) Cause() error {
	if t.s == nil {
		return nil
	}
	st := t.s.settled()
	if st&phaseMask == stLive {
		return nil
	}
	return causeOf(st&stDeadline, t.s.cause)
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Done returns a channel that is closed when the token is canceled; nil for
// the zero Token. The channel is made on the first call; successive calls
// return the same channel. Done does not block.
func (t Token) Done() <-chan struct{} {
	s := t.s
	if s == nil {
		return nil
	}
	if c := s.loadDone(); c != nil {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.loadDone(); c != nil {
		return c
	}
	c := closedChan
	if s.live() {
		c = make(chan struct{})
	}
	atomic.StorePointer(&s.done, *(*unsafe.Pointer)(unsafe.Pointer(&c)))
	return c
}

// loadDone returns s's done channel, or nil if Done was never called.
func (s *Source) loadDone() chan struct{} {
	p := atomic.LoadPointer(&s.done)
	return *(*chan struct{})(unsafe.Pointer(&p))
}

// Deadline reports the earliest of the Source's own armed deadline and its
// parents' current deadlines. It does not block.
//
// Unlike the deadline of a context made by context.WithDeadline, it moves:
// later or earlier when the Source's timer is re-armed, and the Source's own
// deadline is no longer reported once the Source is canceled (by Cancel or by
// its timer) or reset; its parents' deadlines still are.
//
// Because it can move later, do not bound work under a re-armable Token with
// context.WithTimeout(tok, d): when tok's deadline is sooner than d, the
// context package gives the child no timer of its own (the parent would
// expire first), so if tok's timer is then re-armed later, the child outlives
// d. Derive a Source instead, whose timer is its own:
//
//	child := cancellation.New(tok)
//	defer child.Cancel()
//	child.CancelAfter(5 * time.Second)
func (t Token) Deadline() (deadline time.Time, ok bool) {
	s := t.s
	if s == nil {
		return time.Time{}, false
	}
	earliest := func(d time.Time, has bool) {
		if has && (!ok || d.Before(deadline)) {
			deadline, ok = d, true
		}
	}
	if p := s.link.owner; p != nil {
		earliest(Token{p}.Deadline())
	}
	s.mu.Lock()
	var d time.Time
	if ts := s.tm; ts != nil && ts.hasDL {
		d = ts.reported()
	}
	var p2 *Source
	var others []parentLink
	if x := s.x.Load(); x != nil {
		p2 = x.link2.owner
		if m := x.more.Load(); m != nil {
			others = m.others
		}
	}
	s.mu.Unlock()
	earliest(d, !d.IsZero())
	if p2 != nil {
		earliest(Token{p2}.Deadline())
	}
	for _, o := range others {
		earliest(o.ctx.Deadline())
	}
	return deadline, ok
}

// cancelCtxKey is the context package's private key with which
// context.Cause asks a context for its nearest cancelCtx. keyProbe learns it
// once: context.Cause calls Value with it on a context whose Err is non-nil.
var cancelCtxKey = func() any {
	p := &keyProbe{}
	_ = context.Cause(p)
	return p.key
}()

type keyProbe struct{ key any }

func (*keyProbe) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*keyProbe) Done() <-chan struct{}       { return closedChan }
func (*keyProbe) Err() error                  { return context.Canceled }
func (p *keyProbe) Value(key any) any {
	if p.key == nil {
		p.key = key
	}
	return nil
}

// Value returns the value associated with key by the first parent of the
// Source (through Token parents too), or nil. It does not block.
func (t Token) Value(key any) any {
	s := t.s
	if s == nil {
		return nil
	}
	switch key.(type) {
	case sourceKey:
		return s
	case nil:
	default:
		if key == cancelCtxKey {
			return s.bridgeValue(key)
		}
	}
	for s.state.Load()&stLinkValues != 0 {
		// Iterate rather than recurse along chains of Token parents.
		s = s.link.owner
	}
	if x := s.x.Load(); x != nil && x.values != nil {
		return x.values.Value(key)
	}
	return nil
}

// bridgeValue answers context.Cause (and the context package's search for a
// parent cancelCtx) for a canceled s with an internal cancel-cause context
// canceled with s's cause: a shared one for the causes Err implies, one
// made on first need for a cause of s's own. For a live s it answers nil:
// context.Cause then returns Err (nil), and context.WithCancel(tok) and
// friends attach through Token.AfterFunc, as they do anyway (a bridge's done
// channel is never s's, so the context package would not adopt it).
func (s *Source) bridgeValue(key any) any {
	st := s.settled()
	if st&phaseMask == stLive {
		return nil
	}
	if s.cause == nil {
		if st&stDeadline != 0 {
			return deadlineBridge.Value(key)
		}
		return canceledBridge.Value(key)
	}
	s.mu.Lock()
	m := s.more()
	if m.bridge == nil {
		b, cancel := context.WithCancelCause(context.Background())
		cancel(*s.cause)
		m.bridge = b
	}
	b := m.bridge
	s.mu.Unlock()
	return b.Value(key)
}

var canceledBridge, deadlineBridge = canceledWith(context.Canceled), canceledWith(context.DeadlineExceeded)

func canceledWith(cause error) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	return ctx
}

// String describes the token, for debugging.
func (t Token) String() string {
	switch {
	case t.s == nil:
		return "cancellation.Token(none)"
	case t.IsCanceled():
		return "cancellation.Token(canceled: " + t.Cause().Error() + ")"
	default:
		return "cancellation.Token(live)"
	}
}

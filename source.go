package cancellation

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Source states. The low two bits are the phase; stDeadline records that the
// cancellation's Err is context.DeadlineExceeded.
//
// A source goes live → canceling → canceled exactly once. The canceling phase
// lasts only while the winning goroutine holds s.mu (it closes the done
// channel in that window), so a reader that sees stCanceling takes the lock
// to wait for it: that is what makes "IsCanceled is true ⇒ Done is closed"
// and "Done is closed ⇒ Err is non-nil" both hold.
const (
	stLive      uint32 = 0
	stCanceling uint32 = 1
	stCanceled  uint32 = 2
	phaseMask   uint32 = 3
	stDeadline  uint32 = 4
)

// flags, written by New before the Source is published.
const (
	flagLinkValues uint16 = 1 << iota // Value delegates to s.link.owner
)

// maxFree bounds the registration nodes a Source keeps for reuse.
const maxFree = 8

// A Source signals cancellation to the Tokens it hands out.
//
// A Source is created by [New] and must not be copied. Every method is safe
// for concurrent use by any number of goroutines. Cancel, CancelCause,
// CancelAfter and SetDeadline may run callbacks (see [Token.Register]) and
// then block until those callbacks return; no other method blocks.
type Source struct {
	mu    sync.Mutex
	state atomic.Uint32
	nfree uint16 // len(free), under mu
	flags uint16 // set by New before publication
	done  unsafe.Pointer
	head  *node // registrations and child links, newest first; under mu
	free  *node // recycled nodes, under mu
	cause error // written once, in the canceling phase
	link  node  // link to the first cancelable Token parent
	x     atomic.Pointer[extra]
}

// extra holds the rarely used parts of a Source, allocated on first need.
type extra struct {
	values context.Context // first parent, when it is not s.link.owner
	link2  node            // link to the second cancelable Token parent
	others []parentLink    // further cancelable parents; under Source.mu

	deadline time.Time // armed deadline, zero if none; under mu
	timerAt  time.Time // when timer fires, zero if stopped; under mu
	timer    *time.Timer

	bridge       context.Context // answers context.Cause; see bridgeValue
	bridgeCancel context.CancelCauseFunc

	cond    *sync.Cond // Registration.Wait; L is &Source.mu
	waiters atomic.Int32
}

type parentLink struct {
	ctx  context.Context
	stop func() bool // context.AfterFunc stop for a non-Token parent
	n    *node       // link node for a Token parent
}

// New returns a live Source linked to every parent: it is canceled as soon as
// any parent is done, with that parent's Err and cause (context.Cause). If a
// parent is already done, the Source starts canceled. Values come from the
// first parent.
//
// A Token parent cancels the Source synchronously inside its own Cancel; any
// other context does so through context.AfterFunc (on a goroutine of the
// context package, when it fires). Parents that can never be canceled
// (Done() == nil) cost nothing. Canceling the Source releases every link, so
// that nothing of it stays reachable from a long-lived parent: cancel every
// Source you create with parents, as you would call a context.CancelFunc.
//
// New panics if a parent is nil. It does not block.
func New(parents ...context.Context) *Source {
	s := &Source{}
	if len(parents) == 0 {
		return s
	}
	for _, p := range parents {
		if p == nil {
			panic("cancellation: nil parent")
		}
	}
	switch first := parents[0].(type) {
	case Token:
		if first.s != nil {
			s.link.owner = first.s
			s.flags |= flagLinkValues
		}
	default:
		if first != context.Background() && first != context.TODO() {
			s.extra().values = first
		}
	}
	for _, p := range parents {
		if s.state.Load() != stLive {
			break
		}
		if t, ok := p.(Token); ok {
			if t.s != nil {
				s.linkToken(t.s, p)
			}
			continue
		}
		done := p.Done()
		if done == nil {
			continue
		}
		select {
		case <-done:
			s.cancelFinish(s.cancelFromParent(errState(p.Err()), context.Cause(p)))
			continue
		default:
		}
		stop := context.AfterFunc(p, func() {
			// Runs on a goroutine of the context package.
			if panics := s.cancelFinish(s.cancelFromParent(errState(p.Err()), context.Cause(p))); len(panics) > 0 {
				panic(&PanicError{Recovered: panics})
			}
		})
		s.mu.Lock()
		x := s.extra()
		x.others = append(x.others, parentLink{ctx: p, stop: stop})
		s.mu.Unlock()
	}
	if s.state.Load() != stLive {
		// Canceled while linking (a parent was done, or fired meanwhile):
		// release the links made after the cancellation released the others.
		s.releaseLinks()
	}
	return s
}

// extra returns s.x, allocating it if needed. It is called with s.mu held, or
// by New before s is published.
func (s *Source) extra() *extra {
	x := s.x.Load()
	if x == nil {
		x = &extra{}
		s.x.Store(x)
	}
	return x
}

// linkToken links s to the Token parent p (whose context form is ctx).
func (s *Source) linkToken(p *Source, ctx context.Context) {
	var ln *node
	switch {
	case s.link.child == nil && (s.link.owner == nil || s.link.owner == p):
		// The first link needs no lock on s: nothing can cancel s yet
		// except p, and p reads these fields only after taking p.mu.
		ln = &s.link
		ln.owner, ln.child = p, s
	default:
		s.mu.Lock()
		x := s.extra()
		if x.link2.child == nil {
			ln = &x.link2
		} else {
			ln = &node{}
			x.others = append(x.others, parentLink{ctx: ctx, n: ln})
		}
		ln.owner, ln.child = p, s
		s.mu.Unlock()
	}
	p.mu.Lock()
	if st := p.state.Load(); st != stLive {
		errSt, cause := st&stDeadline, p.cause
		p.mu.Unlock()
		s.cancelFinish(s.cancelFromParent(errSt, cause))
		return
	}
	ln.word.Store(nPending)
	p.push(ln)
	p.mu.Unlock()
}

func errState(err error) uint32 {
	if err == context.DeadlineExceeded {
		return stDeadline
	}
	return 0
}

// Token returns the Token that observes s. It never blocks or allocates.
func (s *Source) Token() Token { return Token{s} }

// Cancel cancels s with cause context.Canceled. See [Source.CancelCause].
func (s *Source) Cancel() bool { return s.CancelCause(nil) }

// CancelCause cancels s: its Token's Err becomes context.Canceled and its
// Cause becomes cause (context.Canceled if cause is nil).
//
// The first call returns true, after it has run every registered callback
// and canceled every linked child, on the calling goroutine, in reverse order
// of registration. Every other call, concurrent or re-entrant (from inside a
// callback), returns false at once without waiting for those callbacks.
//
// If callbacks panic, CancelCause recovers each panic, runs the remaining
// callbacks, completes the cancellation and then panics with a [*PanicError]
// listing every recovered panic in execution order, including panics of
// callbacks of linked children.
func (s *Source) CancelCause(cause error) bool {
	if cause == nil {
		cause = context.Canceled
	}
	return s.cancelTo(0, cause)
}

// cancelTo cancels s and panics with the callbacks' panics, if any.
func (s *Source) cancelTo(errSt uint32, cause error) bool {
	if s.state.Load() != stLive {
		return false
	}
	s.mu.Lock()
	head, ok := s.cancelLocked(errSt, cause)
	s.mu.Unlock()
	if !ok {
		return false
	}
	s.releaseLinks()
	if panics := runAll(s, head, nil); len(panics) > 0 {
		panic(&PanicError{Recovered: panics})
	}
	return true
}

// pendingCancel is a cancellation that won the state but has not yet run its
// callbacks.
type pendingCancel struct {
	s    *Source
	head *node
	ok   bool
}

// cancelFromParent starts a cancellation caused by a parent; the caller
// must pass the result to cancelFinish.
func (s *Source) cancelFromParent(errSt uint32, cause error) pendingCancel {
	s.mu.Lock()
	head, ok := s.cancelLocked(errSt, cause)
	s.mu.Unlock()
	return pendingCancel{s, head, ok}
}

// cancelFinish releases the links and runs the callbacks of a cancellation
// started by cancelFromParent and returns their panics.
func (s *Source) cancelFinish(c pendingCancel) []Recovered {
	if !c.ok {
		return nil
	}
	c.s.releaseLinks()
	return runAll(c.s, c.head, nil)
}

// cancelLocked moves s from live to canceled and detaches its registrations,
// which the caller must run (runAll) after unlocking. It reports false if s
// was not live. s.mu must be held.
func (s *Source) cancelLocked(errSt uint32, cause error) (*node, bool) {
	if s.state.Load() != stLive {
		return nil, false
	}
	s.state.Store(stCanceling | errSt)
	s.cause = cause
	if p := atomic.LoadPointer(&s.done); p != nil {
		close(*(*chan struct{})(unsafe.Pointer(&p)))
	}
	if x := s.x.Load(); x != nil {
		if x.bridgeCancel != nil {
			x.bridgeCancel(cause)
		}
		if x.timer != nil {
			x.timer.Stop()
			x.timerAt = time.Time{}
		}
	}
	head := s.head
	s.head = nil
	s.free, s.nfree = nil, 0
	s.state.Store(stCanceled | errSt)
	return head, true
}

// runAll runs the detached registrations of the canceled s, newest first, and
// cancels the linked children; it returns the panics recovered, appended to
// panics.
func runAll(s *Source, head *node, panics []Recovered) []Recovered {
	errSt, cause := s.state.Load()&stDeadline, s.cause
	for n := head; n != nil; {
		next := n.next
		n.next, n.prev = nil, nil
		w := n.word.Load()
		if w&stateMask == nPending && n.word.CompareAndSwap(w, w&^stateMask|nRunning) {
			if c := n.child; c != nil {
				pc := c.cancelFromParent(errSt, cause)
				if pc.ok {
					c.releaseLinks()
					panics = runAll(c, pc.head, panics)
				}
			} else {
				f := n.f
				n.f = nil
				panics = call(f, panics)
			}
			n.word.Store(w&^stateMask | nDone)
			if x := s.x.Load(); x != nil && x.waiters.Load() > 0 {
				s.mu.Lock()
				x.cond.Broadcast()
				s.mu.Unlock()
			}
		}
		n = next
	}
	return panics
}

// releaseLinks unlinks the canceled s from its parents. It is idempotent.
func (s *Source) releaseLinks() {
	if s.link.owner != nil {
		s.link.unlink()
	}
	x := s.x.Load()
	if x == nil {
		return
	}
	s.mu.Lock()
	others := x.others
	hasLink2 := x.link2.owner != nil
	s.mu.Unlock()
	if hasLink2 {
		x.link2.unlink()
	}
	for _, o := range others {
		if o.stop != nil {
			o.stop()
		} else {
			o.n.unlink()
		}
	}
}

// CancelAfter arms s's timer to cancel it d from now, with Err and Cause
// context.DeadlineExceeded; it replaces any armed deadline, later or earlier.
// If d <= 0, CancelAfter cancels s synchronously, like [Source.CancelCause].
// On a canceled Source it does nothing.
//
// Re-arming is cheap: it allocates nothing and touches the runtime timer only
// when the deadline moves earlier. CancelAfter blocks only when d <= 0 (see
// CancelCause).
func (s *Source) CancelAfter(d time.Duration) {
	if d <= 0 {
		s.cancelTo(stDeadline, context.DeadlineExceeded)
		return
	}
	now := time.Now()
	s.arm(now, now.Add(d))
}

// SetDeadline arms s's timer to cancel it at t, like [Source.CancelAfter]. A
// t that is not in the future cancels s synchronously; the zero Time disarms
// the timer.
func (s *Source) SetDeadline(t time.Time) {
	if t.IsZero() {
		s.mu.Lock()
		if x := s.x.Load(); x != nil && s.state.Load() == stLive {
			s.disarmLocked(x)
		}
		s.mu.Unlock()
		return
	}
	now := time.Now()
	if !now.Before(t) {
		s.cancelTo(stDeadline, context.DeadlineExceeded)
		return
	}
	s.arm(now, t)
}

func (s *Source) arm(now, deadline time.Time) {
	if s.state.Load() != stLive {
		return
	}
	s.mu.Lock()
	if s.state.Load() != stLive {
		s.mu.Unlock()
		return
	}
	x := s.extra()
	x.deadline = deadline
	switch {
	case x.timer == nil:
		x.timer = time.AfterFunc(deadline.Sub(now), s.onTimer)
		x.timerAt = deadline
	case x.timerAt.IsZero() || deadline.Before(x.timerAt):
		x.timer.Reset(deadline.Sub(now))
		x.timerAt = deadline
	}
	// Otherwise the timer fires earlier than the new deadline and onTimer
	// re-arms it.
	s.mu.Unlock()
}

// disarmLocked clears the deadline. s.mu must be held.
func (s *Source) disarmLocked(x *extra) {
	x.deadline = time.Time{}
	if x.timer != nil && x.timer.Stop() {
		x.timerAt = time.Time{}
	}
	// If Stop failed, onTimer is running or about to; it sees no deadline
	// and clears timerAt.
}

func (s *Source) onTimer() {
	s.mu.Lock()
	x := s.x.Load()
	if s.state.Load() != stLive || x.deadline.IsZero() {
		x.timerAt = time.Time{}
		s.mu.Unlock()
		return
	}
	if now := time.Now(); now.Before(x.deadline) {
		x.timer.Reset(x.deadline.Sub(now))
		x.timerAt = x.deadline
		s.mu.Unlock()
		return
	}
	head, _ := s.cancelLocked(stDeadline, context.DeadlineExceeded)
	s.mu.Unlock()
	s.releaseLinks()
	if panics := runAll(s, head, nil); len(panics) > 0 {
		// There is no caller to report to: this is the timer's goroutine.
		panic(&PanicError{Recovered: panics})
	}
}

// TryReset makes a live Source reusable, for pooling: it disarms the timer
// and drops every registration (their callbacks never run and their Stop
// returns false) and reports true. Links to parents and to linked children
// are kept. On a canceled Source, or one whose deadline has already passed,
// it returns false and changes nothing.
//
// TryReset does not block and is safe against concurrent calls of any method;
// a Cancel that races with it either wins (TryReset returns false) or runs
// after it (on the reset Source).
func (s *Source) TryReset() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load() != stLive {
		return false
	}
	x := s.x.Load()
	if x != nil && !x.deadline.IsZero() {
		if !time.Now().Before(x.deadline) {
			return false // the timer has fired, or is about to
		}
		s.disarmLocked(x)
	}
	for n := s.head; n != nil; {
		next := n.next
		if n.child == nil {
			w := n.word.Load()
			if w&stateMask == nPending && n.word.CompareAndSwap(w, w&^stateMask|nStopped) {
				s.remove(n)
				s.recycle(n, w>>idShift)
			}
			// A node already stopped is being removed by its Stop.
		}
		n = next
	}
	if x != nil && x.waiters.Load() > 0 {
		x.cond.Broadcast()
	}
	return true
}

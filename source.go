package cancellation

import (
	"context"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Source state word. The low two bits are the phase; stDeadline records that
// the cancellation's Err is context.DeadlineExceeded; stLinkValues (set by New
// before the Source is published, never changed) says that Value delegates to
// the embedded link's parent.
//
// A source goes live → canceling → canceled exactly once. The canceling phase
// lasts only while the winning goroutine holds s.mu (it closes the done
// channel in that window, and runs no user code), so a reader that sees
// stCanceling parks until it ends: Err and Cause on s.mu, IsCanceled on the
// done channel (which exists, or there is no canceling phase). That is what
// makes "IsCanceled is true ⇒ Done is closed" and "Done is closed ⇒ Err is
// non-nil" both hold without anyone spinning on another goroutine's
// progress.
const (
	stLive       uint32 = 0
	stCanceling  uint32 = 1
	stCanceled   uint32 = 2
	phaseMask    uint32 = 3
	stDeadline   uint32 = 4
	stLinkValues uint32 = 8
)

// A Source signals cancellation to the Tokens it hands out.
//
// A Source is created by [New] and must not be copied. Every method is safe
// for concurrent use by any number of goroutines. Cancel, CancelCause,
// CancelAfter and SetDeadline may run callbacks (see [Token.Register]) and
// then block until those callbacks return; no other method blocks.
type Source struct {
	mu    sync.Mutex
	state atomicU32
	done  unsafe.Pointer // chan struct{}, made on demand
	head  *node          // registrations and child links, newest first; under mu
	cause *error         // nil: the default cause for the Err; written once
	link  node           // link to the first cancelable Token parent
	x     atomicPtr[extra]
	tm    *timerState // under mu
}

// extra holds the less used parts of a Source, allocated on first need.
type extra struct {
	link2  node            // link to the second cancelable Token parent
	values context.Context // first parent, when it is not s.link.owner
	spare  *node           // a recycled registration node, under mu
	more   atomicPtr[more]
}

// more holds the rarely used parts.
type more struct {
	others []parentLink // further cancelable parents; under mu

	bridge context.Context // answers context.Cause once canceled with a cause of its own; see bridgeValue

	cond    *sync.Cond // Registration.Wait; L is &Source.mu
	waiters atomic.Int32
}

type parentLink struct {
	ctx  context.Context
	stop func() bool // context.AfterFunc stop for a non-Token parent
	n    *node       // link node for a Token parent
}

func (s *Source) live() bool { return s.state.Load()&phaseMask == stLive }

// withExtra is a Source allocated together with its extra, for New calls
// that need both: one allocation instead of two.
type withExtra struct {
	s Source
	x extra
}

func newSource(withX bool) *Source {
	if !withX {
		return &Source{}
	}
	w := &withExtra{}
	w.s.x.init(&w.x)
	return &w.s
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

// more returns s.x.more, allocating both if needed; s.mu must be held.
func (s *Source) more() *more {
	x := s.extra()
	m := x.more.Load()
	if m == nil {
		m = &more{}
		x.more.Store(m)
	}
	return m
}

// loadMore returns s.x.more or nil, without locking.
func (s *Source) loadMore() *more {
	if x := s.x.Load(); x != nil {
		return x.more.Load()
	}
	return nil
}

// New returns a live Source. With no parents it is a root: only its own
// Cancel, CancelCause or timer cancel it. Otherwise it is linked to every
// parent: it is canceled as soon as
// any parent is done, with that parent's Err and cause (context.Cause). If a
// parent is already done, the Source starts canceled. Values come from the
// first parent.
//
// A Token parent cancels the Source synchronously inside its own Cancel. So
// does a context that wraps a Token (context.WithValue(tok, k, v), or a
// struct embedding a Token, as middleware makes): New finds the Token
// beneath it (same Done channel) and links to it directly, taking values
// from the wrapper. Any other context cancels the Source through
// context.AfterFunc, on a goroutine of the context package when it fires; a
// callback panic then has no caller to go to and crashes the program (see
// [PanicError]). Parents that can never be canceled (Done() == nil) cost
// nothing. Canceling the Source releases every link, so
// that nothing of it stays reachable from a long-lived parent: cancel every
// Source you create with parents, as you would call a context.CancelFunc.
//
// New panics if a parent is nil. It does not block.
func New(parents ...context.Context) *Source {
	switch len(parents) {
	case 0:
		return &Source{}
	case 1:
		// Fast path for the most common link: one Token parent.
		if t, ok := parents[0].(Token); ok && t.s != nil {
			s := &Source{}
			s.state.init(stLinkValues)
			s.link.owner, s.link.ref = t.s, unsafe.Pointer(s)
			s.link.word.init(kindLink | nPending)
			s.linkTo(t.s, &s.link)
			return s
		}
	}
	// The Source of each parent that is a Token or wraps one.
	var buf [4]*Source
	srcs := buf[:0]
	if len(parents) > len(buf) {
		srcs = make([]*Source, 0, len(parents))
	}
	tokens := 0
	for _, p := range parents {
		ps := tokenSource(p)
		if ps != nil {
			tokens++
		}
		srcs = append(srcs, ps)
	}
	// Values come from the first parent: through the embedded link when it
	// is a Token, else from extra.values (nothing for Background and TODO).
	var values context.Context
	first := parents[0]
	_, firstIsToken := first.(Token)
	if !firstIsToken && first != context.Background() && first != context.TODO() {
		values = first
	}
	s := newSource(tokens >= 2 || values != nil)
	if firstIsToken && srcs[0] != nil {
		s.state.init(stLinkValues)
	}
	if values != nil {
		s.x.Load().values = values
	}
	// Give every Token parent its link node before linking any, while no
	// other goroutine can see s.
	k := 0
	for i, ps := range srcs {
		if ps != nil {
			if k >= 2 {
				m := s.more()
				m.others = append(m.others, parentLink{ctx: parents[i], n: &node{}})
			}
			ln := s.linkNode(k)
			ln.owner, ln.ref = ps, unsafe.Pointer(s)
			ln.word.init(kindLink | nPending)
			k++
		}
	}
	k = 0
	for i, p := range parents {
		if !s.live() {
			break
		}
		if ps := srcs[i]; ps != nil {
			s.linkTo(ps, s.linkNode(k))
			k++
			continue
		}
		done := p.Done()
		if done == nil {
			continue
		}
		select {
		case <-done:
			s.cancelBy(p, nil)
			// Kept (not linked) so that Deadline still reports its deadline.
			s.addOther(parentLink{ctx: p})
			continue
		default:
		}
		stop := context.AfterFunc(p, func() {
			// Runs on a goroutine of the context package: a panic has no
			// caller to go to.
			var r cancelRun
			s.cancelBy(p, &r)
			r.raise()
		})
		s.addOther(parentLink{ctx: p, stop: stop})
	}
	if !s.live() {
		// Canceled while linking (a parent was done, or fired meanwhile):
		// release the links made after the cancellation released the others.
		s.releaseLinks()
	}
	return s
}

// sourceKey is the Value key with which New finds the Token beneath a
// wrapper (context.WithValue, or a struct that embeds a Token).
type sourceKey struct{}

// tokenSource returns the Source of p if p is a non-zero Token, or wraps one:
// p.Value finds a Token whose Done channel is p's, so that p is done exactly
// when that Token is, with its Err and cause. Otherwise it returns nil. It
// panics if p is nil.
func tokenSource(p context.Context) *Source {
	switch p := p.(type) {
	case nil:
		panic("cancellation: nil parent")
	case Token:
		return p.s
	}
	done := p.Done()
	if done == nil {
		return nil
	}
	ps, _ := p.Value(sourceKey{}).(*Source)
	if ps == nil || ps.loadDone() != done {
		return nil
	}
	return ps
}

// linkNode returns the link node of s's k-th Token parent: embedded in s,
// in its extra, or in more.others (where New puts them first, in order).
func (s *Source) linkNode(k int) *node {
	switch k {
	case 0:
		return &s.link
	case 1:
		return &s.x.Load().link2
	default:
		return s.x.Load().more.Load().others[k-2].n
	}
}

// addOther records a parent that is not linked through a link node.
func (s *Source) addOther(pl parentLink) {
	s.mu.Lock()
	m := s.more()
	m.others = append(m.others, pl)
	s.mu.Unlock()
}

// cancelBy cancels s because its context parent p is done, with p's Err
// and cause, collecting the panics of s's callbacks in r.
func (s *Source) cancelBy(p context.Context, r *cancelRun) {
	errSt := errState(p.Err())
	s.cancel(errSt, boxCause(errSt, context.Cause(p)), r)
}

// linkTo adds s's link node ln to the Token parent p's list, or cancels s if
// p is already canceled.
func (s *Source) linkTo(p *Source, ln *node) {
	p.mu.Lock()
	if st := p.state.Load(); st&phaseMask != stLive {
		errSt, cause := st&stDeadline, p.cause
		p.mu.Unlock()
		s.cancel(errSt, cause, nil) // no callbacks yet: New is still running
		return
	}
	p.push(ln)
	p.mu.Unlock()
}

func errState(err error) uint32 {
	if err == context.DeadlineExceeded {
		return stDeadline
	}
	return 0
}

// boxCause returns nil for the cause that Err implies, else a new box.
func boxCause(errSt uint32, cause error) *error {
	if cause == nil || (errSt == 0 && cause == context.Canceled) || (errSt != 0 && cause == context.DeadlineExceeded) {
		return nil
	}
	b := new(error)
	*b = cause
	return b
}

// causeOf is the cause of a cancellation with Err state errSt.
func causeOf(errSt uint32, cause *error) error {
	switch {
	case cause != nil:
		return *cause
	case errSt != 0:
		return context.DeadlineExceeded
	default:
		return context.Canceled
	}
}

// Token returns the Token that observes s. It never blocks or allocates.
func (s *Source) Token() Token { return Token{s} }

// Cancel cancels s with cause context.Canceled. See [Source.CancelCause].
func (s *Source) Cancel() bool { return s.cancelTo(0, nil) }

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
	if !s.live() {
		return false
	}
	return s.cancelTo(0, boxCause(0, cause))
}

// cancelTo cancels s and panics with the callbacks' panics, if any.
func (s *Source) cancelTo(errSt uint32, cause *error) bool {
	if !s.live() {
		return false
	}
	var r cancelRun
	won := s.cancel(errSt, cause, &r)
	r.raise()
	return won
}

// cancel cancels s, if it is live, on the calling goroutine: it publishes
// the cancellation, releases the links to the parents, runs the callbacks
// and cancels the linked children, collecting their panics in r (which may
// be nil only when s can have no callbacks yet). It reports whether it won.
func (s *Source) cancel(errSt uint32, cause *error, r *cancelRun) bool {
	s.mu.Lock()
	head, ok := s.cancelLocked(errSt, cause)
	s.mu.Unlock()
	if !ok {
		return false
	}
	s.finishCancel(head, r)
	return true
}

// finishCancel is the part of a cancellation after cancelLocked, run
// without s.mu: it releases the links and runs the detached list.
func (s *Source) finishCancel(head *node, r *cancelRun) {
	s.releaseLinks()
	if head != nil {
		r.runAll(s, head)
	}
}

// cancelLocked moves s from live to canceled and detaches its registrations,
// which the caller must run (runAll) after unlocking. It reports false if s
// was not live. s.mu must be held.
func (s *Source) cancelLocked(errSt uint32, cause *error) (*node, bool) {
	st := s.state.Load()
	if st&phaseMask != stLive {
		return nil, false
	}
	flags := st & stLinkValues
	s.cause = cause
	if done := s.loadDone(); done != nil {
		// Readers that see stCanceling wait on s.mu, so that a closed Done
		// implies a non-nil Err and IsCanceled implies a closed Done.
		s.state.Store(flags | stCanceling | errSt)
		close(done)
	}
	if x := s.x.Load(); x != nil {
		x.spare = nil
	}
	if ts := s.tm; ts != nil {
		s.releaseTimer(ts)
	}
	head := s.head
	s.head = nil
	s.state.Store(flags | stCanceled | errSt)
	return head, true
}

// A cancelRun is one cancellation on one goroutine: the panics recovered
// from its callbacks and from those of the linked children it cancels, and
// how deeply runAll is nested (children run inside their parent's runAll).
type cancelRun struct {
	panics []Recovered
	depth  int
}

// raise panics with the recovered panics, if any.
func (r *cancelRun) raise() {
	if len(r.panics) > 0 {
		panic(&PanicError{Recovered: r.panics})
	}
}

// runAll runs the detached registrations of the canceled s, newest first,
// and cancels the linked children.
//
// A callback that calls runtime.Goexit (t.FailNow in a test does) ends the
// goroutine, but not before runAll's deferred call has finished the
// cancellation: the callback's registration is marked done (its Wait
// returns), the remaining callbacks run and the remaining children are
// canceled. The outermost runAll then raises the panics recovered so far, if
// any; otherwise the goroutine goes on exiting.
func (r *cancelRun) runAll(s *Source, head *node) {
	r.depth++
	errSt, cause := s.state.Load()&stDeadline, s.cause
	next := head
	var running *node // the callback being called, until it is marked done
	var runningW uint64
	completed := false
	defer func() {
		r.depth--
		if completed {
			return
		}
		if running != nil {
			s.callbackDone(running, runningW)
		}
		if next != nil {
			r.runAll(s, next)
		}
		if r.depth == 0 {
			r.raise()
		}
	}()
	for next != nil {
		n := next
		next = n.next
		n.next, n.prev = nil, nil
		w := n.word.Load()
		if w&kindLink != 0 {
			// A link is removed from the list only under s.mu while s is
			// live, so this detached list owns it: no arbitration needed.
			(*Source)(n.ref).cancel(errSt, cause, r)
		} else if w&stateMask == nPending && !stopped(n, w) && n.word.CompareAndSwap(w, w&^stateMask|nRunning) {
			f := ptrFunc(n.ref)
			n.ref = nil
			running, runningW = n, w
			if rec, panicked := call(f); panicked {
				r.panics = append(r.panics, rec)
			}
			running = nil
			s.callbackDone(n, w)
		}
	}
	completed = true
}

// callbackDone marks the callback node n, whose word was w when it started,
// as done, and wakes the goroutines waiting for it.
func (s *Source) callbackDone(n *node, w uint64) {
	n.word.Store(w&^stateMask | nDone)
	if m := s.loadMore(); m != nil && m.waiters.Load() > 0 {
		s.mu.Lock()
		m.cond.Broadcast()
		s.mu.Unlock()
	}
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
	if x.link2.owner != nil {
		x.link2.unlink()
	}
	m := x.more.Load()
	if m == nil {
		return
	}
	s.mu.Lock()
	others := m.others
	s.mu.Unlock()
	for _, o := range others {
		switch {
		case o.stop != nil:
			o.stop()
		case o.n != nil:
			o.n.unlink()
		}
	}
}

// TryReset makes a live Source reusable, for pooling: it disarms the timer
// and drops every registration (their callbacks never run and their Stop
// returns false) and reports true. Links to parents and to linked children
// are kept. The dropped registrations include those the context package made
// for contexts derived from the Token (context.WithCancel(tok) and friends),
// which are then no longer canceled by it: reset only a Source whose work is
// over, as a pool does. On a canceled Source, or one whose deadline has
// already passed, it returns false and changes nothing.
//
// TryReset does not block and is safe against concurrent calls of any method;
// a Cancel that races with it either wins (TryReset returns false) or runs
// after it (on the reset Source).
func (s *Source) TryReset() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.live() {
		return false
	}
	if ts := s.tm; ts != nil && ts.hasDL {
		if monoNow() >= ts.deadline {
			return false // the timer has fired, or is about to
		}
		ts.disarm()
	}
	x := s.x.Load()
	for n := s.head; n != nil; {
		next := n.next
		if w := n.word.Load(); w&kindLink == 0 {
			if w&stateMask == nPending && !stopped(n, w) && n.word.CompareAndSwap(w, (w>>idShift+1)<<idShift|nPending) {
				s.remove(n)
				n.ref = nil
				if x != nil && x.spare == nil {
					x.spare = n
				}
			}
			// A node already stopped is being removed by its Stop.
		}
		n = next
	}
	s.wakeWaitersLocked()
	return true
}

// wakeWaitersLocked wakes the goroutines in Registration.Wait, if any, to
// look at their registration again. s.mu must be held (so that none is
// between its check and its sleep).
func (s *Source) wakeWaitersLocked() {
	if m := s.loadMore(); m != nil && m.waiters.Load() > 0 {
		m.cond.Broadcast()
	}
}

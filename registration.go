package cancellation

import (
	"runtime"
	"runtime/debug"
	"sync"
	"unsafe"
)

// node.word: the low two bits are the state, kindLink marks a link to a child
// Source, and the rest is the node's id, which Stop and TryReset move on (see
// cbNode) so that a stale Registration can never act on the node's next use.
// The zero word (state 0) is a node in no list.
const (
	nPending  uint64 = 1
	nRunning  uint64 = 2
	nDone     uint64 = 3
	stateMask uint64 = 3
	kindLink  uint64 = 4
	idShift          = 3
)

// A node is a registered callback or a link to a child Source, in its
// owner's list.
type node struct {
	word       atomicU64
	next, prev *node
	ref        unsafe.Pointer // the func() of a callback, or the child *Source of a link
	owner      *Source
}

// A cbNode is a registered callback: a node, and rid, the id it is
// registered under now. Stop "stops" a registration by bumping the id in
// the node's word (one CAS, no lock needed to win against Cancel): a node
// whose word id differs from rid is stopped. rid is written under the
// owner's lock when the node is (re)registered, and a node is never
// re-registered while a cancellation may still be running it.
type cbNode struct {
	node
	rid uint64
}

// asCallback returns the cbNode of the callback node n (word without kindLink).
func asCallback(n *node) *cbNode { return (*cbNode)(unsafe.Pointer(n)) }

// stopped reports whether the callback node n, whose word is w, was stopped.
func stopped(n *node, w uint64) bool { return w>>idShift != asCallback(n).rid }

func funcPtr(f func()) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&f)) }
func ptrFunc(p unsafe.Pointer) func() { return *(*func())(unsafe.Pointer(&p)) }

// push adds n at the head of s's list. s.mu must be held.
func (s *Source) push(n *node) {
	n.prev = nil
	n.next = s.head
	if s.head != nil {
		s.head.prev = n
	}
	s.head = n
}

// remove takes n out of s's list. s.mu must be held.
func (s *Source) remove(n *node) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		s.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	}
	n.next, n.prev = nil, nil
}

// unlink removes the link node n from its owner's list if it is there. A
// canceled owner's list belongs to the goroutine running it, which finds the
// child already canceled. unlink is idempotent and holds the owner's lock
// only briefly.
func (n *node) unlink() {
	p := n.owner
	p.mu.Lock()
	if p.live() && (n.prev != nil || p.head == n) {
		p.remove(n)
	}
	p.mu.Unlock()
}

// A Registration is a callback registered with [Token.Register]. It is a
// small value, free to copy and compare; the zero Registration is valid and
// refers to no callback. Its methods are safe for concurrent use.
type Registration struct {
	n  *node
	id uint64
}

// Register registers f to run when the token is canceled, and returns a
// Registration that can stop it.
//
// f runs exactly once, synchronously, on the goroutine whose Cancel won,
// after the token already reads as canceled, in reverse order of
// registration; that Cancel returns after f returned. If the token is
// already canceled, f runs on the calling goroutine before Register returns
// and Register returns the zero Registration. The zero Token never cancels:
// Register returns the zero Registration without calling f.
//
// A panic in f is recovered and re-raised by Cancel after the cancellation
// completed (see [PanicError]). If f calls runtime.Goexit (t.FailNow does),
// the cancellation is completed first: the remaining callbacks run, the
// children are canceled and Wait on f's registration returns.
//
// Register does not block (other than by running f on a canceled token). It
// reuses the node of a stopped registration, so a Register+Stop cycle
// allocates nothing. It panics if f is nil.
func (t Token) Register(f func()) Registration {
	if f == nil {
		panic("cancellation: Register with nil func")
	}
	r, ok := t.register(f)
	if !ok {
		f()
	}
	return r
}

// register adds f to t's list; it reports false, registering nothing, if t is
// canceled or canceling.
func (t Token) register(f func()) (Registration, bool) {
	s := t.s
	if s == nil {
		return Registration{}, true
	}
	if !s.live() {
		return Registration{}, false
	}
	s.mu.Lock()
	if !s.live() {
		s.mu.Unlock()
		return Registration{}, false
	}
	var n *node
	if x := s.x.Load(); x != nil && x.spare != nil {
		n = x.spare // its word is pending, with the id its Stop moved to
		x.spare = nil
	} else {
		cb := &cbNode{}
		cb.owner = s
		cb.word.init(nPending)
		n = &cb.node
	}
	id := n.word.Load() >> idShift
	asCallback(n).rid = id
	n.ref = funcPtr(f)
	s.push(n)
	s.mu.Unlock()
	return Registration{n, id}, true
}

// AfterFunc arranges for f to run when the token is canceled and returns a
// function that stops it; stop reports whether it prevented f from running.
// It is the method context.AfterFunc and context.WithCancel look for, so
// contexts derived from a Token attach to it without a goroutine and are
// canceled before the Token's Cancel returns.
//
// While the token is live, f runs synchronously in Cancel exactly like a
// callback of [Token.Register]. If the token is already canceled, f runs in
// its own goroutine, as context.AfterFunc specifies (the context package
// calls AfterFunc with its own locks held). AfterFunc does not block. It
// panics if f is nil.
func (t Token) AfterFunc(f func()) (stop func() bool) {
	if f == nil {
		panic("cancellation: AfterFunc with nil func")
	}
	r, ok := t.register(f)
	if !ok {
		go f()
		return func() bool { return false }
	}
	return r.Stop
}

// Stop prevents the callback from running. It reports true exactly when it
// did so; it reports false if the callback ran, is running, or was already
// stopped (or dropped by [Source.TryReset]). During a cancellation Stop
// removes a callback that has not run yet. Racing Stop against Cancel,
// exactly one of "Stop returned true" and "the callback ran" happens.
//
// Stop never blocks: it does not wait for a running callback (see
// [Registration.Wait]), and it may be called from inside any callback.
func (r Registration) Stop() bool {
	n := r.n
	if n == nil {
		return false
	}
	// Moving the id on both stops this registration (Cancel skips a node
	// whose id is not the one it was registered under) and readies the
	// node for its next use, which r can never act on.
	if !n.word.CompareAndSwap(r.id<<idShift|nPending, (r.id+1)<<idShift|nPending) {
		return false
	}
	s := n.owner
	s.mu.Lock()
	n.ref = nil
	x := s.x.Load()
	if s.live() {
		s.remove(n)
		if x == nil {
			x = s.extra()
		}
		if x.spare == nil {
			x.spare = n // kept for the next Register
		}
	}
	s.wakeWaitersLocked()
	s.mu.Unlock()
	return true
}

// Wait blocks until the callback has returned, or until it can no longer run
// (it was stopped, or dropped by [Source.TryReset]); it returns at once for
// the zero Registration. While the token is live and the callback registered,
// Wait blocks until the token is canceled: to make sure a callback is not
// running and will not run, call Stop first and Wait only if Stop returned
// false.
//
// Wait must not be called from the callback itself, nor from a callback of
// the same cancellation that runs before it (both would wait forever).
func (r Registration) Wait() {
	n := r.n
	if n == nil || !waitable(n.word.Load(), r.id) {
		return
	}
	s := n.owner
	s.mu.Lock()
	m := s.more()
	if m.cond == nil {
		m.cond = sync.NewCond(&s.mu)
	}
	m.waiters.Add(1)
	for waitable(n.word.Load(), r.id) {
		m.cond.Wait()
	}
	m.waiters.Add(-1)
	s.mu.Unlock()
}

func waitable(w, id uint64) bool {
	st := w & stateMask
	return w>>idShift == id && (st == nPending || st == nRunning)
}

// call runs f and returns the panic it recovered, if any. A panic(nil) is
// reported as a *runtime.PanicNilError, also when GODEBUG=panicnil=1 makes
// recover return nil for it. If f calls runtime.Goexit, call does not return
// (see runAll).
func call(f func()) (rec Recovered, panicked bool) {
	returned := false
	defer func() {
		if returned {
			return
		}
		v := recover()
		if v == nil {
			// panic(nil) under GODEBUG=panicnil=1, or runtime.Goexit (then
			// the goroutine goes on exiting and this is never returned).
			v = new(runtime.PanicNilError)
		}
		rec, panicked = Recovered{Value: v, Stack: debug.Stack()}, true
	}()
	f()
	returned = true
	return rec, false
}

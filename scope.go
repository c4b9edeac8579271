package cancellation

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// A Scope runs goroutines under one cancellation and waits for all of them:
// a structured-concurrency nursery, or an errgroup that keeps causes and
// panics. It is a [Source] linked to a parent context, plus the goroutines
// started with [Scope.Go] and [Scope.TryGo], each of which receives the
// scope's [Token].
//
//   - The first goroutine that fails (returns an error that is not its
//     token's cancellation, see [Scope.Wait]) cancels the others with a
//     [*SiblingError] cause that wraps its error.
//   - A goroutine that panics cancels the others too; [Scope.Wait] re-raises
//     the panic on the caller's goroutine. A panic in a scope's goroutine
//     never crashes the process from that goroutine and is never lost.
//   - [Scope.Wait] waits for every goroutine, then cancels the token, so
//     nothing linked to the parent stays behind. Call it exactly where the
//     goroutines must be over; a Scope is used once.
//
// Make a Scope with [NewScope]; the zero Scope is not usable. Every method is
// safe for concurrent use except [Scope.SetLimit], which must be called
// before the first Go. Go may be called from the scope's own goroutines,
// also while Wait is waiting.
type Scope struct {
	src *Source
	// state: scopeClosed | scopeWaiting | goroutines<<scopeShift.
	state atomic.Uint64
	sem   chan struct{} // nil: no limit

	byCall atomic.Bool // Cancel or CancelCause was called

	mu         sync.Mutex // guards the fields below
	cond       sync.Cond  // Wait waits for the last goroutine; L is &mu
	failures   []error
	panics     []Recovered
	sawCancels bool  // a goroutine returned its token's cancellation
	result     error // what Wait returns, once finished

	finished sync.Once // the first Wait computes the result and cancels
}

const (
	scopeClosed  uint64 = 1 // Wait has returned (or is returning): Go panics
	scopeWaiting uint64 = 2 // Wait sleeps on cond: the last goroutine wakes it
	scopeShift          = 2
)

// A SiblingError is the cause with which a [Scope] cancels its goroutines
// when one of them failed or panicked: Err is that goroutine's error (a
// [*PanicError] for a panic). Unwrap returns Err, so
// errors.Is(context.Cause(tok), err) holds for the sibling's err.
type SiblingError struct {
	Err error
}

// Error says that a sibling failed, and how.
func (e *SiblingError) Error() string { return "canceled because a sibling failed: " + e.Err.Error() }

// Unwrap returns the sibling's error.
func (e *SiblingError) Unwrap() error { return e.Err }

// errGoexit is the failure of a goroutine that called runtime.Goexit (for
// instance through t.FailNow) instead of returning.
var errGoexit = errors.New("cancellation: scope goroutine called runtime.Goexit")

// NewScope returns a Scope whose token is linked to parent: canceled, with
// parent's Err and cause, as soon as parent is done. Values flow from parent.
// NewScope does not block. It panics if parent is nil. The link is released
// by [Scope.Wait] (or by a cancellation), so call Wait.
func NewScope(parent context.Context) *Scope {
	s := &Scope{src: New(parent)}
	s.cond.L = &s.mu
	return s
}

// Token returns the scope's token: the one every goroutine of the scope
// receives. It does not block or allocate.
func (s *Scope) Token() Token { return s.src.Token() }

// Cancel cancels the scope's token with cause context.Canceled; see
// [Scope.CancelCause].
func (s *Scope) Cancel() bool { return s.CancelCause(nil) }

// CancelCause cancels the scope's token with cause (context.Canceled if
// nil), like [Source.CancelCause], whose blocking and panic behaviour it
// shares: it returns true for the call that canceled, after running the
// token's callbacks. Goroutines that then return their token's Err or cause
// are not failures, and Wait returns nil if nothing else failed: canceling a
// scope yourself is a normal way to end it (for instance once one goroutine
// found what all of them were looking for). It does not wait for the
// goroutines; Wait does.
func (s *Scope) CancelCause(cause error) bool {
	s.byCall.Store(true)
	return s.src.CancelCause(cause)
}

// SetLimit limits the number of the scope's goroutines running at once to
// n; a negative n means no limit (the default), and 0 lets no goroutine
// start. Then Go blocks until a slot is free, and TryGo returns false.
//
// SetLimit is not safe for concurrent use with Go or TryGo: call it before
// the first of them. It panics if goroutines of the scope are running.
func (s *Scope) SetLimit(n int) {
	if running := s.state.Load() >> scopeShift; running != 0 {
		panic("cancellation: Scope.SetLimit while goroutines of the scope are running")
	}
	if n < 0 {
		s.sem = nil
		return
	}
	s.sem = make(chan struct{}, n)
}

// Go runs f(tok) in a new goroutine, where tok is the scope's token. If a
// limit is set (see [Scope.SetLimit]), Go first blocks until fewer than
// the limit of the scope's goroutines run; otherwise it does not block.
//
// Go may be called from the scope's goroutines, also while Wait waits for
// them. It panics if f is nil, and if Wait has returned: a Scope is used
// once. A Go that races with the end of Wait (from a goroutine that is not
// one of the scope's) either starts f, and Wait waits for it, or panics.
func (s *Scope) Go(f func(Token) error) {
	if f == nil {
		panic("cancellation: Scope.Go with nil func")
	}
	if s.sem != nil {
		if s.state.Load()&scopeClosed != 0 {
			panic(goAfterWait)
		}
		s.sem <- struct{}{}
	}
	s.add()
	go s.run(f)
}

// TryGo is Go that never blocks: it starts f and returns true if the limit
// allows another goroutine now, and returns false without starting f
// otherwise. Like Go, it panics if f is nil or Wait has returned.
func (s *Scope) TryGo(f func(Token) error) bool {
	if f == nil {
		panic("cancellation: Scope.TryGo with nil func")
	}
	if s.sem != nil {
		select {
		case s.sem <- struct{}{}:
		default:
			if s.state.Load()&scopeClosed != 0 {
				panic(goAfterWait)
			}
			return false
		}
	}
	s.add()
	go s.run(f)
	return true
}

const goAfterWait = "cancellation: Scope.Go after Wait returned (a Scope is used once)"

// add counts a new goroutine, or panics (releasing its slot) if the scope
// is closed. A count added to a closed scope is taken back at once; Wait
// only closes a scope whose count is zero, so it never misses a goroutine.
func (s *Scope) add() {
	if v := s.state.Add(1 << scopeShift); v&scopeClosed != 0 {
		s.done()
		panic(goAfterWait)
	}
}

// run is the body of every goroutine of the scope.
//
// errgroup declines to carry panics to Wait (golang/go#53757): the panic is
// delayed, its stack becomes a mere value, and a panic that leaves the
// program unable to reach Wait is hidden. Here the panic cancels the
// siblings at once (so a Wait that waits for them is reached), the stack of
// the panicking goroutine is kept beside the value in the *PanicError that
// Wait raises, and Wait is where structured code ends anyway.
func (s *Scope) run(f func(Token) error) {
	returned := false
	defer s.exit(&returned)
	tok := s.src.Token()
	err := f(tok)
	returned = true
	if err == nil {
		return
	}
	if tok.IsCanceled() && (errors.Is(err, tok.Err()) || errors.Is(err, tok.Cause())) {
		// The goroutine stopped because the scope was canceled: not a
		// failure of its own.
		s.mu.Lock()
		s.sawCancels = true
		s.mu.Unlock()
		return
	}
	s.fail(err, Recovered{})
}

// exit ends a goroutine of the scope: if f did not return, it panicked
// (recover is non-nil) or called runtime.Goexit (nil).
func (s *Scope) exit(returned *bool) {
	if !*returned {
		if v := recover(); v != nil {
			s.fail(nil, Recovered{Value: v, Stack: debug.Stack()})
		} else {
			s.fail(errGoexit, Recovered{})
		}
	}
	s.done()
}

// fail records a failure (err) or a panic (p.Stack != nil) and cancels the
// siblings with a *SiblingError cause.
func (s *Scope) fail(err error, p Recovered) {
	s.mu.Lock()
	if p.Stack != nil {
		s.panics = append(s.panics, p)
		err = &PanicError{Recovered: []Recovered{p}}
	} else {
		s.failures = append(s.failures, err)
	}
	s.mu.Unlock()
	s.cancelSiblings(&SiblingError{Err: err})
}

// cancelSiblings cancels the scope's token with cause. A panic of the
// token's callbacks is kept for Wait to re-raise: on this goroutine it would
// crash the process.
func (s *Scope) cancelSiblings(cause error) {
	defer func() {
		if v := recover(); v != nil {
			s.addPanic(v)
		}
	}()
	s.src.CancelCause(cause)
}

// addPanic records a *PanicError raised by a Cancel (its entries), or any
// other panic value with the current stack.
func (s *Scope) addPanic(v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pe, ok := v.(*PanicError); ok {
		s.panics = append(s.panics, pe.Recovered...)
		return
	}
	s.panics = append(s.panics, Recovered{Value: v, Stack: debug.Stack()})
}

// done releases the goroutine's slot and count, waking Wait after the last.
func (s *Scope) done() {
	if s.sem != nil {
		<-s.sem
	}
	v := s.state.Add(^uint64(1<<scopeShift - 1)) // minus one goroutine
	if v>>scopeShift == 0 && v&scopeWaiting != 0 {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// Wait blocks until every goroutine of the scope has returned, including
// those started meanwhile by the scope's goroutines, then cancels the
// scope's token (releasing its link to the parent) and returns:
//
//   - nil if every goroutine returned nil, or returned its token's Err or
//     Cause (errors.Is) after the scope was canceled by [Scope.Cancel],
//     [Scope.CancelCause] or a failing sibling: such a goroutine did what
//     it was asked to;
//   - the failures, in the order they happened: the error itself if there
//     is one, errors.Join of them if there are several (errors.Is and
//     errors.As see each);
//   - if nothing failed but the parent canceled the scope and a goroutine
//     returned its token's cancellation, the token's Err: exactly
//     context.Canceled or context.DeadlineExceeded, with the reason in
//     context.Cause(s.Token()). The work did not finish, so Wait does not
//     report success.
//
// If goroutines panicked (or the token's callbacks panicked when a failure
// canceled it), Wait panics on the calling goroutine with a [*PanicError]
// whose Recovered entries hold each original panic value and the stack of
// the goroutine that panicked, in the order they happened; errors.Is and
// errors.As reach panic values that are errors.
//
// Wait may be called more than once and from several goroutines: every call
// waits, then returns the same result (or panics the same way). It must not
// be called from one of the scope's own goroutines (it would wait for
// itself). Once it has returned, Go and TryGo panic.
func (s *Scope) Wait() error {
	s.mu.Lock()
	for {
		v := s.state.Load()
		if v>>scopeShift == 0 {
			if v&scopeClosed != 0 || s.state.CompareAndSwap(v, v|scopeClosed) {
				break
			}
			continue
		}
		if v&scopeWaiting == 0 && !s.state.CompareAndSwap(v, v|scopeWaiting) {
			continue
		}
		s.cond.Wait()
	}
	s.mu.Unlock()
	s.finished.Do(s.finish)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.panics) > 0 {
		panic(&PanicError{Recovered: append([]Recovered(nil), s.panics...)})
	}
	return s.result
}

// finish computes Wait's result once and cancels the token.
func (s *Scope) finish() {
	tok := s.src.Token()
	s.mu.Lock()
	var result error
	switch {
	case len(s.failures) == 1:
		result = s.failures[0]
	case len(s.failures) > 1:
		result = errors.Join(s.failures...)
	case s.sawCancels && !s.byCall.Load():
		result = tok.Err()
	}
	s.result = result
	s.mu.Unlock()
	func() {
		defer func() {
			if v := recover(); v != nil {
				s.addPanic(v)
			}
		}()
		s.src.Cancel()
	}()
}

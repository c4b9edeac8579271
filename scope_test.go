package cancellation_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
)

// waitPanic calls s.Wait and returns what it panicked with (nil if it did
// not) and what it returned.
func waitPanic(s *cancellation.Scope) (v any, err error) {
	defer func() { v = recover() }()
	return nil, s.Wait()
}

func TestScopeWaitsForEveryGoroutine(t *testing.T) {
	t.Parallel()
	s := cancellation.NewScope(context.Background())
	var n atomic.Int32
	release := make(chan struct{})
	for range 10 {
		s.Go(func(cancellation.Token) error {
			<-release
			// Go from inside the scope, while Wait may be waiting.
			s.Go(func(cancellation.Token) error { n.Add(1); return nil })
			n.Add(1)
			return nil
		})
	}
	waited := make(chan error)
	go func() { waited <- s.Wait() }()
	select {
	case <-waited:
		t.Fatal("Wait returned while goroutines were blocked")
	case <-time.After(10 * time.Millisecond):
	}
	close(release)
	if err := <-waited; err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
	if got := n.Load(); got != 20 {
		t.Fatalf("%d goroutines ran before Wait returned, want 20", got)
	}
}

func TestScopeFirstFailureCancelsSiblingsWithSiblingError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	s := cancellation.NewScope(context.Background())
	var cause error
	s.Go(func(tok cancellation.Token) error {
		<-tok.Done()
		cause = context.Cause(tok)
		return tok.Err()
	})
	s.Go(func(cancellation.Token) error { return boom })
	if err := s.Wait(); err != boom {
		t.Fatalf("Wait = %v, want the failure itself", err)
	}
	var se *cancellation.SiblingError
	if !errors.As(cause, &se) || se.Err != boom || !errors.Is(cause, boom) {
		t.Fatalf("sibling saw cause %#v, want *SiblingError wrapping boom", cause)
	}
	if !strings.Contains(cause.Error(), "boom") {
		t.Errorf("SiblingError text %q does not name the failure", cause.Error())
	}
}

func TestScopeJoinsFailuresInOrder(t *testing.T) {
	t.Parallel()
	// The order must be the order of the failures, not of the Go calls. The
	// only moment a test can see a failure recorded is the cancellation it
	// causes (the scope records it, then cancels): the later failure waits
	// for that. (A chain of three through channels closed by the goroutines
	// themselves raced: a goroutine's close ran before the scope recorded
	// its return value.)
	e1, e2 := errors.New("first"), errors.New("second")
	for range 100 {
		s := cancellation.NewScope(context.Background())
		s.Go(func(tok cancellation.Token) error { <-tok.Done(); return e2 })
		s.Go(func(cancellation.Token) error { return e1 })
		err := s.Wait()
		u, ok := err.(interface{ Unwrap() []error })
		if !ok {
			t.Fatalf("Wait = %#v, want errors.Join of two", err)
		}
		got := u.Unwrap()
		if len(got) != 2 || got[0] != e1 || got[1] != e2 {
			t.Fatalf("Wait joined %v, want [first second] in that order", got)
		}
	}
}

// Siblings that return their token's Err, its cause, or either wrapped, are
// not failures.
func TestScopeCancellationResultsAreNotFailures(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	s := cancellation.NewScope(context.Background())
	ready := make(chan struct{})
	var started sync.WaitGroup
	for _, ret := range []func(cancellation.Token) error{
		func(tok cancellation.Token) error { return tok.Err() },
		func(tok cancellation.Token) error { return tok.Cause() },
		func(tok cancellation.Token) error { return fmt.Errorf("step 3: %w", tok.Err()) },
		func(tok cancellation.Token) error { return fmt.Errorf("step 3: %w", context.Cause(tok)) },
	} {
		started.Add(1)
		s.Go(func(tok cancellation.Token) error {
			started.Done()
			<-tok.Done()
			return ret(tok)
		})
	}
	s.Go(func(cancellation.Token) error { started.Wait(); <-ready; return boom })
	close(ready)
	if err := s.Wait(); err != boom {
		t.Fatalf("Wait = %v, want only boom", err)
	}
}

func TestScopeCancelEndsWithoutError(t *testing.T) {
	t.Parallel()
	s := cancellation.NewScope(context.Background())
	for range 3 {
		s.Go(func(tok cancellation.Token) error { <-tok.Done(); return tok.Err() })
	}
	s.Go(func(cancellation.Token) error { s.CancelCause(errors.New("found it")); return nil })
	if err := s.Wait(); err != nil {
		t.Fatalf("Wait after Scope.CancelCause = %v, want nil", err)
	}
	if s.Cancel() {
		t.Error("Cancel after Wait = true, want false (already canceled)")
	}
}

// A scope canceled from outside (its parent) whose goroutines stopped
// early does not report success: Wait returns exactly the token's Err.
func TestScopeParentCancelIsReported(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		kind error
	}{{"canceled", context.Canceled}, {"deadline", context.DeadlineExceeded}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent := cancellation.New()
			s := cancellation.NewScope(parent.Token())
			s.Go(func(tok cancellation.Token) error { <-tok.Done(); return tok.Err() })
			s.Go(func(cancellation.Token) error { return nil })
			reason := errors.New("shutting down")
			if tc.kind == context.DeadlineExceeded {
				parent.CancelAfterCause(time.Nanosecond, reason)
			} else {
				parent.CancelCause(reason)
			}
			if err := s.Wait(); err != tc.kind {
				t.Fatalf("Wait = %#v, want exactly %v", err, tc.kind)
			}
			if c := context.Cause(s.Token()); c != reason {
				t.Errorf("cause = %v, want the parent's", c)
			}
		})
	}
	t.Run("all finished", func(t *testing.T) {
		t.Parallel()
		parent := cancellation.New()
		s := cancellation.NewScope(parent.Token())
		s.Go(func(cancellation.Token) error { return nil })
		parent.Cancel()
		if err := s.Wait(); err != nil {
			t.Fatalf("Wait = %v, want nil: every goroutine finished its work", err)
		}
	})
}

func panicker() { panic(errPanic) }

var errPanic = errors.New("panic value")

func TestScopePanicReraisedByWait(t *testing.T) {
	t.Parallel()
	s := cancellation.NewScope(context.Background())
	var cause error
	s.Go(func(tok cancellation.Token) error {
		<-tok.Done()
		cause = context.Cause(tok)
		return tok.Err()
	})
	s.Go(func(cancellation.Token) error { panicker(); return nil })
	v, err := waitPanic(s)
	if err != nil {
		t.Fatalf("Wait returned %v instead of panicking", err)
	}
	pe, ok := v.(*cancellation.PanicError)
	if !ok || len(pe.Recovered) != 1 {
		t.Fatalf("Wait panicked with %#v, want *PanicError with one entry", v)
	}
	if r := pe.Recovered[0]; r.Value != errPanic {
		t.Errorf("recovered value %#v, want the original", r.Value)
	} else if !strings.Contains(string(r.Stack), "cancellation_test.panicker") {
		t.Errorf("stack is not the panicking goroutine's:\n%s", r.Stack)
	}
	if !errors.Is(pe, errPanic) {
		t.Error("errors.Is(PanicError, original) = false")
	}
	var se *cancellation.SiblingError
	if !errors.As(cause, &se) || !errors.Is(cause, errPanic) {
		t.Errorf("sibling saw cause %v, want *SiblingError wrapping the panic", cause)
	}
	// A second Wait panics the same way.
	if v2, _ := waitPanic(s); v2 == nil {
		t.Error("second Wait did not panic")
	}
}

func TestScopeGoexitIsAFailure(t *testing.T) {
	t.Parallel()
	s := cancellation.NewScope(context.Background())
	s.Go(func(cancellation.Token) error { runtime.Goexit(); return nil })
	if err := s.Wait(); err == nil || !strings.Contains(err.Error(), "Goexit") {
		t.Fatalf("Wait = %v, want the Goexit failure", err)
	}
}

// A panic of a callback on the scope's token, raised when a failure cancels
// it, is re-raised by Wait rather than crashing the failing goroutine.
func TestScopeCallbackPanicReraisedByWait(t *testing.T) {
	t.Parallel()
	s := cancellation.NewScope(context.Background())
	s.Token().Register(func() { panic("callback") })
	s.Go(func(cancellation.Token) error { return errors.New("boom") })
	v, _ := waitPanic(s)
	pe, ok := v.(*cancellation.PanicError)
	if !ok || len(pe.Recovered) != 1 || pe.Recovered[0].Value != "callback" {
		t.Fatalf("Wait panicked with %#v, want the callback's panic", v)
	}
}

func TestScopeWaitCancelsTokenAndReleasesLink(t *testing.T) {
	t.Parallel()
	parent := cancellation.New()
	defer parent.Cancel()
	type key struct{}
	vals := context.WithValue(context.Background(), key{}, "v")
	s := cancellation.NewScope(cancellation.New(parent.Token(), vals).Token())
	s2 := cancellation.NewScope(parent.Token())
	if cancellation.ListLen(parent) != 2 {
		t.Fatalf("parent lists %d links, want 2", cancellation.ListLen(parent))
	}
	s2.Go(func(tok cancellation.Token) error { return nil })
	if err := s2.Wait(); err != nil {
		t.Fatal(err)
	}
	if !s2.Token().IsCanceled() {
		t.Error("token live after Wait")
	}
	if n := cancellation.ListLen(parent); n != 1 {
		t.Errorf("parent still lists %d links after Wait, want 1", n)
	}
	if s.Token().Value(key{}) != nil {
		t.Error("values should come from the first parent only")
	}
	s3 := cancellation.NewScope(vals)
	if s3.Token().Value(key{}) != "v" {
		t.Error("values do not flow from the parent")
	}
	_ = s3.Wait()
	_ = s.Wait()
}

func TestScopeGoAfterWaitPanics(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{-1, 1} {
		s := cancellation.NewScope(context.Background())
		s.SetLimit(limit)
		_ = s.Wait()
		for name, start := range map[string]func(){
			"Go":    func() { s.Go(func(cancellation.Token) error { return nil }) },
			"TryGo": func() { s.TryGo(func(cancellation.Token) error { return nil }) },
		} {
			func() {
				defer func() {
					if v, _ := recover().(string); !strings.HasPrefix(v, "cancellation: ") {
						t.Errorf("limit %d: %s after Wait panicked with %q, want a cancellation: message", limit, name, v)
					}
				}()
				start()
			}()
		}
	}
}

func TestScopeSetLimit(t *testing.T) {
	t.Parallel()
	const limit = 3
	s := cancellation.NewScope(context.Background())
	s.SetLimit(limit)
	var running, peak atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	for range limit {
		s.Go(func(cancellation.Token) error {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			started <- struct{}{}
			<-release
			running.Add(-1)
			return nil
		})
	}
	for range limit {
		<-started
	}
	// Full: TryGo returns false at once, Go blocks.
	if s.TryGo(func(cancellation.Token) error { return nil }) {
		t.Fatal("TryGo at the limit = true")
	}
	goReturned := make(chan struct{})
	go func() {
		s.Go(func(cancellation.Token) error { started <- struct{}{}; return nil })
		close(goReturned)
	}()
	select {
	case <-goReturned:
		t.Fatal("Go returned at the limit")
	case <-time.After(10 * time.Millisecond):
	}
	close(release)
	<-goReturned
	<-started
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p > limit {
		t.Errorf("%d goroutines ran at once, limit %d", p, limit)
	}
	// A slot is free again after Wait? No: the scope is done. A new scope with
	// limit 0 starts nothing.
	z := cancellation.NewScope(context.Background())
	z.SetLimit(0)
	if z.TryGo(func(cancellation.Token) error { return nil }) {
		t.Error("TryGo with limit 0 = true")
	}
	_ = z.Wait()
}

func TestScopeSetLimitWhileRunningPanics(t *testing.T) {
	t.Parallel()
	s := cancellation.NewScope(context.Background())
	release := make(chan struct{})
	s.Go(func(cancellation.Token) error { <-release; return nil })
	func() {
		defer func() {
			if recover() == nil {
				t.Error("SetLimit with a goroutine running did not panic")
			}
		}()
		s.SetLimit(1)
	}()
	close(release)
	_ = s.Wait()
}

func TestScopeConcurrentWaitsAgree(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	s := cancellation.NewScope(context.Background())
	release := make(chan struct{})
	s.Go(func(cancellation.Token) error { <-release; return boom })
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- s.Wait() }()
	}
	close(release)
	for range 3 {
		if err := <-errs; err != boom {
			t.Fatalf("a Wait returned %v, want boom", err)
		}
	}
}

// Race: Go (from outside and from inside the scope) vs Cancel vs Wait. Every
// Go either runs its goroutine, waited for by Wait, or panics because Wait
// returned; nothing runs after Wait returns.
func TestRaceScopeGoCancelWait(t *testing.T) {
	t.Parallel()
	for range 500 {
		parent := cancellation.New()
		s := cancellation.NewScope(parent.Token())
		var ran, finished atomic.Int32
		var waitDone atomic.Bool
		body := func(tok cancellation.Token) error {
			ran.Add(1)
			defer finished.Add(1)
			if waitDone.Load() {
				t.Error("a goroutine ran after Wait returned")
			}
			return tok.Err()
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			defer func() { _ = recover() }() // Go after Wait: allowed to panic
			for range 5 {
				s.Go(func(tok cancellation.Token) error {
					s.Go(body) // nested: never panics while its parent runs
					return body(tok)
				})
			}
		})
		wg.Go(func() { s.Cancel() })
		wg.Go(func() { parent.Cancel() })
		var err error
		wg.Go(func() {
			err = s.Wait()
			waitDone.Store(true)
			if f, r := finished.Load(), ran.Load(); f != r {
				t.Errorf("Wait returned with %d of %d goroutines finished", f, r)
			}
		})
		wg.Wait()
		if err != nil && err != context.Canceled {
			t.Fatalf("Wait = %v", err)
		}
		if !s.Token().IsCanceled() {
			t.Fatal("token live after Wait")
		}
		if n := cancellation.ListLen(parent); n != 0 {
			t.Fatalf("parent lists %d links", n)
		}
	}
}

func TestScopeNilArguments(t *testing.T) {
	t.Parallel()
	s := cancellation.NewScope(context.Background())
	var nilCtx context.Context // a nil parent, on purpose
	for name, f := range map[string]func(){
		"Go(nil)":        func() { s.Go(nil) },
		"TryGo(nil)":     func() { s.TryGo(nil) },
		"NewScope(nil)":  func() { cancellation.NewScope(nilCtx) },
		"Shield(nil, 0)": func() { cancellation.Shield(nilCtx, 0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
	_ = s.Wait()
}

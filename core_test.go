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
	"testing/synctest"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/internal/doccheck"
)

var errWhy = errors.New("why")

// closed reports whether c is closed, without blocking.
func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Rule 1: zero values.
func TestZeroToken(t *testing.T) {
	t.Parallel()
	var tok cancellation.Token
	if tok.CanBeCanceled() {
		t.Error("CanBeCanceled() = true")
	}
	if tok.IsCanceled() {
		t.Error("IsCanceled() = true")
	}
	if tok.Done() != nil {
		t.Error("Done() != nil")
	}
	if tok.Err() != nil || tok.Cause() != nil {
		t.Errorf("Err, Cause = %v, %v", tok.Err(), tok.Cause())
	}
	if d, ok := tok.Deadline(); ok || !d.IsZero() {
		t.Errorf("Deadline() = %v, %v", d, ok)
	}
	if v := tok.Value("k"); v != nil {
		t.Errorf("Value = %v", v)
	}
	called := false
	r := tok.Register(func() { called = true })
	if called {
		t.Error("Register on the zero Token called f")
	}
	if r != (cancellation.Registration{}) {
		t.Error("Register on the zero Token returned a non-zero Registration")
	}
	if tok.AfterFunc(func() { called = true })() || called {
		t.Error("AfterFunc on the zero Token: stop true or f called")
	}
	if context.Cause(tok) != nil {
		t.Error("context.Cause(zero Token) != nil")
	}
}

func TestZeroRegistration(t *testing.T) {
	t.Parallel()
	var r cancellation.Registration
	if r.Stop() {
		t.Error("Stop() = true")
	}
	r.Wait() // must return at once
}

// Rule 2: Cancel.
func TestCancel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		cancel    func(*cancellation.Source) bool
		wantCause error
	}{
		{"Cancel", (*cancellation.Source).Cancel, context.Canceled},
		{"CancelCause", func(s *cancellation.Source) bool { return s.CancelCause(errWhy) }, errWhy},
		{"CancelCause(nil)", func(s *cancellation.Source) bool { return s.CancelCause(nil) }, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := cancellation.New()
			tok := s.Token()
			if !tok.CanBeCanceled() || tok.IsCanceled() || tok.Err() != nil || tok.Cause() != nil {
				t.Fatal("new source is not live")
			}
			done := tok.Done()
			if closed(done) {
				t.Fatal("Done closed before Cancel")
			}
			if !tc.cancel(s) {
				t.Fatal("first cancel returned false")
			}
			for range 3 {
				if s.Cancel() || s.CancelCause(errors.New("later")) {
					t.Fatal("later cancel returned true")
				}
			}
			if err := tok.Err(); err != context.Canceled { // exactly, never wrapped
				t.Errorf("Err() = %#v, want context.Canceled", err)
			}
			if got := tok.Cause(); got != tc.wantCause {
				t.Errorf("Cause() = %v, want %v", got, tc.wantCause)
			}
			if got := context.Cause(tok); got != tc.wantCause {
				t.Errorf("context.Cause() = %v, want %v", got, tc.wantCause)
			}
			if !tok.IsCanceled() || !closed(done) || !closed(tok.Done()) {
				t.Error("canceled token: IsCanceled false or Done not closed")
			}
		})
	}
}

// Rule 2, under concurrency: IsCanceled/Err ⇒ Done closed; Done closed ⇒ Err.
func TestRaceErrDoneConsistency(t *testing.T) {
	t.Parallel()
	for range 2000 {
		s := cancellation.New()
		tok := s.Token()
		var wg sync.WaitGroup
		var bad atomic.Value
		start := make(chan struct{})
		wg.Add(3)
		go func() {
			defer wg.Done()
			<-start
			for range 50 {
				if tok.IsCanceled() && !closed(tok.Done()) {
					bad.Store("IsCanceled true but Done open")
				}
				if tok.Err() != nil && !closed(tok.Done()) {
					bad.Store("Err non-nil but Done open")
				}
			}
		}()
		go func() {
			defer wg.Done()
			d := tok.Done()
			<-start
			for range 50 {
				if closed(d) && tok.Err() == nil {
					bad.Store("Done closed but Err nil")
				}
				if closed(d) && tok.Cause() == nil {
					bad.Store("Done closed but Cause nil")
				}
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			s.CancelCause(errWhy)
		}()
		close(start)
		wg.Wait()
		if v := bad.Load(); v != nil {
			t.Fatal(v)
		}
	}
}

func TestRaceConcurrentCancel(t *testing.T) {
	t.Parallel()
	for range 1000 {
		s := cancellation.New()
		var wins, runs atomic.Int32
		s.Token().Register(func() { runs.Add(1) })
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if s.Cancel() {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 || runs.Load() != 1 {
			t.Fatalf("wins = %d, runs = %d; want 1, 1", wins.Load(), runs.Load())
		}
	}
}

// Rule 3: callbacks.
func TestCallbacksOrderAndSync(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	tok := s.Token()
	var order []int
	for i := range 5 {
		tok.Register(func() {
			if !tok.IsCanceled() || tok.Err() == nil || !closed(tok.Done()) {
				t.Errorf("callback %d ran before the token read as canceled", i)
			}
			order = append(order, i)
		})
	}
	s.Cancel()
	// Synchronous: every callback has run when Cancel returns; no lock needed.
	if got := fmt.Sprint(order); got != "[4 3 2 1 0]" {
		t.Errorf("order = %v, want reverse registration order", got)
	}
	s.Cancel()
	if len(order) != 5 {
		t.Errorf("callbacks ran %d times, want exactly once each", len(order))
	}
}

func TestCallbackRunsOnCancelingGoroutine(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	ran := make(chan struct{})
	release := make(chan struct{})
	s.Token().Register(func() {
		close(ran)
		<-release
	})
	cancelReturned := make(chan bool)
	go func() { cancelReturned <- s.Cancel() }()
	<-ran
	// The first Cancel is blocked inside the callback; another returns false at once.
	if s.Cancel() {
		t.Error("concurrent Cancel returned true")
	}
	select {
	case <-cancelReturned:
		t.Fatal("Cancel returned before its callback did")
	default:
	}
	close(release)
	if !<-cancelReturned {
		t.Error("winning Cancel returned false")
	}
}

func TestReentrantCancel(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	var inner bool = true
	s.Token().Register(func() { inner = s.Cancel() })
	if !s.Cancel() {
		t.Fatal("Cancel returned false")
	}
	if inner {
		t.Error("re-entrant Cancel returned true")
	}
}

func TestRegisterOnCanceled(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	s.Cancel()
	called := false
	r := s.Token().Register(func() { called = true })
	if !called {
		t.Error("Register on a canceled token did not run f before returning")
	}
	if r.Stop() {
		t.Error("Stop of a registration that ran returned true")
	}
	r.Wait()
}

func TestRegisterNilPanics(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"Register":  func() { cancellation.New().Token().Register(nil) },
		"AfterFunc": func() { cancellation.New().Token().AfterFunc(nil) },
		"New(nil)":  func() { cancellation.New(context.Background(), nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				v := recover()
				if v == nil || !strings.HasPrefix(fmt.Sprint(v), "cancellation: ") {
					t.Errorf("recovered %v, want a panic prefixed \"cancellation: \"", v)
				}
			}()
			f()
		})
	}
}

// Rule 3 race: Register racing Cancel runs f exactly once.
func TestRaceRegisterVsCancel(t *testing.T) {
	t.Parallel()
	for range 3000 {
		s := cancellation.New()
		var runs atomic.Int32
		var wg sync.WaitGroup
		wg.Go(func() { s.Token().Register(func() { runs.Add(1) }) })
		wg.Go(func() { s.Cancel() })
		wg.Wait()
		if n := runs.Load(); n != 1 {
			t.Fatalf("f ran %d times, want 1", n)
		}
	}
}

// Rule 4: Stop.
func TestStop(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	called := false
	r := s.Token().Register(func() { called = true })
	if !r.Stop() {
		t.Fatal("first Stop = false")
	}
	if r.Stop() {
		t.Error("second Stop = true")
	}
	r.Wait() // prevented: returns at once
	s.Cancel()
	if called {
		t.Error("stopped callback ran")
	}
}

func TestStopAfterRunReturnsFalse(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	r := s.Token().Register(func() {})
	s.Cancel()
	if r.Stop() {
		t.Error("Stop after the callback ran = true")
	}
}

func TestStopFromInsideCallbacks(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	tok := s.Token()
	var later, self cancellation.Registration
	laterRan := false
	// Registered first, so it runs last.
	later = tok.Register(func() { laterRan = true })
	var selfStop, laterStop bool
	self = tok.Register(func() {
		selfStop = self.Stop()   // running: false, and must not block
		laterStop = later.Stop() // not yet run: removed
	})
	s.Cancel()
	if selfStop {
		t.Error("Stop of the running callback = true")
	}
	if !laterStop || laterRan {
		t.Errorf("Stop during cancellation of a callback not yet run: Stop=%v ran=%v; want true, false", laterStop, laterRan)
	}
}

func TestStoppedRegistrationIsRecycledSafely(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	tok := s.Token()
	old := tok.Register(func() { t.Error("stopped callback ran") })
	old.Stop()
	ran := false
	fresh := tok.Register(func() { ran = true }) // may reuse old's node
	if old.Stop() {
		t.Error("stale Registration stopped the node's next use")
	}
	_ = fresh
	s.Cancel()
	if !ran {
		t.Error("callback registered after a recycled stop did not run")
	}
}

func TestRaceStopVsCancel(t *testing.T) {
	t.Parallel()
	for range 5000 {
		s := cancellation.New()
		var ran atomic.Bool
		r := s.Token().Register(func() { ran.Store(true) })
		s.Token().Register(func() {}) // another, so the list is non-trivial
		var stopped bool
		var wg sync.WaitGroup
		wg.Go(func() { stopped = r.Stop() })
		wg.Go(func() { s.Cancel() })
		wg.Wait()
		if stopped == ran.Load() {
			t.Fatalf("Stop returned %v and f ran = %v: want exactly one", stopped, ran.Load())
		}
	}
}

// Rule 5: Wait.
func TestWaitBlocksUntilCallbackReturned(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	entered := make(chan struct{})
	release := make(chan struct{})
	var returned atomic.Bool
	r := s.Token().Register(func() {
		close(entered)
		<-release
		returned.Store(true)
	})
	go s.Cancel()
	<-entered
	if r.Stop() {
		t.Fatal("Stop of a running callback = true")
	}
	waited := make(chan struct{})
	go func() {
		r.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		t.Fatal("Wait returned while the callback was running")
	default:
	}
	close(release)
	<-waited
	if !returned.Load() {
		t.Error("Wait returned before the callback returned")
	}
}

func TestWaitPendingUntilCancelOrStop(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"cancel", "stop", "tryreset"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			s := cancellation.New()
			var ran atomic.Bool
			r := s.Token().Register(func() { ran.Store(true) })
			waited := make(chan struct{})
			go func() {
				r.Wait()
				close(waited)
			}()
			switch how {
			case "cancel":
				s.Cancel()
				<-waited
				if !ran.Load() {
					t.Error("Wait returned before f ran")
				}
			case "stop":
				if !r.Stop() {
					t.Fatal("Stop = false")
				}
				<-waited
			case "tryreset":
				if !s.TryReset() {
					t.Fatal("TryReset = false")
				}
				<-waited
				s.Cancel()
				if ran.Load() {
					t.Error("dropped callback ran")
				}
			}
		})
	}
}

// Rule 6: panics.
func TestCallbackPanics(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	tok := s.Token()
	var ran []int
	child := cancellation.New(tok)
	child.Token().Register(func() { ran = append(ran, 0); panic("child") })
	tok.Register(func() { ran = append(ran, 1); panic(errWhy) })
	tok.Register(func() { ran = append(ran, 2) })
	tok.Register(func() { ran = append(ran, 3); panic("first") })
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		s.Cancel()
	}()
	pe, ok := recovered.(*cancellation.PanicError)
	if !ok {
		t.Fatalf("Cancel panicked with %#v, want *PanicError", recovered)
	}
	if fmt.Sprint(ran) != "[3 2 1 0]" {
		t.Errorf("ran = %v: not every callback ran in order", ran)
	}
	var vals []any
	for _, r := range pe.Recovered {
		vals = append(vals, r.Value)
		if len(r.Stack) == 0 || !strings.Contains(string(r.Stack), "core_test.go") {
			t.Errorf("recovered %v without the callback's stack", r.Value)
		}
	}
	if fmt.Sprint(vals) != fmt.Sprint([]any{"first", errWhy, "child"}) {
		t.Errorf("recovered %v, want [first why child] in execution order", vals)
	}
	if !errors.Is(pe, errWhy) {
		t.Error("errors.Is(PanicError, errWhy) = false")
	}
	if !strings.Contains(pe.Error(), "3 recovered panics") {
		t.Errorf("Error() = %q", pe.Error())
	}
	if !tok.IsCanceled() || !child.Token().IsCanceled() {
		t.Error("cancellation not completed after panics")
	}
	if s.Cancel() {
		t.Error("Cancel after a panicking Cancel returned true")
	}
}

// Rule 7: linked sources.
func TestLinkedTokenParent(t *testing.T) {
	t.Parallel()
	p := cancellation.New()
	c := cancellation.New(p.Token())
	gc := cancellation.New(c.Token())
	var order []string
	p.Token().Register(func() { order = append(order, "parent") })
	gc.Token().Register(func() { order = append(order, "grandchild") })
	p.CancelCause(errWhy)
	// Synchronous: children canceled before Cancel returns.
	for _, tok := range []cancellation.Token{c.Token(), gc.Token()} {
		if tok.Err() != context.Canceled || tok.Cause() != errWhy {
			t.Errorf("child Err, Cause = %v, %v", tok.Err(), tok.Cause())
		}
	}
	if fmt.Sprint(order) != "[parent grandchild]" { // the child link was registered before the callback
		t.Errorf("order = %v", order)
	}
}

func TestLinkedChildCancelDoesNotCancelParent(t *testing.T) {
	t.Parallel()
	p := cancellation.New()
	c := cancellation.New(p.Token())
	c.Cancel()
	if p.Token().IsCanceled() {
		t.Error("canceling a child canceled the parent")
	}
}

func TestLinkedStdlibParent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	s := cancellation.New(ctx)
	cancel(errWhy)
	<-s.Token().Done()
	if s.Token().Err() != context.Canceled || s.Token().Cause() != errWhy {
		t.Errorf("Err, Cause = %v, %v", s.Token().Err(), s.Token().Cause())
	}
}

func TestLinkedParentDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := cancellation.New()
		p.CancelAfter(time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c := cancellation.New(ctx, p.Token())
		time.Sleep(time.Second)
		synctest.Wait()
		if c.Token().Err() != context.DeadlineExceeded || c.Token().Cause() != context.DeadlineExceeded {
			t.Errorf("child of timed-out parent: Err, Cause = %v, %v", c.Token().Err(), c.Token().Cause())
		}
	})
}

func TestLinkedAlreadyDone(t *testing.T) {
	t.Parallel()
	p := cancellation.New()
	p.CancelCause(errWhy)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errWhy)
	for name, parent := range map[string]context.Context{"token": p.Token(), "context": ctx} {
		live := cancellation.New()
		s := cancellation.New(live.Token(), parent)
		if !s.Token().IsCanceled() || s.Token().Cause() != errWhy {
			t.Errorf("%s: source with a done parent starts live (cause %v)", name, s.Token().Cause())
		}
		// Its link to the live parent was released: canceling it runs nothing of s.
		ran := false
		s.Token().Register(func() { ran = true }) // runs now, token canceled
		ran = false
		live.Cancel()
		if ran {
			t.Errorf("%s: callback ran again", name)
		}
	}
}

func TestLinkedManyParents(t *testing.T) {
	t.Parallel()
	for i := range 5 {
		t.Run(fmt.Sprint("cancel parent ", i), func(t *testing.T) {
			t.Parallel()
			var parents []context.Context
			var cancels []context.CancelCauseFunc
			for j := range 5 {
				if j%2 == 0 {
					s := cancellation.New()
					parents = append(parents, s.Token())
					cancels = append(cancels, func(e error) { s.CancelCause(e) })
				} else {
					ctx, cancel := context.WithCancelCause(context.Background())
					parents = append(parents, ctx)
					cancels = append(cancels, cancel)
				}
			}
			c := cancellation.New(parents...)
			cancels[i](errWhy)
			<-c.Token().Done()
			if c.Token().Cause() != errWhy {
				t.Errorf("Cause = %v", c.Token().Cause())
			}
			for j, cancel := range cancels {
				if j != i {
					cancel(errors.New("other"))
				}
			}
			if c.Token().Cause() != errWhy {
				t.Errorf("Cause changed to %v", c.Token().Cause())
			}
		})
	}
}

func TestNeverCanceledParentCostsNothing(t *testing.T) {
	bg := context.Background()
	var zero cancellation.Token
	wo := context.WithoutCancel(context.WithValue(bg, ctxKey("k"), "v"))
	if n := testing.AllocsPerRun(100, func() { cancellation.New(bg, zero).Cancel() }); n > 1 {
		t.Errorf("New(Background, Token{}): %v allocs, want 1 (the Source)", n)
	}
	s := cancellation.New(wo)
	if s.Token().Value(ctxKey("k")) != "v" {
		t.Error("values of a non-cancelable first parent lost")
	}
}

// Rule 7: nothing of a canceled child or a stopped registration stays
// reachable from a long-lived parent.
func TestLinksReleased(t *testing.T) {
	p := cancellation.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ptok := p.Token()
	churn := func(n int) {
		for range n {
			c := cancellation.New(ptok, ctx)
			c.Token().Register(func() {})
			c.Cancel()
			r := ptok.Register(func() {})
			r.Stop()
			cc, ccancel := context.WithCancel(ptok)
			_ = cc
			ccancel()
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	churn(1000)
	before := heap()
	churn(100_000)
	after := heap()
	// 100k children of >100 B each would be >10 MB if retained.
	if after > before+1<<20 {
		t.Errorf("heap grew from %d to %d bytes after 100k canceled children", before, after)
	}
	runtime.KeepAlive(p)
}

// Rule 8: timers (fake time with synctest).
func TestCancelAfter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cancellation.New()
		tok := s.Token()
		start := time.Now()
		s.CancelAfter(time.Second)
		if d, ok := tok.Deadline(); !ok || !d.Equal(start.Add(time.Second)) {
			t.Errorf("Deadline = %v, %v", d, ok)
		}
		<-tok.Done()
		if el := time.Since(start); el != time.Second {
			t.Errorf("canceled after %v, want 1s", el)
		}
		if tok.Err() != context.DeadlineExceeded || tok.Cause() != context.DeadlineExceeded {
			t.Errorf("Err, Cause = %v, %v", tok.Err(), tok.Cause())
		}
	})
}

func TestCancelAfterRearm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		first time.Duration
		then  time.Duration // re-armed after 100ms
		want  time.Duration // from start
	}{
		{"later", time.Second, 3 * time.Second, 3100 * time.Millisecond},
		{"earlier", 3 * time.Second, time.Second, 1100 * time.Millisecond},
		{"same", time.Second, 900 * time.Millisecond, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := cancellation.New()
				start := time.Now()
				s.CancelAfter(tc.first)
				time.Sleep(100 * time.Millisecond)
				s.CancelAfter(tc.then)
				if d, _ := s.Token().Deadline(); d.Sub(start) != tc.want {
					t.Errorf("Deadline moved to +%v, want +%v", d.Sub(start), tc.want)
				}
				<-s.Token().Done()
				if el := time.Since(start); el != tc.want {
					t.Errorf("canceled after %v, want %v", el, tc.want)
				}
			})
		})
	}
}

func TestCancelAfterNonPositiveIsSynchronous(t *testing.T) {
	t.Parallel()
	for _, arm := range []func(*cancellation.Source){
		func(s *cancellation.Source) { s.CancelAfter(0) },
		func(s *cancellation.Source) { s.CancelAfter(-time.Second) },
		func(s *cancellation.Source) { s.SetDeadline(time.Now().Add(-time.Second)) },
	} {
		s := cancellation.New()
		ran := false
		s.Token().Register(func() { ran = true })
		arm(s)
		if !ran || s.Token().Err() != context.DeadlineExceeded {
			t.Errorf("not canceled synchronously: ran=%v err=%v", ran, s.Token().Err())
		}
	}
}

func TestCancelAfterCause(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cancellation.New()
		s.CancelAfterCause(time.Second, errWhy)
		<-s.Token().Done()
		if s.Token().Err() != context.DeadlineExceeded || s.Token().Cause() != errWhy || context.Cause(s.Token()) != errWhy {
			t.Errorf("Err, Cause = %v, %v", s.Token().Err(), s.Token().Cause())
		}
		// Re-arming replaces the cause.
		s2 := cancellation.New()
		s2.SetDeadlineCause(time.Now().Add(time.Second), errWhy)
		s2.CancelAfter(2 * time.Second)
		<-s2.Token().Done()
		if s2.Token().Cause() != context.DeadlineExceeded {
			t.Errorf("re-armed without a cause: Cause = %v", s2.Token().Cause())
		}
		// Non-positive: synchronous, with the cause.
		s3 := cancellation.New()
		s3.CancelAfterCause(0, errWhy)
		if s3.Token().Err() != context.DeadlineExceeded || s3.Token().Cause() != errWhy {
			t.Errorf("CancelAfterCause(0): Err, Cause = %v, %v", s3.Token().Err(), s3.Token().Cause())
		}
		// A child of a timed-out parent gets both.
		p := cancellation.New()
		c := cancellation.New(p.Token())
		p.SetDeadlineCause(time.Now().Add(time.Millisecond), errWhy)
		<-c.Token().Done()
		if c.Token().Err() != context.DeadlineExceeded || c.Token().Cause() != errWhy {
			t.Errorf("child: Err, Cause = %v, %v", c.Token().Err(), c.Token().Cause())
		}
	})
}

func TestDeadlineOfAlreadyDoneParent(t *testing.T) {
	t.Parallel()
	dl := time.Now().Add(-time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	s := cancellation.New(ctx)
	if !s.Token().IsCanceled() || s.Token().Err() != context.DeadlineExceeded {
		t.Fatalf("Err = %v", s.Token().Err())
	}
	if d, ok := s.Token().Deadline(); !ok || !d.Equal(dl) {
		t.Errorf("Deadline = %v, %v; want the done parent's %v", d, ok, dl)
	}
}

func TestSetDeadlineZeroDisarms(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cancellation.New()
		s.SetDeadline(time.Now().Add(time.Second))
		s.SetDeadline(time.Time{})
		if _, ok := s.Token().Deadline(); ok {
			t.Error("Deadline still set after disarm")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if s.Token().IsCanceled() {
			t.Error("disarmed timer canceled the source")
		}
		s.SetDeadline(time.Now().Add(time.Second)) // re-arm after disarm works
		<-s.Token().Done()
	})
}

func TestDeadlineEarliestOfParents(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		p := cancellation.New()
		p.SetDeadline(now.Add(5 * time.Second))
		ctx, cancel := context.WithDeadline(context.Background(), now.Add(3*time.Second))
		defer cancel()
		c := cancellation.New(p.Token(), ctx)
		if d, ok := c.Token().Deadline(); !ok || !d.Equal(now.Add(3*time.Second)) {
			t.Errorf("Deadline = %v, want the context parent's", d)
		}
		p.SetDeadline(now.Add(2 * time.Second)) // parent moves earlier
		if d, _ := c.Token().Deadline(); !d.Equal(now.Add(2 * time.Second)) {
			t.Errorf("Deadline = %v, want the Token parent's current one", d)
		}
		c.SetDeadline(now.Add(time.Second))
		if d, _ := c.Token().Deadline(); !d.Equal(now.Add(time.Second)) {
			t.Errorf("Deadline = %v, want own", d)
		}
		c.Cancel()
		p.Cancel()
	})
}

func TestTimerCallbacksRunOnTimer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cancellation.New()
		child := cancellation.New(s.Token())
		var n atomic.Int32
		child.Token().Register(func() { n.Add(1) })
		s.CancelAfter(time.Millisecond)
		<-child.Token().Done()
		synctest.Wait()
		if n.Load() != 1 || child.Token().Err() != context.DeadlineExceeded {
			t.Errorf("n=%d err=%v", n.Load(), child.Token().Err())
		}
	})
}

// Rule 9: TryReset.
func TestTryReset(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cancellation.New()
		tok := s.Token()
		ran := false
		r := tok.Register(func() { ran = true })
		s.CancelAfter(time.Second)
		if !s.TryReset() {
			t.Fatal("TryReset of a live source = false")
		}
		if r.Stop() {
			t.Error("Stop of a dropped registration = true")
		}
		if _, ok := tok.Deadline(); ok {
			t.Error("timer still armed after TryReset")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if tok.IsCanceled() {
			t.Fatal("TryReset did not disarm the timer")
		}
		r2 := tok.Register(func() {})
		s.Cancel()
		if ran {
			t.Error("dropped registration ran")
		}
		if r2.Stop() {
			t.Error("registration after reset did not run")
		}
		if s.TryReset() {
			t.Error("TryReset of a canceled source = true")
		}
	})
}

func TestTryResetAfterTimerFired(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cancellation.New()
		s.CancelAfter(time.Second)
		time.Sleep(time.Second) // the deadline has passed, whatever the timer goroutine did
		if s.TryReset() {
			t.Error("TryReset after the deadline = true")
		}
		<-s.Token().Done()
	})
}

func TestRaceTryResetVsCancel(t *testing.T) {
	t.Parallel()
	for range 3000 {
		s := cancellation.New()
		var ran atomic.Bool
		r := s.Token().Register(func() { ran.Store(true) })
		var reset, canceled bool
		var wg sync.WaitGroup
		wg.Go(func() { reset = s.TryReset() })
		wg.Go(func() { canceled = s.Cancel() })
		wg.Wait()
		if !canceled {
			t.Fatal("Cancel = false")
		}
		// Either TryReset won (f dropped) or Cancel did (f ran, TryReset false).
		if reset == ran.Load() {
			t.Fatalf("TryReset=%v and f ran=%v", reset, ran.Load())
		}
		if r.Stop() {
			t.Fatal("Stop = true after TryReset/Cancel")
		}
	}
}

// Rule 10: values.
type ctxKey string

func TestValuesFromFirstParent(t *testing.T) {
	t.Parallel()
	a := context.WithValue(context.Background(), ctxKey("a"), "from a")
	b := context.WithValue(context.Background(), ctxKey("b"), "from b")
	s := cancellation.New(a, b)
	if s.Token().Value(ctxKey("a")) != "from a" || s.Token().Value(ctxKey("b")) != nil {
		t.Error("values do not come from the first parent only")
	}
	// Through Token parents, and a derived context.
	c := cancellation.New(s.Token(), b)
	d := cancellation.New(c.Token())
	if d.Token().Value(ctxKey("a")) != "from a" {
		t.Error("values do not flow through Token parents")
	}
	vc := context.WithValue(d.Token(), ctxKey("c"), 3)
	if vc.Value(ctxKey("a")) != "from a" || vc.Value(ctxKey("c")) != 3 {
		t.Error("context.WithValue over a Token lost values")
	}
}

// Rule 11: context interop.
func TestContextInterop(t *testing.T) {
	s := cancellation.New()
	tok := s.Token()
	before := runtime.NumGoroutine()
	var children []context.Context
	var cancels []context.CancelFunc
	for range 100 {
		c, cancel := context.WithCancel(tok)
		children = append(children, c)
		cancels = append(cancels, cancel)
		c2, cancel2 := context.WithTimeout(tok, time.Hour)
		children = append(children, c2)
		cancels = append(cancels, cancel2)
	}
	afterFuncRan := make(chan struct{})
	stop := context.AfterFunc(tok, func() { close(afterFuncRan) })
	defer stop()
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("stdlib children started %d goroutines", n-before)
	}
	s.CancelCause(errWhy)
	for _, c := range children { // canceled before Cancel returned
		if c.Err() != context.Canceled || context.Cause(c) != errWhy {
			t.Fatalf("child Err, Cause = %v, %v", c.Err(), context.Cause(c))
		}
	}
	<-afterFuncRan
	for _, c := range cancels {
		c()
	}
	if !errors.Is(tok.Err(), context.Canceled) {
		t.Error("errors.Is(Err, Canceled) = false")
	}
	// A stdlib child of a canceled token, and context.Cause through a value context.
	c, cancel := context.WithCancel(context.WithValue(tok, ctxKey("k"), 1))
	defer cancel()
	if context.Cause(c) != errWhy {
		t.Errorf("Cause through WithValue = %v", context.Cause(c))
	}
}

func TestContextInteropDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cancellation.New()
		s.CancelAfter(time.Second)
		c, cancel := context.WithCancel(s.Token())
		defer cancel()
		<-c.Done()
		if c.Err() != context.DeadlineExceeded || context.Cause(c) != context.DeadlineExceeded {
			t.Errorf("Err, Cause = %v, %v", c.Err(), context.Cause(c))
		}
	})
}

func TestAfterFuncOnCanceledRunsInGoroutine(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	s.Cancel()
	ran := make(chan struct{})
	stop := s.Token().AfterFunc(func() { close(ran) })
	<-ran
	if stop() {
		t.Error("stop = true after f ran")
	}
	// The context package calls AfterFunc with its own lock held; this must not deadlock.
	c, cancel := context.WithCancel(s.Token())
	defer cancel()
	<-c.Done()
}

func TestAfterFuncStop(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	stop := s.Token().AfterFunc(func() { t.Error("stopped AfterFunc ran") })
	if !stop() || stop() {
		t.Error("stop: want true then false")
	}
	s.Cancel()
}

func TestAllocs(t *testing.T) {
	p := cancellation.New()
	tok := p.Token()
	var ctx context.Context
	for _, tc := range []struct {
		name string
		max  float64
		f    func()
	}{
		{"Token to context.Context", 0, func() { ctx = tok }},
		{"IsCanceled", 0, func() { _ = tok.IsCanceled() }},
		{"Err", 0, func() { _ = tok.Err() }},
		{"Register+Stop", 0, func() { tok.Register(func() {}).Stop() }},
		{"CancelAfter re-arm", 0, func() { p.CancelAfter(time.Hour) }},
		{"CancelAfterCause re-arm, same cause", 0, func() { p.CancelAfterCause(time.Hour, errWhy) }},
		{"New(token)+Cancel", 1, func() { cancellation.New(tok).Cancel() }},
		{"New(a, b)+Cancel", 2, func() { cancellation.New(tok, tok).Cancel() }},
	} {
		tok.Register(func() {}).Stop() // warm the node pool
		p.CancelAfter(time.Hour)
		if n := testing.AllocsPerRun(200, tc.f); n > tc.max {
			t.Errorf("%s: %v allocs, want <= %v", tc.name, n, tc.max)
		}
	}
	_ = ctx
	p.Cancel()
}

// Rule 12: Sleep.
func TestSleep(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cancellation.New()
		start := time.Now()
		if err := cancellation.Sleep(s.Token(), time.Second); err != nil || time.Since(start) != time.Second {
			t.Errorf("Sleep = %v after %v", err, time.Since(start))
		}
		if err := cancellation.Sleep(context.Background(), time.Second); err != nil {
			t.Errorf("Sleep(Background) = %v", err)
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			s.CancelCause(errWhy)
		}()
		start = time.Now()
		if err := cancellation.Sleep(s.Token(), time.Hour); err != context.Canceled || time.Since(start) != 300*time.Millisecond {
			t.Errorf("Sleep = %v after %v; want Canceled after 300ms", err, time.Since(start))
		}
		start = time.Now()
		if err := cancellation.Sleep(s.Token(), time.Hour); err != context.Canceled || time.Since(start) != 0 {
			t.Errorf("Sleep on a done token = %v after %v", err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := cancellation.Sleep(ctx, time.Hour); err != context.DeadlineExceeded {
			t.Errorf("Sleep(ctx with timeout) = %v", err)
		}
		if err := cancellation.Sleep(s.Token(), 0); err != context.Canceled {
			t.Errorf("Sleep(done, 0) = %v", err)
		}
	})
}

// Rule 13: every method is safe for concurrent use.
func TestRaceEverything(t *testing.T) {
	t.Parallel()
	for range 200 {
		p := cancellation.New()
		s := cancellation.New(p.Token())
		tok := s.Token()
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				for i := range 20 {
					switch (g + i) % 10 {
					case 0:
						r := tok.Register(func() {})
						r.Stop()
					case 1:
						_, _ = tok.Deadline()
						_ = tok.Value(ctxKey("x"))
					case 2:
						s.CancelAfter(time.Hour)
					case 3:
						s.TryReset()
					case 4:
						_ = tok.Done()
						_ = tok.Err()
						_ = tok.Cause()
					case 5:
						c, cancel := context.WithCancel(tok)
						_ = context.Cause(c)
						cancel()
					case 6:
						c := cancellation.New(tok, p.Token())
						c.Cancel()
					case 7:
						s.SetDeadline(time.Time{})
					case 8:
						if i > 15 {
							p.Cancel()
						}
					case 9:
						r := tok.Register(func() {})
						if !r.Stop() {
							r.Wait()
						}
					}
				}
			})
		}
		wg.Wait()
		s.Cancel()
		p.Cancel()
		// Besides what the race detector checks: the end state is consistent.
		if !tok.IsCanceled() || !closed(tok.Done()) || tok.Err() == nil {
			t.Fatal("source not canceled after Cancel")
		}
		if n := cancellation.ListLen(s); n != 0 {
			t.Fatalf("canceled source still lists %d nodes", n)
		}
		if r := tok.Register(func() {}); r.Stop() {
			t.Fatal("Stop of a registration on a canceled token = true")
		}
	}
}

// Rule 13 (in part): every exported identifier is documented.
func TestExportedIdentifiersDocumented(t *testing.T) {
	t.Parallel()
	doccheck.Check(t, ".")
}

// Rule 7: a source canceled while New is still linking it releases every
// link, including the ones made after the cancellation.
func TestRaceNewVsParentCancel(t *testing.T) {
	t.Parallel()
	b := cancellation.New() // long-lived
	for range 2000 {
		a := cancellation.New()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var s *cancellation.Source
		wg.Go(func() { s = cancellation.New(a.Token(), ctx, b.Token()) })
		wg.Go(func() { a.Cancel() })
		wg.Go(cancel)
		wg.Wait()
		<-s.Token().Done()
		// If ctx canceled s, that cancellation runs on a goroutine of the
		// context package, which releases the links just after closing Done.
		for i := 0; cancellation.ListLen(b) != 0; i++ {
			if dl, ok := t.Deadline(); (ok && time.Until(dl) < 5*time.Second) || i > 1e6 {
				t.Fatalf("long-lived parent still holds %d links", cancellation.ListLen(b))
			}
			runtime.Gosched()
		}
	}
}

func TestTryResetKeepsChildLinks(t *testing.T) {
	t.Parallel()
	p := cancellation.New()
	c := cancellation.New(p.Token())
	p.Token().Register(func() {})
	if !p.TryReset() {
		t.Fatal("TryReset = false")
	}
	if n := cancellation.ListLen(p); n != 1 {
		t.Errorf("after TryReset the list holds %d nodes, want the child link only", n)
	}
	p.Cancel()
	if !c.Token().IsCanceled() {
		t.Error("child not canceled after its parent was reset and canceled")
	}
}

func TestStopReleasesNode(t *testing.T) {
	t.Parallel()
	p := cancellation.New()
	for range 100 {
		p.Token().Register(func() {}).Stop()
		c := cancellation.New(p.Token())
		c.Cancel()
	}
	if n := cancellation.ListLen(p); n != 0 {
		t.Errorf("list holds %d nodes after stops and child cancels", n)
	}
}

package cancellation_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-cancellation/cancellation"
)

// childEnv names the test that a re-run of this test binary is for.
const childEnv = "CANCELLATION_TEST_CHILD"

// inChild reports whether this process is the re-run of the test binary
// made by runChild for the calling test.
func inChild(t *testing.T) bool {
	return os.Getenv(childEnv) == t.Name()
}

// runChild runs the test named name in a new process of this test binary,
// with env added, and fails t if it does not pass within bound (or before
// t's own deadline).
func runChild(t *testing.T, name string, bound time.Duration, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if dl, ok := t.Deadline(); ok {
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, dl.Add(-5*time.Second))
		defer c2()
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(append(os.Environ(), childEnv+"="+name), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %v (it hangs):\n%s", name, bound, out)
	}
	if err != nil {
		t.Fatalf("%s failed: %v\n%s", name, err, out)
	}
	return string(out)
}

// Defect 1: IsCanceled never spins on the progress of a canceling goroutine.
// With one P and no asynchronous preemption, a reader that spun while the
// canceler was descheduled inside Cancel would never give the canceler the
// CPU back: the child process would hang.
func TestIsCanceledNeverSpins(t *testing.T) {
	t.Parallel()
	runChild(t, "TestIsCanceledNeverSpinsChild", 30*time.Second, "GOMAXPROCS=1", "GODEBUG=asyncpreemptoff=1")
}

func TestIsCanceledNeverSpinsChild(t *testing.T) {
	if !inChild(t) {
		t.Skip("run by TestIsCanceledNeverSpins")
	}
	var cur atomic.Pointer[cancellation.Source]
	stop := make(chan struct{})
	var checks atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if s := cur.Load(); s != nil {
				s.Token().IsCanceled()
				checks.Add(1)
			}
			runtime.Gosched()
		}
	})
	// The canceler never blocks: it is descheduled only by the scheduler's
	// preemption requests (every 10ms), some of which land inside Cancel's
	// publishing phase (Done exists and a timer is armed, so that phase
	// closes a channel and stops a timer).
	end := time.Now().Add(time.Second)
	n := 0
	for ; time.Now().Before(end); n++ {
		s := cancellation.New()
		s.Token().Done()
		s.CancelAfter(time.Hour)
		cur.Store(s)
		s.Cancel()
	}
	close(stop)
	wg.Wait()
	t.Logf("%d cancellations, %d concurrent checks", n, checks.Load())
}

// within fails t unless c is closed before t's deadline (less a margin for
// the report) or a minute, whichever is sooner.
func within(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	bound := 30 * time.Second
	if dl, ok := t.Deadline(); ok && time.Until(dl)-5*time.Second < bound {
		bound = time.Until(dl) - 5*time.Second
	}
	tm := time.NewTimer(bound)
	defer tm.Stop()
	select {
	case <-c:
	case <-tm.C:
		t.Fatalf("%s: not within %v", what, bound)
	}
}

// Defect 2: a callback that calls runtime.Goexit (as t.FailNow does) ends
// its goroutine, but the cancellation is finished first, on every path.
func TestGoexitInCallbackFinishesCancellation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// setup returns the token under test and the trigger, run on a
		// goroutine of its own.
		setup func() (cancellation.Token, func())
	}{
		{"Cancel", func() (cancellation.Token, func()) {
			s := cancellation.New()
			return s.Token(), func() { s.Cancel() }
		}},
		{"timer", func() (cancellation.Token, func()) {
			s := cancellation.New()
			return s.Token(), func() { s.CancelAfter(time.Millisecond) }
		}},
		{"Token parent", func() (cancellation.Token, func()) {
			p := cancellation.New()
			return cancellation.New(p.Token()).Token(), func() { p.Cancel() }
		}},
		{"context parent", func() (cancellation.Token, func()) {
			ctx, cancel := context.WithCancel(context.Background())
			return cancellation.New(ctx).Token(), cancel
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, trigger := tc.setup()
			lastRan := make(chan struct{})
			tok.Register(func() { close(lastRan) }) // runs last
			child := cancellation.New(tok)
			stdChild, stdCancel := context.WithCancel(tok)
			defer stdCancel()
			exiter := tok.Register(func() { runtime.Goexit() })
			firstRan := false
			tok.Register(func() { firstRan = true })

			triggered := make(chan struct{})
			go func() {
				defer close(triggered)
				trigger()
			}()
			within(t, triggered, "trigger")
			within(t, lastRan, "the callback after the exiting one")
			within(t, child.Token().Done(), "the linked child")
			within(t, stdChild.Done(), "the context child")
			waited := make(chan struct{})
			go func() {
				defer close(waited)
				exiter.Wait()
			}()
			within(t, waited, "Wait on the exiting callback's registration")
			if !firstRan || !tok.IsCanceled() {
				t.Errorf("firstRan=%v IsCanceled=%v", firstRan, tok.IsCanceled())
			}
			if exiter.Stop() {
				t.Error("Stop of the callback that ran = true")
			}
		})
	}
}

// Defect 2, nested: a Goexit in a grandchild's callback still lets the
// parent's other children and callbacks be canceled and run.
func TestGoexitInGrandchildCallback(t *testing.T) {
	t.Parallel()
	p := cancellation.New()
	var order []string
	var mu sync.Mutex
	note := func(s string) func() {
		return func() { mu.Lock(); order = append(order, s); mu.Unlock() }
	}
	p.Token().Register(note("p-last"))
	c := cancellation.New(p.Token())
	c.Token().Register(note("c-last"))
	g := cancellation.New(c.Token())
	g.Token().Register(note("g-last"))
	g.Token().Register(func() { runtime.Goexit() })
	c.Token().Register(note("c-first"))
	sibling := cancellation.New(p.Token())
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		p.Cancel()
	}()
	within(t, exited, "Cancel's goroutine")
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(order, ","); got != "c-first,g-last,c-last,p-last" {
		t.Errorf("order = %s", got)
	}
	if !sibling.Token().IsCanceled() || !g.Token().IsCanceled() {
		t.Error("a child was left live")
	}
}

// Defect 3: a deadline so far ahead that now+d overflows saturates: it
// never fires, Deadline reports what was asked, and the Source stays usable.
func TestFarDeadlinesSaturate(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	before := time.Now()
	s.CancelAfter(math.MaxInt64)
	if d, ok := s.Token().Deadline(); !ok || d.Before(before.Add(290*365*24*time.Hour)) {
		t.Errorf("CancelAfter(MaxInt64): Deadline = %v, %v; want about %v", d, ok, before.Add(math.MaxInt64))
	}
	if !s.TryReset() {
		t.Error("TryReset after CancelAfter(MaxInt64) = false")
	}
	s.CancelAfter(math.MaxInt64)
	s.CancelAfter(20 * time.Millisecond)
	within(t, s.Token().Done(), "CancelAfter(20ms) after CancelAfter(MaxInt64)")

	s2 := cancellation.New()
	defer s2.Cancel()
	s2.CancelAfter(math.MaxInt64)
	ctx, cancel := context.WithTimeout(s2.Token(), 20*time.Millisecond)
	defer cancel()
	within(t, ctx.Done(), "context.WithTimeout(tok, 20ms) under CancelAfter(MaxInt64)")
	if ctx.Err() != context.DeadlineExceeded || s2.Token().IsCanceled() {
		t.Errorf("child Err = %v, parent canceled = %v", ctx.Err(), s2.Token().IsCanceled())
	}

	s3 := cancellation.New()
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	s3.SetDeadline(far)
	if d, ok := s3.Token().Deadline(); !ok || !d.Equal(far) {
		t.Errorf("SetDeadline(9999): Deadline = %v, %v", d, ok)
	}
	if s3.Token().IsCanceled() || !s3.TryReset() {
		t.Error("SetDeadline(9999): canceled, or TryReset = false")
	}
	s3.SetDeadline(far)
	s3.SetDeadline(time.Now().Add(20 * time.Millisecond))
	within(t, s3.Token().Done(), "SetDeadline(now+20ms) after SetDeadline(9999)")
}

// Defect 4: a deadline without a monotonic reading is a wall-clock time,
// measured against the wall clock when it is set (as context.WithDeadline
// does), whatever the wall clock did since the process started.
func TestWallClockDeadline(t *testing.T) { // not parallel: it moves the package's wall clock
	t.Run("clock stepped forward", func(t *testing.T) {
		defer cancellation.SetWallClockOffset(time.Hour)()
		s := cancellation.New()
		at := time.Now().Add(time.Hour + 200*time.Millisecond).UTC() // wall clock + 200ms
		start := time.Now()
		s.SetDeadline(at)
		if d, ok := s.Token().Deadline(); !ok || !d.Equal(at) {
			t.Errorf("Deadline = %v, %v; want %v", d, ok, at)
		}
		within(t, s.Token().Done(), "a wall-clock deadline 200ms ahead") // not an hour
		if el := time.Since(start); el < 150*time.Millisecond {
			t.Errorf("fired after %v, want about 200ms", el)
		}
	})
	t.Run("clock stepped back", func(t *testing.T) {
		defer cancellation.SetWallClockOffset(-time.Hour)()
		s := cancellation.New()
		defer s.Cancel()
		s.SetDeadline(time.Unix(0, time.Now().Add(-time.Hour+10*time.Second).UnixNano())) // wall clock + 10s
		if s.Token().IsCanceled() {
			t.Error("a wall-clock deadline 10s ahead fired at once")
		}
	})
}

// Defect 8: the Source's own deadline is reported only while armed: not
// after Cancel, nor after the timer fired. Parents' deadlines still are.
func TestDeadlineAfterCancellation(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cancellation.New()
		s.CancelAfter(time.Hour)
		s.Cancel()
		if d, ok := s.Token().Deadline(); ok {
			t.Errorf("after Cancel: Deadline = %v", d)
		}
		s2 := cancellation.New()
		s2.CancelAfter(time.Second)
		<-s2.Token().Done()
		if d, ok := s2.Token().Deadline(); ok {
			t.Errorf("after the timer fired: Deadline = %v", d)
		}
		dl := time.Now().Add(time.Second)
		ctx, cancel := context.WithDeadline(context.Background(), dl)
		defer cancel()
		c := cancellation.New(ctx)
		c.CancelAfter(time.Hour)
		<-c.Token().Done()
		if d, ok := c.Token().Deadline(); !ok || !d.Equal(dl) {
			t.Errorf("child of a timed-out context: Deadline = %v, %v; want %v", d, ok, dl)
		}
	})
}

// Defect 5 (documented on Token.Deadline): a stdlib child made while the
// Token's deadline is sooner has no timer of its own, so it outlives its
// timeout when the Token's timer is re-armed later; New(tok)+CancelAfter
// keeps its own timer.
func TestChildTimeoutUnderRearmedToken(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := cancellation.New()
		defer p.Cancel()
		p.CancelAfter(time.Second)
		tok := p.Token()
		std, cancel := context.WithTimeout(tok, 5*time.Second)
		defer cancel()
		own := cancellation.New(tok)
		defer own.Cancel()
		own.CancelAfter(5 * time.Second)
		start := time.Now()
		p.CancelAfter(time.Hour) // moves later
		<-own.Token().Done()
		if el := time.Since(start); el != 5*time.Second || own.Token().Err() != context.DeadlineExceeded {
			t.Errorf("New(tok)+CancelAfter(5s): done after %v with %v", el, own.Token().Err())
		}
		time.Sleep(5 * time.Second)
		if std.Err() != nil {
			t.Error("the documented limitation is gone: update Token.Deadline's doc and docs/cancellation.md")
		}
	})
}

// Defect 7: PanicError's message shows each value and where it panicked.
func TestPanicErrorShowsWhere(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	var line int
	s.Token().Register(func() {
		_, _, line, _ = runtime.Caller(0)
		panic("second")
	})
	s.Token().Register(func() {
		var p *struct{ n int }
		p.n = 1 // a runtime error
	})
	var msg string
	func() {
		defer func() {
			pe, ok := recover().(*cancellation.PanicError)
			if !ok {
				t.Fatal("no *PanicError")
			}
			msg = pe.Error()
		}()
		s.Cancel()
	}()
	t.Log(msg)
	for _, want := range []string{
		"cancellation: 2 recovered panics: ",
		"invalid memory address or nil pointer dereference [at github.com/go-cancellation/cancellation_test.TestPanicErrorShowsWhere.func2 (",
		fmt.Sprintf("second [at github.com/go-cancellation/cancellation_test.TestPanicErrorShowsWhere.func1 (%s:%d)", callerFile(), line+1),
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Error() = %q\nlacks %q", msg, want)
		}
	}
}

func callerFile() string {
	_, file, _, _ := runtime.Caller(1)
	return file
}

// Defect 7: a panic in a timer's callback has no caller; the crash output
// names the callback's line.
func TestTimerCallbackPanicCrashOutput(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestTimerCallbackPanicCrashOutputChild$")
	cmd.Env = append(os.Environ(), childEnv+"=TestTimerCallbackPanicCrashOutputChild")
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("the child did not crash (err %v):\n%s", err, out)
	}
	want := fmt.Sprintf("panic: cancellation: recovered panic: boom [at github.com/go-cancellation/cancellation_test.TestTimerCallbackPanicCrashOutputChild.func1 (%s:", callerFile())
	if !strings.Contains(string(out), want) {
		t.Errorf("crash output lacks %q:\n%s", want, out)
	}
}

func TestTimerCallbackPanicCrashOutputChild(t *testing.T) {
	if !inChild(t) {
		t.Skip("run by TestTimerCallbackPanicCrashOutput")
	}
	s := cancellation.New()
	s.Token().Register(func() { panic("boom") })
	s.CancelAfter(time.Millisecond)
	select {} // the timer's goroutine crashes the process
}

// Defect 8: with GODEBUG=panicnil=1, recover returns nil for panic(nil);
// the callback's panic is still reported, as a *runtime.PanicNilError.
func TestPanicNilWithPanicnil1(t *testing.T) {
	t.Parallel()
	runChild(t, "TestPanicNilWithPanicnil1Child", 30*time.Second, "GODEBUG=panicnil=1")
}

func TestPanicNilWithPanicnil1Child(t *testing.T) {
	if !inChild(t) {
		t.Skip("run by TestPanicNilWithPanicnil1")
	}
	s := cancellation.New()
	ran := false
	s.Token().Register(func() { ran = true })
	s.Token().Register(func() { panic(nil) })
	defer func() {
		pe, ok := recover().(*cancellation.PanicError)
		if !ok || len(pe.Recovered) != 1 {
			t.Fatalf("recovered %v, want a *PanicError with one panic", pe)
		}
		var pn *runtime.PanicNilError
		if _, ok := pe.Recovered[0].Value.(*runtime.PanicNilError); !ok || !errors.As(pe, &pn) {
			t.Errorf("Value = %#v, want a *runtime.PanicNilError", pe.Recovered[0].Value)
		}
		if !ran {
			t.Error("the next callback did not run")
		}
	}()
	s.Cancel()
	t.Error("Cancel returned")
}

// Defect 6: New recognizes a Token beneath context.WithValue or a struct
// that embeds it (same Done channel) and links to it directly: no goroutine,
// canceled inside the Token's Cancel, values from the wrapper.
func TestNewLinksWrappedToken(t *testing.T) {
	p := cancellation.New()
	type embedded struct{ cancellation.Token }
	wrapped := []context.Context{
		context.WithValue(p.Token(), ctxKey("k"), "v"),
		embedded{p.Token()},
		context.WithValue(embedded{p.Token()}, ctxKey("k"), "v"),
	}
	before := runtime.NumGoroutine()
	var children []*cancellation.Source
	for range 100 {
		for _, w := range wrapped {
			children = append(children, cancellation.New(w))
			children = append(children, cancellation.New(w, context.Background()))
		}
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("New(wrapped token) started %d goroutines", n-before)
	}
	if v := children[0].Token().Value(ctxKey("k")); v != "v" {
		t.Errorf("Value through the wrapper = %v", v)
	}
	if n := cancellation.ListLen(p); n != len(children) {
		t.Errorf("parent holds %d links, want %d", n, len(children))
	}
	p.CancelCause(errWhy)
	for _, c := range children { // canceled before CancelCause returned
		if c.Token().Err() != context.Canceled || c.Token().Cause() != errWhy {
			t.Fatalf("child Err, Cause = %v, %v", c.Token().Err(), c.Token().Cause())
		}
	}
	// A context derived from the Token is not the Token: it keeps its own
	// cancellation (through the context package).
	q := cancellation.New()
	defer q.Cancel()
	d, cancel := context.WithCancel(q.Token())
	c := cancellation.New(d)
	cancel()
	within(t, c.Token().Done(), "child of a derived context")
	if q.Token().IsCanceled() {
		t.Error("canceling the derived context canceled the Token")
	}
}

// Defect 8: the context.Cause bridge is built only for a canceled source
// with a cause of its own, and only when asked for.
func TestCauseBridgeOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	c, cancel := context.WithCancel(s.Token())
	defer cancel()
	if context.Cause(s.Token()) != nil || context.Cause(c) != nil {
		t.Error("live: context.Cause != nil")
	}
	if cancellation.HasBridge(s) {
		t.Error("a live source with a stdlib child built a bridge")
	}
	s.Cancel()
	if context.Cause(s.Token()) != context.Canceled || context.Cause(c) != context.Canceled || cancellation.HasBridge(s) {
		t.Error("Cancel: wrong cause, or a bridge built for the default cause")
	}
	s2 := cancellation.New()
	c2, cancel2 := context.WithCancel(context.WithValue(s2.Token(), ctxKey("k"), 1))
	defer cancel2()
	s2.CancelCause(errWhy)
	within(t, c2.Done(), "stdlib child of a wrapped token")
	if context.Cause(s2.Token()) != errWhy || context.Cause(c2) != errWhy {
		t.Errorf("Cause = %v, %v", context.Cause(s2.Token()), context.Cause(c2))
	}
}

// Defect 1 keeps the performance target: IsCanceled stays small enough to
// be inlined into the caller's loop.
func TestIsCanceledInlinable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package")
	}
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command(gobin, "build", "-gcflags=-m", "-o", os.DevNull, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "can inline Token.IsCanceled") {
		t.Errorf("Token.IsCanceled is not inlinable:\n%s", out)
	}
}

// Defect 2: several callbacks that call runtime.Goexit, in the source and in
// a child, still let every other callback run.
func TestGoexitTwice(t *testing.T) {
	t.Parallel()
	s := cancellation.New()
	last := make(chan struct{})
	s.Token().Register(func() { close(last) })
	s.Token().Register(func() { runtime.Goexit() })
	c := cancellation.New(s.Token())
	c.Token().Register(func() { runtime.Goexit() })
	s.Token().Register(func() { runtime.Goexit() })
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		s.Cancel()
	}()
	within(t, exited, "Cancel's goroutine")
	within(t, last, "the last callback")
	within(t, c.Token().Done(), "the child")
}

// Defect 2: when one callback calls runtime.Goexit and another panics, the
// panic is not lost: the *PanicError is raised instead of the exit.
func TestGoexitWithPanicRaises(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGoexitWithPanicRaisesChild$")
	cmd.Env = append(os.Environ(), childEnv+"=TestGoexitWithPanicRaisesChild")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "panic: cancellation: recovered panic: boom") {
		t.Errorf("want a crash with the *PanicError (err %v):\n%s", err, out)
	}
}

func TestGoexitWithPanicRaisesChild(t *testing.T) {
	if !inChild(t) {
		t.Skip("run by TestGoexitWithPanicRaises")
	}
	s := cancellation.New()
	s.Token().Register(func() { panic("boom") })
	s.Token().Register(func() { runtime.Goexit() })
	s.Cancel()
}

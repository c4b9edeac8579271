package cancellation_test

import (
	"context"
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

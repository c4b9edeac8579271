package cancellation_test

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
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

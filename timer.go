package cancellation

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// epoch anchors deadlines: they are kept as monotonic nanoseconds since
// epoch, which costs one clock read (time.Since) instead of the two of
// time.Now. Inside a testing/synctest bubble time.Since falls back to the
// bubble's fake clock, which starts in 2000, so monoNow is negative there.
var epoch = time.Now()

func monoNow() int64 { return int64(time.Since(epoch)) }

// never is the deadline of a timer armed so far ahead that the monotonic
// arithmetic would overflow: it never fires.
const never = math.MaxInt64

// wallNow reads the wall clock for deadlines given as a time.Time without a
// monotonic reading; tests replace it to simulate clock steps.
var wallNow = time.Now

// until returns the time from now to the deadline dl (monoNow times),
// saturated rather than overflowing.
func until(dl, now int64) time.Duration {
	d := dl - now
	if d < 0 && dl >= now {
		return math.MaxInt64
	}
	return time.Duration(d)
}

// after returns the monoNow time d after now, or never if that overflows.
func after(now int64, d time.Duration) int64 {
	if dl := now + int64(d); d <= 0 || dl >= now {
		return dl
	}
	return never
}

// A timerState is a Source's timer. Timers are recycled through timerPool:
// most timeouts are canceled before they fire, and re-arming a stopped
// runtime timer costs a fraction of making one.
type timerState struct {
	t        *time.Timer
	src      atomic.Pointer[Source] // the Source it serves
	deadline int64                  // armed deadline (monoNow time, or never); under src.mu
	asked    time.Time              // the deadline as SetDeadline was given it, or as CancelAfter saturated it; else zero
	timerAt  int64                  // when t fires
	cause    *error                 // the cause when the deadline fires (nil: DeadlineExceeded)
	hasDL    bool                   // deadline is armed
	running  bool                   // t is armed or firing
	poolable bool                   // made outside a synctest bubble
}

var timerPool sync.Pool

func (ts *timerState) fire() {
	if s := ts.src.Load(); s != nil {
		s.onTimer(ts)
	}
}

// newTimerState returns a timer for s, armed to fire after d. Inside a
// synctest bubble timers are neither taken from nor returned to the pool,
// so fake and real timers never mix.
func newTimerState(s *Source, now int64, d time.Duration) *timerState {
	poolable := now >= 0
	if poolable {
		if ts, _ := timerPool.Get().(*timerState); ts != nil {
			ts.src.Store(s)
			ts.t.Reset(d)
			return ts
		}
	}
	ts := &timerState{poolable: poolable}
	ts.src.Store(s)
	ts.t = time.AfterFunc(d, ts.fire)
	return ts
}

// disarm clears the deadline; src.mu must be held.
func (ts *timerState) disarm() {
	ts.hasDL = false
	if ts.t.Stop() {
		ts.running = false
	}
	// If Stop failed, onTimer is running or about to; it sees no deadline
	// and clears running.
}

// releaseTimer detaches the timer from the canceled s (its own deadline is
// no longer reported), stops it and recycles it unless it is firing (then
// onTimer may still look at it, and finds s.tm != ts). s.mu must be held.
func (s *Source) releaseTimer(ts *timerState) {
	s.tm = nil
	if ts.running && !ts.t.Stop() {
		return
	}
	if ts.poolable {
		ts.src.Store(nil)
		ts.hasDL, ts.running, ts.cause, ts.asked = false, false, nil, time.Time{}
		timerPool.Put(ts)
	}
}

// reported is the deadline that Token.Deadline reports for ts.
func (ts *timerState) reported() time.Time {
	if !ts.asked.IsZero() {
		return ts.asked
	}
	return epoch.Add(time.Duration(ts.deadline))
}

// CancelAfter arms s's timer to cancel it d from now, with Err and Cause
// context.DeadlineExceeded; it replaces any armed deadline, later or earlier.
// If d <= 0, CancelAfter cancels s synchronously, like [Source.CancelCause].
// A d so large that now+d overflows (math.MaxInt64) means "never": the timer
// never fires and Deadline reports time.Now().Add(d), as context.WithTimeout
// would. On a canceled Source it does nothing.
//
// Re-arming is cheap: it allocates nothing and touches the runtime timer only
// when the deadline moves earlier (a later deadline is noticed when the timer
// fires). CancelAfter blocks only when d <= 0 (see CancelCause).
//
// When the timer fires, the callbacks run on the timer's goroutine: a panic
// there has no caller to go to and crashes the program with a [*PanicError]
// (as a panic in a time.AfterFunc function does). Recover inside a callback
// that may panic.
func (s *Source) CancelAfter(d time.Duration) { s.CancelAfterCause(d, nil) }

// CancelAfterCause is [Source.CancelAfter] with a cause: when the timer
// fires, Err is context.DeadlineExceeded and Cause is cause (as with
// context.WithTimeoutCause); a nil cause means context.DeadlineExceeded.
// Re-arming replaces both the deadline and the cause. It allocates only when
// cause is not nil.
func (s *Source) CancelAfterCause(d time.Duration, cause error) {
	if d <= 0 {
		s.cancelTo(stDeadline, boxCause(stDeadline, cause))
		return
	}
	now := monoNow()
	dl := after(now, d)
	var asked time.Time
	if dl == never {
		asked = time.Now().Add(d) // saturated by package time
	}
	s.arm(now, dl, asked, cause)
}

// SetDeadline arms s's timer to cancel it at t, like [Source.CancelAfter]. A
// t that is not in the future cancels s synchronously; the zero Time disarms
// the timer. Deadline reports t.
//
// A t with a monotonic clock reading (from time.Now) is measured on the
// monotonic clock. A t without one (t.UTC(), time.Unix, time.Parse, a time
// decoded from the wire) is a wall-clock time: it is measured against the
// wall clock now, when SetDeadline is called, and the timer then runs for
// that long, as with context.WithDeadline. A t so far ahead that the
// duration overflows (year 9999) never fires.
func (s *Source) SetDeadline(t time.Time) { s.SetDeadlineCause(t, nil) }

// SetDeadlineCause is [Source.SetDeadline] with a cause, like
// [Source.CancelAfterCause].
func (s *Source) SetDeadlineCause(t time.Time, cause error) {
	if t.IsZero() {
		s.mu.Lock()
		if ts := s.tm; ts != nil && s.live() {
			ts.disarm()
		}
		s.mu.Unlock()
		return
	}
	now := monoNow()
	var dl int64
	if t != t.Round(0) {
		// Monotonic: both t and epoch have a monotonic reading. t.Sub
		// saturates: a far t gives math.MaxInt64, which is never.
		dl = int64(t.Sub(epoch))
	} else {
		// Wall clock: t.Sub uses the wall clock when t has no monotonic
		// reading; saturated at math.MaxInt64.
		dl = after(now, t.Sub(wallNow()))
	}
	if dl <= now {
		s.cancelTo(stDeadline, boxCause(stDeadline, cause))
		return
	}
	s.arm(now, dl, t, cause)
}

// arm arms s's timer for the deadline dl (monoNow time, or never); asked is
// what Deadline reports, if not zero.
func (s *Source) arm(now, deadline int64, asked time.Time, cause error) {
	if !s.live() {
		return
	}
	s.mu.Lock()
	if !s.live() {
		s.mu.Unlock()
		return
	}
	ts := s.tm
	switch {
	case ts == nil:
		ts = newTimerState(s, now, until(deadline, now))
		s.tm = ts
		ts.timerAt, ts.running = deadline, true
	case !ts.running || deadline < ts.timerAt:
		ts.t.Reset(until(deadline, now))
		ts.timerAt, ts.running = deadline, true
	}
	// Otherwise the timer fires before the new deadline and onTimer re-arms
	// it.
	ts.deadline, ts.hasDL, ts.asked = deadline, true, asked
	if cause == nil || cause == context.DeadlineExceeded {
		ts.cause = nil
	} else if ts.cause == nil || !sameError(*ts.cause, cause) {
		// Re-arming with the same cause reuses its box: no allocation.
		ts.cause = boxCause(stDeadline, cause)
	}
	s.mu.Unlock()
}

// sameError reports a == b, and false where comparing them would panic
// (an error of an uncomparable type).
func sameError(a, b error) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

func (s *Source) onTimer(ts *timerState) {
	s.mu.Lock()
	if s.tm != ts || !s.live() || !ts.hasDL {
		if s.tm == ts {
			ts.running = false
		}
		s.mu.Unlock()
		return
	}
	if now := monoNow(); now < ts.deadline {
		ts.t.Reset(until(ts.deadline, now))
		ts.timerAt = ts.deadline
		s.mu.Unlock()
		return
	}
	head, _ := s.cancelLocked(stDeadline, ts.cause)
	s.mu.Unlock()
	// There is no caller to report panics to: this is the timer's goroutine.
	var r cancelRun
	s.finishCancel(head, &r)
	r.raise()
}

package cancellation

import (
	"fmt"
	"strings"
)

// A PanicError is what Cancel panics with when callbacks panicked (and what
// Scope.Wait panics with when goroutines of the scope panicked): every
// recovered panic, in the order they happened. It is raised only after
// every callback ran and the cancellation completed.
//
// When nobody called Cancel (a timer fired, or a parent that is not a Token
// was canceled) there is no caller to raise it to: it is raised on the
// goroutine that ran the callbacks, and crashes the program, as a panic in a
// function given to context.AfterFunc or time.AfterFunc does (and as an
// exception in a .NET timer callback does). Its message names each panic's
// value and where it happened, so the crash output shows the callback.
type PanicError struct {
	Recovered []Recovered
}

// A Recovered is one recovered callback panic: the value passed to panic and
// the stack of the panicking goroutine at the time (as debug.Stack formats
// it).
type Recovered struct {
	Value any
	Stack []byte
}

// Error lists each recovered panic value with the first frames of its stack
// below the panic: the callback's function and line, and its callers.
// It is safe for concurrent use.
func (e *PanicError) Error() string {
	var b strings.Builder
	if len(e.Recovered) == 1 {
		b.WriteString("cancellation: recovered panic: ")
	} else {
		fmt.Fprintf(&b, "cancellation: %d recovered panics: ", len(e.Recovered))
	}
	for i, r := range e.Recovered {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprint(&b, r.Value)
		if frames := panicFrames(r.Stack, 3); len(frames) > 0 {
			b.WriteString(" [at ")
			b.WriteString(strings.Join(frames, " <- "))
			b.WriteString("]")
		}
	}
	return b.String()
}

// panicFrames returns up to max frames of a debug.Stack text, as
// "function (file:line)", starting at the frame that panicked: the first one
// below the last panic call that is not in package runtime, and stopping at
// this package's own frames.
func panicFrames(stack []byte, max int) []string {
	lines := strings.Split(string(stack), "\n")
	start := 1 // after "goroutine N [running]:"
	for i := 1; i+1 < len(lines); i += 2 {
		if strings.HasPrefix(lines[i], "panic(") {
			start = i + 2
		}
	}
	var frames []string
	for i := start; i+1 < len(lines) && len(frames) < max; i += 2 {
		fn, loc := lines[i], strings.TrimSpace(lines[i+1])
		if strings.HasPrefix(fn, "runtime.") {
			continue
		}
		if strings.HasPrefix(fn, "github.com/go-cancellation/cancellation.") {
			break
		}
		if k := strings.LastIndexByte(fn, '('); k > 0 && strings.HasSuffix(fn, ")") {
			fn = fn[:k]
		}
		if k := strings.LastIndex(loc, " +0x"); k > 0 {
			loc = loc[:k]
		}
		frames = append(frames, fn+" ("+loc+")")
	}
	return frames
}

// Unwrap returns the recovered values that are errors, so that errors.Is and
// errors.As see them.
func (e *PanicError) Unwrap() []error {
	var errs []error
	for _, r := range e.Recovered {
		if err, ok := r.Value.(error); ok {
			errs = append(errs, err)
		}
	}
	return errs
}

package cancellation

import (
	"fmt"
	"strings"
)

// A PanicError is what Cancel panics with when callbacks panicked: every
// recovered panic, in the order the callbacks ran. It is raised only after
// every callback ran and the cancellation completed.
type PanicError struct {
	Recovered []Recovered
}

// A Recovered is one recovered callback panic: the value passed to panic and
// the stack of the panicking goroutine at the time.
type Recovered struct {
	Value any
	Stack []byte
}

// Error lists the recovered panic values.
func (e *PanicError) Error() string {
	var b strings.Builder
	if len(e.Recovered) == 1 {
		b.WriteString("cancellation: callback panicked: ")
	} else {
		fmt.Fprintf(&b, "cancellation: %d callbacks panicked: ", len(e.Recovered))
	}
	for i, r := range e.Recovered {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprint(&b, r.Value)
	}
	return b.String()
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

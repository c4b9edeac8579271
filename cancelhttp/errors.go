package cancelhttp

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrClientDisconnected is the cause of a request token canceled because the
// client went away: it closed the connection, or reset the HTTP/2 stream,
// before the handler returned. net/http reports both the same way (it
// cancels the request's context with [context.Canceled]), so the two cannot be
// told apart. Test for it with errors.Is(context.Cause(ctx), ErrClientDisconnected).
var ErrClientDisconnected = errors.New("client disconnected")

// ErrServerShutdown is the cause of a request token canceled because the
// server is shutting down and the grace period given to in-flight requests
// is over (see [Serve]).
var ErrServerShutdown = errors.New("server shutting down")

// ErrStopTimeout is returned by [Serve] when handlers were still running a
// stop timeout after their tokens had been canceled. Serve closes their
// connections and returns without waiting for them any longer.
var ErrStopTimeout = errors.New("cancelhttp: handlers did not return after their requests were canceled")

// DeadlineError is the cause of a request token canceled because the
// deadline the client sent in a timeout header passed. The token's Err is
// [context.DeadlineExceeded] as always; errors.Is(cause,
// context.DeadlineExceeded) also holds, and errors.As recovers the header.
type DeadlineError struct {
	// Header is the canonical name of the header that set the deadline:
	// "Connect-Timeout-Ms" or "Grpc-Timeout".
	Header string
	// Value is the header's value as received.
	Value string
	// Timeout is the timeout that was applied, measured from the moment the
	// middleware saw the request; it is shorter than the header's when the
	// server maximum capped it.
	Timeout time.Duration
	// Capped reports whether the server maximum (see [WithMaxTimeout])
	// shortened the client's timeout.
	Capped bool
}

// Error describes the deadline, for instance
// `deadline exceeded: Grpc-Timeout "50m" (50ms)`.
func (e *DeadlineError) Error() string {
	if e.Capped {
		return fmt.Sprintf("deadline exceeded: %s %s (capped to %v by the server maximum)", e.Header, quoteEchoed(e.Value), e.Timeout)
	}
	return fmt.Sprintf("deadline exceeded: %s %s (%v)", e.Header, quoteEchoed(e.Value), e.Timeout)
}

// Unwrap returns [context.DeadlineExceeded].
func (e *DeadlineError) Unwrap() error { return context.DeadlineExceeded }

// HeaderError reports a malformed timeout header. The middleware answers
// such a request with 400 Bad Request and the error's message; the parsers
// return it.
type HeaderError struct {
	// Header is the canonical header name, "Connect-Timeout-Ms" or "Grpc-Timeout".
	Header string
	// Value is the malformed value.
	Value string
	// Want describes the accepted syntax.
	Want string
}

// Error names the header, quotes the value (its first 64 bytes and its
// length, when it is longer) and says what is accepted.
func (e *HeaderError) Error() string {
	return fmt.Sprintf("malformed %s header %s: want %s", e.Header, quoteEchoed(e.Value), e.Want)
}

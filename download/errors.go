package download

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error is the error returned by [Client.Do] and [Get]: it names the URL,
// the file, and how much of it is kept for a later resume. Err is the cause,
// one of the errors below or an I/O or network error; test it with
// [errors.Is] and [errors.As] on the *Error itself.
type Error struct {
	URL  string // the URL as given
	Path string // the final file name; "" if no name was chosen yet
	// Kept is the number of bytes left in Path+".part", with the
	// validator stored beside it, for a later call to resume from. It is
	// 0 when nothing resumable was kept.
	Kept int64
	Err  error
}

// Error implements the error interface.
func (e *Error) Error() string { return e.URL + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// ErrStalled is matched (errors.Is) by a [*StallError].
var ErrStalled = errors.New("stalled")

// StallError reports that no bytes arrived for Idle: the attempt was
// canceled by the idle timer (see [Client.IdleTimeout]). It is retried.
type StallError struct {
	Idle time.Duration
}

// Error implements the error interface.
func (e *StallError) Error() string { return "stalled: no data for " + e.Idle.String() }

// Is reports whether target is [ErrStalled].
func (e *StallError) Is(target error) bool { return target == ErrStalled }

// Timeout reports true, like a [net.Error] that timed out.
func (e *StallError) Timeout() bool { return true }

// TimeoutError reports that a download did not finish within
// [Client.Timeout]. It matches [context.DeadlineExceeded] with
// [errors.Is]; it is not retried.
type TimeoutError struct {
	Timeout time.Duration
}

// Error implements the error interface.
func (e *TimeoutError) Error() string { return "timeout: not finished within " + e.Timeout.String() }

// Unwrap returns [context.DeadlineExceeded].
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// HTTPError is an HTTP response status that ended an attempt. 5xx, 429 and
// 408 are retried (429 and 503 after Retry-After, when the server sent one);
// any other status is final.
type HTTPError struct {
	StatusCode int
	Status     string        // as sent, for example "404 Not Found"
	RetryAfter time.Duration // from the Retry-After header; 0 if none
}

// Error implements the error interface.
func (e *HTTPError) Error() string {
	status := e.Status
	if status == "" {
		status = fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return "HTTP " + status
}

func (e *HTTPError) temporary() bool {
	c := e.StatusCode
	return c >= 500 || c == http.StatusTooManyRequests || c == http.StatusRequestTimeout
}

// ErrChecksum is matched (errors.Is) by a [*ChecksumError].
var ErrChecksum = errors.New("sha256 mismatch")

// ChecksumError reports that the downloaded bytes do not have the SHA-256
// digest the caller asked for. No final file is left behind, nor a .part.
type ChecksumError struct {
	Want, Got []byte
}

// Error implements the error interface.
func (e *ChecksumError) Error() string {
	return fmt.Sprintf("sha256 mismatch: got %s, want %s", hex.EncodeToString(e.Got), hex.EncodeToString(e.Want))
}

// Is reports whether target is [ErrChecksum].
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }

// ErrLocked is returned when another download, in this process or another,
// is writing the same .part file.
var ErrLocked = errors.New("in use by another download")

// canceledError is a cancellation of the caller's context: it matches
// ctx.Err() (never replaced) and the cause, and prints the cause.
type canceledError struct {
	err, cause error
}

func (e *canceledError) Error() string {
	if e.cause != nil && e.cause != e.err {
		return e.cause.Error()
	}
	return e.err.Error()
}

func (e *canceledError) Unwrap() []error {
	if e.cause != nil && e.cause != e.err {
		return []error{e.err, e.cause}
	}
	return []error{e.err}
}

// protocolError is a response that breaks the rules (a Content-Range that
// does not match what was asked, a body longer than announced). The
// attempt is retried from zero.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

// lockedError reports a .part held by another download; it matches
// ErrLocked.
type lockedError struct{ path string }

func (e *lockedError) Error() string { return e.path + " is " + ErrLocked.Error() }
func (e *lockedError) Unwrap() error { return ErrLocked }

package cancellation

import (
	"context"
	"time"
)

// STUB: the real implementation is being written; signatures are final.

type Source struct{ _ int }

func New(parents ...context.Context) *Source   { panic("unimplemented") }
func (s *Source) Token() Token                 { return Token{s} }
func (s *Source) Cancel() bool                 { panic("unimplemented") }
func (s *Source) CancelCause(cause error) bool { panic("unimplemented") }
func (s *Source) CancelAfter(d time.Duration)  { panic("unimplemented") }
func (s *Source) SetDeadline(t time.Time)      { panic("unimplemented") }
func (s *Source) TryReset() bool               { panic("unimplemented") }

type Token struct{ s *Source }

func (t Token) IsCanceled() bool                      { panic("unimplemented") }
func (t Token) CanBeCanceled() bool                   { panic("unimplemented") }
func (t Token) Err() error                            { panic("unimplemented") }
func (t Token) Cause() error                          { panic("unimplemented") }
func (t Token) Done() <-chan struct{}                 { panic("unimplemented") }
func (t Token) Deadline() (time.Time, bool)           { panic("unimplemented") }
func (t Token) Value(key any) any                     { panic("unimplemented") }
func (t Token) Register(f func()) Registration        { panic("unimplemented") }
func (t Token) AfterFunc(f func()) (stop func() bool) { panic("unimplemented") }

type Registration struct{ _ *int }

func (r Registration) Stop() bool { panic("unimplemented") }
func (r Registration) Wait()      { panic("unimplemented") }

func Sleep(ctx context.Context, d time.Duration) error { panic("unimplemented") }

type PanicError struct{ Recovered []Recovered }
type Recovered struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return "cancellation: callback panicked" }

package cancellation_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-cancellation/cancellation"
)

// Run work in a Scope: the first failure cancels the siblings with a cause
// that names it, and Wait returns the real failure, not the siblings'
// context.Canceled.
func ExampleScope() {
	s := cancellation.NewScope(context.Background())
	s.Go(func(tok cancellation.Token) error {
		if err := cancellation.Sleep(tok, time.Hour); err != nil {
			fmt.Println("sibling stopped:", context.Cause(tok))
			return err // its token's Err: not a failure of its own
		}
		return nil
	})
	s.Go(func(tok cancellation.Token) error {
		return errors.New("disk full")
	})
	fmt.Println("Wait:", s.Wait())
	// Output:
	// sibling stopped: canceled because a sibling failed: disk full
	// Wait: disk full
}

// Bounded cleanup: when the request ends, the cleanup still gets its
// budget, but no more.
func ExampleShield() {
	request := cancellation.New()
	request.CancelCause(errors.New("client went away"))

	cleanup, release := cancellation.Shield(request.Token(), 20*time.Millisecond)
	defer release()
	fmt.Println("cleanup token live:", !cleanup.IsCanceled())
	<-cleanup.Done() // a cleanup that hangs is cut off after the budget
	fmt.Println(cleanup.Err())
	fmt.Println(context.Cause(cleanup))
	// Output:
	// cleanup token live: true
	// context deadline exceeded
	// shielded cleanup budget of 20ms exceeded after: client went away
}

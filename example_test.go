package cancellation_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/go-cancellation/cancellation"
)

// The seed loop: check the token before each step, wait on it during each
// step, and report how the task ended.
func ExampleSleep() {
	src := cancellation.New()
	tok := src.Token()
	src.Token().Register(func() { fmt.Println("cancel requested:", tok.Cause()) })

	longRunningTask := func(tok cancellation.Token, steps int) error {
		for i := range steps {
			if err := tok.Err(); err != nil { // ThrowIfCancellationRequested
				return err
			}
			if err := cancellation.Sleep(tok, 10*time.Millisecond); err != nil { // Task.Delay(d, token)
				return err
			}
			fmt.Printf("Iteration %d of %d completed.\n", i+1, steps)
			if i == 2 {
				src.CancelCause(errors.New("client went away"))
			}
		}
		return nil
	}
	if err := longRunningTask(tok, 20); errors.Is(err, context.Canceled) {
		fmt.Println("Long-running task cancelled successfully.")
	}
	// Output:
	// Iteration 1 of 20 completed.
	// Iteration 2 of 20 completed.
	// Iteration 3 of 20 completed.
	// cancel requested: client went away
	// Long-running task cancelled successfully.
}

// A Token is a context.Context: pass it to any API that takes one.
func ExampleToken() {
	src := cancellation.New()
	defer src.Cancel()
	var ctx context.Context = src.Token() // no allocation
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:0/", nil)
	src.CancelCause(errors.New("user pressed stop"))
	fmt.Println(req.Context().Err(), "/", context.Cause(req.Context()))
	// Output: context canceled / user pressed stop
}

// Callbacks run synchronously, newest first, before Cancel returns.
func ExampleToken_Register() {
	src := cancellation.New()
	tok := src.Token()
	tok.Register(func() { fmt.Println("close the connection") })
	tok.Register(func() { fmt.Println("flush the log") })
	r := tok.Register(func() { fmt.Println("never printed") })
	r.Stop()
	src.Cancel()
	fmt.Println("Cancel returned")
	// Output:
	// flush the log
	// close the connection
	// Cancel returned
}

// Stop, and if the callback already started, Wait for it: afterwards the
// callback is not running and never will.
func ExampleRegistration_Wait() {
	src := cancellation.New()
	started, release := make(chan struct{}), make(chan struct{})
	r := src.Token().Register(func() {
		close(started)
		<-release
		fmt.Println("callback returned")
	})
	go src.Cancel()
	<-started
	if !r.Stop() { // too late: the callback is running
		close(release)
		r.Wait()
	}
	fmt.Println("safe to release what the callback uses")
	// Output:
	// callback returned
	// safe to release what the callback uses
}

// A linked source is canceled with its parent's cause; canceling it releases
// the link.
func ExampleNew_linked() {
	server := cancellation.New() // lives as long as the server
	request := cancellation.New(server.Token())
	defer request.Cancel() // releases the link when the request ends

	server.CancelCause(errors.New("server shutting down"))
	fmt.Println(request.Token().Err(), "/", request.Token().Cause())
	// Output: context canceled / server shutting down
}

// Merge two cancellation signals, from a Token and from any context.
func ExampleNew_merge() {
	user := cancellation.New()
	ctx, stop := context.WithTimeout(context.Background(), time.Hour)
	defer stop()
	both := cancellation.New(user.Token(), ctx)
	defer both.Cancel()

	user.Cancel()
	fmt.Println(both.Token().IsCanceled())
	// Output: true
}

// An idle timeout: re-arm the timer whenever progress is made. Re-arming
// allocates nothing.
func ExampleSource_CancelAfter() {
	src := cancellation.New()
	defer src.Cancel()
	src.CancelAfter(50 * time.Millisecond)
	for range 3 {
		time.Sleep(10 * time.Millisecond) // some progress
		src.CancelAfter(50 * time.Millisecond)
	}
	<-src.Token().Done() // no progress any more
	fmt.Println(src.Token().Err())
	// Output: context deadline exceeded
}

// Pool sources: TryReset succeeds only if nothing canceled the source.
func ExampleSource_TryReset() {
	src := cancellation.New()
	src.CancelAfter(time.Hour)
	src.Token().Register(func() { fmt.Println("dropped, never runs") })
	fmt.Println(src.TryReset()) // reusable: timer disarmed, callbacks dropped
	src.Cancel()
	fmt.Println(src.TryReset()) // canceled: make a new one
	// Output:
	// true
	// false
}

// Panics in callbacks are collected; Cancel completes, then panics once.
func ExamplePanicError() {
	src := cancellation.New()
	src.Token().Register(func() { panic("first") })
	src.Token().Register(func() { panic("second") })
	defer func() {
		var pe *cancellation.PanicError
		if err, ok := recover().(error); ok && errors.As(err, &pe) {
			fmt.Println(len(pe.Recovered), "panics:", pe.Recovered[0].Value, pe.Recovered[1].Value)
			fmt.Println("canceled:", src.Token().IsCanceled())
		}
	}()
	src.Cancel()
	// Output:
	// 2 panics: second first
	// canceled: true
}

// Leak-free use, as a .NET user writes it with a using block: the Source is
// linked to the caller's context, the callback is stopped when the work
// returns normally, and Stop+Wait is the equivalent of disposing the
// registration (after it, the callback is not running and never will).
func ExampleNew_leakFree() {
	work := func(ctx context.Context, conn io.Closer) error {
		src := cancellation.New(ctx)      // linked to the caller's context
		defer src.Cancel()                // last: releases the link
		src.CancelAfter(30 * time.Second) // re-armable: call again on progress

		reg := src.Token().Register(func() { conn.Close() }) // unblocks I/O on cancel
		defer func() {
			if !reg.Stop() { // false: it ran or is running
				reg.Wait() // .NET's Dispose: wait for it to return
			}
		}()

		for i := range 3 {
			if err := cancellation.Sleep(src.Token(), time.Millisecond); err != nil {
				return err // Canceled or DeadlineExceeded; context.Cause says why
			}
			fmt.Println("step", i+1)
		}
		return nil
	}
	fmt.Println(work(context.Background(), loudCloser{}))

	parent := cancellation.New()
	parent.CancelCause(errors.New("user pressed stop"))
	err := work(parent.Token(), loudCloser{})
	fmt.Println(err)
	// Output:
	// step 1
	// step 2
	// step 3
	// <nil>
	// conn closed
	// context canceled
}

type loudCloser struct{}

func (loudCloser) Close() error { fmt.Println("conn closed"); return nil }

package cancellation_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-cancellation/cancellation"
)

func TestShieldIgnoresParentThenAllowsBudget(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		reason := errors.New("server shutting down")
		for name, parentOf := range map[string]func() (context.Context, func()){
			"token": func() (context.Context, func()) {
				p := cancellation.New()
				return p.Token(), func() { p.CancelCause(reason) }
			},
			"context": func() (context.Context, func()) {
				ctx, cancel := context.WithCancelCause(context.Background())
				return ctx, func() { cancel(reason) }
			},
		} {
			ctx, cancel := parentOf()
			tok, release := cancellation.Shield(ctx, 2*time.Second)
			time.Sleep(time.Hour)
			if tok.IsCanceled() {
				t.Fatalf("%s: shield canceled before its parent", name)
			}
			cancel()
			synctest.Wait()
			start := time.Now()
			time.Sleep(2*time.Second - time.Nanosecond)
			if tok.IsCanceled() {
				t.Fatalf("%s: shield canceled before the budget ran out", name)
			}
			<-tok.Done()
			if d := time.Since(start); d != 2*time.Second {
				t.Errorf("%s: shield canceled %v after its parent, want the 2s budget", name, d)
			}
			if tok.Err() != context.DeadlineExceeded {
				t.Errorf("%s: Err = %v, want DeadlineExceeded", name, tok.Err())
			}
			cause := context.Cause(tok)
			if want := "shielded cleanup budget of 2s exceeded after: server shutting down"; cause == nil || cause.Error() != want {
				t.Errorf("%s: cause %q, want %q", name, cause, want)
			}
			if !errors.Is(cause, reason) {
				t.Errorf("%s: cause does not unwrap to the parent's cause", name)
			}
			release()
		}
	})
}

func TestShieldParentAlreadyDone(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := cancellation.New()
		p.Cancel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, parent := range []context.Context{p.Token(), ctx} {
			start := time.Now()
			tok, release := cancellation.Shield(parent, time.Second)
			<-tok.Done()
			if d := time.Since(start); d != time.Second {
				t.Errorf("canceled %v after Shield, want the budget from now", d)
			}
			if !strings.Contains(tok.Cause().Error(), "context canceled") {
				t.Errorf("cause %q does not name the parent's cause", tok.Cause())
			}
			release()
		}
	})
}

func TestShieldZeroBudgetCancelsWithParent(t *testing.T) {
	t.Parallel()
	p := cancellation.New()
	tok, release := cancellation.Shield(p.Token(), 0)
	defer release()
	p.Cancel()
	// A Token parent's Cancel cancels the shield synchronously.
	if !tok.IsCanceled() || tok.Err() != context.DeadlineExceeded {
		t.Fatalf("zero-budget shield after its parent's Cancel: canceled %v, Err %v", tok.IsCanceled(), tok.Err())
	}
}

func TestShieldReleaseFreesLink(t *testing.T) {
	t.Parallel()
	p := cancellation.New()
	defer p.Cancel()
	tok, release := cancellation.Shield(p.Token(), time.Hour)
	if n := cancellation.ListLen(p); n != 1 {
		t.Fatalf("parent lists %d nodes, want the shield's one", n)
	}
	release()
	release() // idempotent
	if n := cancellation.ListLen(p); n != 0 {
		t.Errorf("parent still lists %d nodes after release", n)
	}
	if tok.Err() != context.Canceled || tok.Cause() != context.Canceled {
		t.Errorf("after release: Err %v, Cause %v, want context.Canceled", tok.Err(), tok.Cause())
	}
	p.Cancel()
	if tok.Err() != context.Canceled {
		t.Error("parent's cancel changed a released shield")
	}
}

func TestShieldValuesFlowAndNoDeadlineInherited(t *testing.T) {
	t.Parallel()
	type key struct{}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), key{}, "v"), time.Hour)
	defer cancel()
	tok, release := cancellation.Shield(ctx, time.Second)
	defer release()
	if tok.Value(key{}) != "v" {
		t.Error("values do not flow from the parent")
	}
	if _, ok := tok.Deadline(); ok {
		t.Error("shield reports its parent's deadline, which it ignores")
	}
	// Never-canceled parent: only release ends it.
	tok2, release2 := cancellation.Shield(context.Background(), 0)
	if tok2.IsCanceled() {
		t.Error("shield of Background canceled")
	}
	release2()
	if !tok2.IsCanceled() {
		t.Error("release did not cancel")
	}
}

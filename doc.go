// Package cancellation is cooperative cancellation for Go: the .NET
// CancellationTokenSource / CancellationToken model, fused with
// context.Context and faster than context where cancellation is hot.
//
// A [Source] owns a cancellation; its [Token] observes it. A Token is a
// context.Context, so it goes into every Go API that takes a context, and it
// adds what context lacks: callbacks that run synchronously, in reverse order
// of registration, exactly once, and can be stopped ([Registration.Stop]) and
// waited for ([Registration.Wait]); linked sources with any number of parents;
// timeouts that can be re-armed later or earlier ([Source.CancelAfter]);
// [Source.TryReset] for pooling; and callback panics collected into one
// [*PanicError].
//
// Beyond a single token: a [Scope] runs goroutines under one cancellation
// and waits for them (the first failure cancels the others with a
// [*SiblingError] cause; panics are re-raised by [Scope.Wait]); [Shield]
// gives cleanup a bounded time after its context is canceled; package
// cancelio makes blocking Read and Write calls return when a context is
// canceled.
//
// # Rules for callers
//
//   - Create a Source with [New]. Pass its Token (never the Source) to the
//     code that should stop; keep the Source where the decision to cancel is
//     made. A Source that has parents must be canceled (or its parents must
//     end) for its links to be released, exactly like a context.CancelFunc.
//   - The zero Token never cancels: it is the "none" token, as
//     context.Background is the "none" context.
//   - Err is exactly context.Canceled or context.DeadlineExceeded, never
//     wrapped. The reason for a cancellation is its cause: pass it to
//     [Source.CancelCause] and read it with [Token.Cause] or context.Cause.
//   - Callbacks run on the goroutine that cancels, while it waits. Keep them
//     short and non-blocking; a callback that needs to block should start a
//     goroutine. A callback must not wait for its own registration.
//   - Stop a registration when the work it guards is over: defer
//     reg.Stop() after deferring the Source's Cancel, so that the callback
//     does not fire on a normal return. if !reg.Stop() { reg.Wait() } is
//     .NET's Dispose: afterwards the callback is not running and never will.
//   - Poll with [Token.IsCanceled] in tight loops (it is a single atomic
//     load); select on [Token.Done] to wait; use [Sleep] instead of
//     time.Sleep so that waiting ends when the token is canceled.
//   - A callback panic is re-raised by Cancel as a [*PanicError] after the
//     cancellation completed; when a timer or a parent that is not a Token
//     canceled the Source, there is no caller and it crashes the program.
//   - Every method of Source, Token and Registration is safe for concurrent
//     use by any number of goroutines. Only the calls documented as blocking
//     ever wait for another goroutine; nothing spins.
//
// # Differences from context
//
// The full list, with the reasons, and the costs, are in docs/cancellation.md
// in the repository. In short:
//
// Callbacks registered with [Token.Register] or [Token.AfterFunc] run
// synchronously inside Cancel, so when Cancel returns every callback (and
// every linked child, and every context derived from the Token with
// context.WithCancel and friends) is done. context.AfterFunc starts a
// goroutine per callback instead.
//
// A Token's Deadline moves when the Source's timer is re-armed, and no
// longer reports the Source's own deadline once it is canceled. A stdlib
// child made with context.WithTimeout(tok, d) while tok's deadline is sooner
// has no timer of its own: bound work under a re-armable Token with
// New(tok) and CancelAfter instead (see [Token.Deadline]).
//
// A Source linked to a context that is not a Token (nor wraps one) is
// canceled through context.AfterFunc, on a goroutine of the context package,
// shortly after that context is. A stdlib context derived from a wrapped
// Token (context.WithCancel(context.WithValue(tok, k, v))) costs a goroutine
// of the context package; derive it from the Token, then wrap.
package cancellation

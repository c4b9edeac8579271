// Package cancelio makes blocking I/O end when a context is canceled: a
// Read or Write that waits for the next byte returns within a millisecond or
// so of the cancellation, with exactly ctx.Err(), instead of when data
// arrives.
//
// It works by setting a deadline in the past on the underlying stream from a
// callback registered on ctx, which wakes the blocked call; no goroutine is
// started per call. The reason for the cancellation stays in the context's
// cause (context.Cause).
//
// # Rules for callers
//
//   - Interruptible: anything with SetReadDeadline/SetWriteDeadline that
//     works: net.Conn (TCP, Unix sockets, TLS over them: crypto/tls leaves
//     a connection whose Write timed out unusable), and *os.File for pipes
//     (os.Pipe), FIFOs, terminals and character devices opened with
//     os.Open, which Go puts in non-blocking mode. Regular files never
//     block for long and do not support deadlines.
//   - Checked between reads only: a reader without deadlines (a
//     bytes.Reader, a compressing reader) or an *os.File whose deadlines
//     are not supported. Such a Read is not interrupted; the context is
//     checked before each call, so a loop over it ends at the next Read
//     after the cancellation. An http.Response.Body needs no wrapper for
//     its request's context: net/http closes the connection when that
//     context is done, which ends a blocked body Read.
//   - os.Stdin is, in most programs, a descriptor inherited in blocking mode,
//     on which Go supports no deadlines. Open "/dev/stdin" to get a fresh,
//     interruptible descriptor of the same terminal or pipe (see the
//     Reader's stdin example).
//   - Once ctx is done, every further Read and Write of a wrapper returns
//     ctx.Err() without touching the stream; data already read is returned
//     first. Closing the stream is still the caller's job.
//   - After it interrupted a call, a wrapper restores the stream's deadline
//     (the one set through the [Conn] wrapper, or none for [Reader] and
//     [Copy]), so the stream stays usable with another context.
//   - A wrapper registers one callback on ctx, at its first call, and a
//     [Copy] one per Copy: a Read through a wrapper costs two atomic
//     additions and two ctx.Err() checks more than a bare Read. With a
//     cancellation.Token as ctx the callback runs synchronously inside
//     Cancel; with another context it runs through context.AfterFunc.
//   - Every function is safe for concurrent use. A wrapper is as safe for
//     concurrent use as the stream it wraps.
package cancelio

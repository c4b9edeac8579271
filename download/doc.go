// Package download fetches files over HTTP so that a cancel is clean and a
// file is never corrupt: it streams into NAME.part, resumes it with Range
// and If-Range, and renames it to NAME only once it is whole.
//
// # Rules for callers
//
//   - Pass any context.Context to [Client.Do] (a cancellation.Token
//     included). When it is done, Do returns within milliseconds with an
//     error that matches ctx.Err() and context.Cause(ctx) with errors.Is;
//     the error is never replaced by something else, so
//     errors.Is(err, context.Canceled) is the test for "canceled".
//   - Every error from Do is an [*Error] naming the URL, the file and how
//     many bytes are kept for a resume. The causes are typed:
//     [*HTTPError] (errors.As), [*StallError] (errors.Is ErrStalled),
//     [*ChecksumError] (errors.Is ErrChecksum), [*TimeoutError]
//     (errors.Is context.DeadlineExceeded), [ErrLocked], [ErrExists],
//     [ErrBadURL], or the I/O or network error itself.
//   - A password in the URL (https://user:pass@host/) is sent, but shown
//     masked ([RedactURL]) in errors, events and results, and never
//     written to disk.
//   - The final file appears only complete: size checked against
//     Content-Length / Content-Range, SHA-256 checked when asked for, then
//     fsync, rename, fsync of the directory. An existing file of that name
//     is replaced only at that moment, atomically (or never, with
//     [Request.NoClobber]). [Request.Output] streams to a writer instead:
//     no .part, no resume across calls.
//   - NAME.part is kept when a download fails or is canceled, together with
//     NAME.part.meta: the URL, the validator (strong ETag, else
//     Last-Modified) the bytes belong to, the final name, and for a
//     segmented download the ranges still missing. Calling Do again with
//     the same URL and destination resumes it. A .part without that file,
//     or stored for another URL, is not trusted and starts again from
//     zero; so does one the server no longer serves (a 200 instead of a
//     206). Bytes of two versions of a file are never spliced. When every
//     name derived from NAME would not fit in 255 bytes, the .part and
//     .part.meta get a shortened name with a hash.
//   - The name comes from [Request.Path], or else from the response
//     (Content-Disposition, the URL). Only a .part named by the response
//     is found again by its URL; one whose name a caller chose is left
//     alone. Downloads sharing a [Names] never write the same file: a
//     taken name gets a suffix, NAME.1, NAME.2...
//   - Within one Do call, stalls (no bytes for [Client.IdleTimeout], timed
//     by a cancellation.Source re-armed on every chunk), dropped
//     connections, truncated bodies, 5xx, 408 and 429 are retried with
//     exponential backoff and jitter, honouring Retry-After, resuming where
//     the server allows. What cannot get better is final at once: other
//     4xx, a bad URL, a redirect loop, TLS errors (an https:// URL on a
//     plain-HTTP port included), unknown hosts, local I/O errors. A
//     SHA-256 mismatch of a file put together from several responses is
//     downloaded once more from zero; the reason of every restart from
//     zero is reported ([Event].Err with Started).
//   - With [Client.Split] of 2 or more, a file of known size whose server
//     honours ranges with a validator is fetched over that many
//     connections at once into the one .part; a connection that finishes
//     takes half of the largest range left, and a server that ignores
//     Range falls back to one connection.
//   - Memory is bounded: one buffer per connection ([Client.BufferSize]),
//     whatever the file size. Do starts no goroutine that outlives it.
//   - A [Client] is safe for concurrent use by many goroutines; each Do
//     blocks its caller. Errors, Results and Events are plain values that
//     nothing changes once they are handed out: any goroutine may read
//     them. Downloads to the same file at once are refused with
//     [ErrLocked] (flock, on the platforms that have it).
//
// The test server in package downloadtest misbehaves on demand (throttle,
// stall, cut, ignore Range, change the ETag, 404/500/429) for testing code
// built on this package.
package download

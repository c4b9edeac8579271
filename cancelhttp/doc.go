// Package cancelhttp carries cancellation across HTTP: it gives every
// request a [cancellation.Token] that says why the work should stop, it
// propagates deadlines from client to server, and it shuts servers down
// without dropping responses.
//
// Rules for callers:
//
//   - Wrap a handler with [Handler]. Inside it, r.Context() is the request's
//     token (a [cancellation.Token], which is a [context.Context]); pass it
//     to everything the request does, and stop when it is done. Its Err is
//     exactly [context.Canceled] or [context.DeadlineExceeded]; ask
//     [context.Cause] (or Token.Cause) why: [ErrClientDisconnected] (the
//     connection closed or the HTTP/2 stream was reset), [ErrServerShutdown]
//     (the grace period of a shutdown is over), or a *[DeadlineError] (the
//     client's Connect-Timeout-Ms or Grpc-Timeout passed). Test causes with
//     errors.Is and errors.As, never by string.
//   - The token is canceled when the handler returns: a goroutine that must
//     outlive the request needs a context of its own, for example
//     cancellation.New(context.WithoutCancel(r.Context())).
//   - A client's timeout header is honoured up to the cap given with
//     [WithMaxTimeout]; a malformed one is answered with 400 before the
//     handler runs. Parse such headers yourself with [ParseConnectTimeout] and
//     [ParseGrpcTimeout].
//   - Every request has an id: the client's X-Request-Id when it is valid,
//     else a generated one. It is in the access log and in [RequestID]. The
//     response echoes X-Request-Id only when the client sent a valid one;
//     generated ids stay on the server unless [WithResponseRequestID] is
//     given, because setting a header the handler did not set costs about
//     5% of requests/s for a small handler (see [WithResponseRequestID]).
//   - Send outbound requests through a [Transport], with the request's
//     context (http.NewRequestWithContext): the server at the other end then
//     gets the remaining time as Connect-Timeout-Ms, and a request whose
//     context is already done is never sent.
//   - Run the server with [Serve] rather than http.Server.Serve: it links
//     every request context to shutdown, gives in-flight requests a grace
//     period, then cancels them and waits a bounded time for their handlers.
//     Set http.Server.ReadHeaderTimeout and ReadTimeout: they bound how
//     long a client may take to send a request's headers and its body, and
//     they do not cancel handlers that run longer (net/http clears the read
//     deadline once the body has been read, to watch for the client
//     leaving). Set a small MaxHeaderBytes (the default, 1 MiB, lets each
//     connection with unfinished headers pin about that much memory).
//   - A client that goes away is noticed at once over HTTP/2, and over
//     HTTP/1.1 once the request body has been read to its end: net/http
//     only watches the connection then. Wrap handlers that do not read the
//     body with [IgnoreBody], which drains a small body and refuses a large
//     one. A client that pipelines a second request behind one whose
//     handler is running is not noticed until that handler returns (net/http
//     stops watching once it has read a byte of the next request); bound
//     such handlers' work.
//   - A request with both Content-Length and Transfer-Encoding (the shape
//     of request smuggling) is answered 400 and its connection closed.
//     net/http removes the Content-Length before any handler sees the
//     request, so [Handler] finds it in the raw bytes [Serve] saw; that
//     works when the request line and headers arrived in one read, as
//     clients and proxies send them. Otherwise, and without Serve, the
//     request is served as chunked, and the connection is still closed
//     after it, as after every HTTP/1 request with a Transfer-Encoding, so
//     a request smuggled behind it is never read.
//   - Every function and method of the package is safe for concurrent use.
//     None blocks except [Serve] (until the server stops) and
//     Transport.RoundTrip (while the request is in flight).
//
// Costs: the middleware allocates two objects per request, about 0.65 KiB:
// its state together with the request copy next gets (what
// r.WithContext(token) would return, made in place: the package checks once
// that its copy is field for field what WithContext gives, and uses
// WithContext if not), and the request's Source. It starts no goroutine
// unless the client goes away or the server shuts down; a timeout header
// adds one runtime timer. [Serve] adds no goroutine per open connection
// (under it, HTTP/1 requests share one link to their connection's context
// instead of registering one each, and that link runs one short goroutine
// when the connection ends). Its throughput relative to a bare handler is
// measured in bench/http (see docs/taskd.md).
package cancelhttp

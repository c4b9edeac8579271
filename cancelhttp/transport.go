package cancelhttp

import (
	"context"
	"net/http"
	"time"
)

// Transport is an [http.RoundTripper] that propagates the request context's
// deadline to the server and refuses to send a request nobody waits for:
//
//   - When the context is already done, RoundTrip returns its Err
//     (context.Canceled or context.DeadlineExceeded, so errors.Is works
//     through the *url.Error an http.Client adds) without sending anything.
//     A deadline that has passed counts as done even before the context's
//     timer fires.
//   - When the context has a deadline, the request goes out with the
//     remaining time, in whole milliseconds and at least 1, in the
//     Connect-Timeout-Ms header (a server using [Handler] turns it into the
//     deadline of its request token). A Connect-Timeout-Ms value the caller
//     set is kept when it is shorter. Deadlines further away than ten digits
//     of milliseconds (about 115 days) are not sent.
//
// The request given to RoundTrip is never modified; a header is added on a
// clone. A Transport is safe for concurrent use; RoundTrip blocks as long as
// the Base transport does.
type Transport struct {
	// Base sends the requests. Nil means http.DefaultTransport.
	Base http.RoundTripper
}

// RoundTrip implements [http.RoundTripper].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		remaining := time.Until(dl)
		if remaining <= 0 {
			closeBody(req)
			return nil, context.DeadlineExceeded
		}
		if v, ok := formatConnectTimeout(remaining); ok && !shorterSet(req.Header, remaining) {
			req = req.Clone(ctx)
			req.Header.Set(ConnectTimeoutHeader, v)
		}
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(req)
}

// shorterSet reports whether h already asks for a timeout shorter than d.
func shorterSet(h http.Header, d time.Duration) bool {
	vs := h[ConnectTimeoutHeader]
	if len(vs) == 0 {
		return false
	}
	set, err := ParseConnectTimeout(vs[0])
	return err == nil && set < d
}

// closeBody honours the RoundTripper contract: the body is closed, also on
// errors.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

package cancelhttp

import "context"

// FormatConnectTimeout is exported for the fuzz tests.
var FormatConnectTimeout = formatConnectTimeout

// LinkedThroughConn reports whether the request of ctx is linked through
// its connection (Serve, HTTP/1, net/http's own request context) rather
// than by a registration on its context.
func LinkedThroughConn(ctx context.Context) bool {
	rq := lookup(ctx)
	return rq != nil && rq.conn != nil
}

// CopiesRequestInPlace reports whether Handler gives next a copy of the
// request allocated with its state (see copyRequest) rather than
// r.WithContext's.
func CopiesRequestInPlace() bool { return requestCtxOffset != 0 }

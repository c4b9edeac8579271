package cancelhttp

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
)

// IgnoreBody wraps a handler that does not read the request body, so that a
// client that goes away is noticed even when its request had one.
//
// net/http watches an HTTP/1.1 connection for the client closing it only
// once the request body has been read to its end; a handler that never
// reads the body (a GET that came with Content-Length, a chunked body, or
// Expect: 100-continue) is therefore never told that its client left. The
// returned handler reads and discards a body of up to limit bytes before it
// calls next (for Expect: 100-continue, reading is what makes net/http send
// "100 Continue"); then r.Body is empty, and the request context is
// canceled when the client leaves, as for a request without a body. A body
// declared or found to be longer than limit is answered 413 Request Entity
// Too Large with Connection: close, without calling next (a declared one
// without reading it). When reading the body fails, because the client
// left or did not send it within http.Server.ReadTimeout, next is not
// called either: the client gets 408 Request Timeout for a timeout and
// nothing otherwise, and the connection is closed.
//
// Use it inside [Handler], on the routes whose handlers ignore bodies.
// HTTP/2 needs none of this (a reset stream is seen whether the body was
// read or not), but it does no harm there. IgnoreBody panics if next is nil
// or limit is negative. The returned handler is safe for concurrent use;
// it blocks while the body arrives.
func IgnoreBody(next http.Handler, limit int64) http.Handler {
	if next == nil {
		panic("cancelhttp: IgnoreBody with a nil handler")
	}
	if limit < 0 {
		panic("cancelhttp: IgnoreBody with a negative limit")
	}
	return &ignoreBody{next: next, limit: limit}
}

type ignoreBody struct {
	next  http.Handler
	limit int64
}

func (h *ignoreBody) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		h.next.ServeHTTP(w, r)
		return
	}
	if r.ContentLength > h.limit {
		tooLarge(w, h.limit)
		return
	}
	_, err := io.CopyN(io.Discard, r.Body, h.limit+1)
	switch {
	case err == nil: // read limit+1 bytes
		tooLarge(w, h.limit)
		return
	case !errors.Is(err, io.EOF):
		w.Header().Set("Connection", "close")
		if errors.Is(err, os.ErrDeadlineExceeded) {
			http.Error(w, "request body not received in time", http.StatusRequestTimeout)
		}
		return
	}
	h.next.ServeHTTP(w, r)
}

func tooLarge(w http.ResponseWriter, limit int64) {
	w.Header().Set("Connection", "close")
	http.Error(w, fmt.Sprintf("request body too large: this resource reads no body, and discards at most %d bytes", limit),
		http.StatusRequestEntityTooLarge)
}

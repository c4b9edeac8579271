package cancelhttp

import (
	"bufio"
	"io"
	"net"
	"net/http"

	"github.com/go-cancellation/cancellation"
)

// responseWriter records the status and the number of body bytes for the
// access log. It implements the optional interfaces handlers commonly
// assert (http.Flusher, http.Hijacker, io.ReaderFrom) by delegating through
// http.ResponseController, and Unwrap so that a ResponseController built on
// it reaches the rest (deadlines, full duplex). It is used by one handler
// goroutine at a time, as net/http requires of any ResponseWriter.
type responseWriter struct {
	http.ResponseWriter
	bytes     int64
	bytesLive int64                // bytes written while src was live
	src       *cancellation.Source // the request's; nil before it exists
	status    int32                // first final status written; 0 while none
	hijacked  bool
}

var (
	_ http.Flusher  = (*responseWriter)(nil)
	_ http.Hijacker = (*responseWriter)(nil)
	_ io.ReaderFrom = (*responseWriter)(nil)
)

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *responseWriter) WriteHeader(code int) {
	w.ResponseWriter.WriteHeader(code)
	// Informational 1xx headers (other than 101 Switching Protocols) are not
	// the final status.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = int32(code) // net/http has checked that it has three digits
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.count(int64(n))
	return n, err
}

func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	// io.Copy uses the underlying writer's ReadFrom (sendfile) when it has
	// one.
	n, err := io.Copy(w.ResponseWriter, r)
	w.count(n)
	return n, err
}

func (w *responseWriter) count(n int64) {
	w.bytes += n
	if w.src == nil || !w.src.Token().IsCanceled() {
		w.bytesLive = w.bytes
	}
}

func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is the method http.ResponseController looks for first.
func (w *responseWriter) FlushError() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

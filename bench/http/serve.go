package httpbench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// nopWriter is a ResponseWriter that keeps nothing.
type nopWriter struct{ h http.Header }

func (w nopWriter) Header() http.Header         { return w.h }
func (w nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w nopWriter) WriteHeader(int)             {}

// ServeHTTPBenchmark returns a benchmark of one ServeHTTP call of h, in
// process, without a network: the per-request cost of the handler alone. The
// request context is a cancelable context, as net/http's is.
func ServeHTTPBenchmark(h http.Handler) func(b *testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
		w := nopWriter{h: http.Header{}}
		for b.Loop() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	}
}

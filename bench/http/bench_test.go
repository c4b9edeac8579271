package httpbench_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	httpbench "github.com/go-cancellation/cancellation/bench/http"
)

// BenchmarkStopLatency abandons max(b.N, 20) in-flight requests and reports
// the p50 and p99 of the time to the handler's return, in milliseconds.
func BenchmarkStopLatency(b *testing.B) {
	for _, tc := range []struct {
		mode  httpbench.Mode
		burst int
	}{{httpbench.CloseTCP, 1}, {httpbench.CloseWithBody, 1}, {httpbench.CloseChunked, 1}, {httpbench.CloseExpect, 1},
		{httpbench.ClosePipelined, 1}, {httpbench.ResetStream, 1}, {httpbench.CloseTCP, 20}} {
		b.Run("mode="+string(tc.mode)+"/burst="+itoa(tc.burst), func(b *testing.B) {
			lat, err := httpbench.StopLatency(tc.mode, max(b.N, 20), tc.burst)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(ms(httpbench.Percentile(lat, 50)), "p50-ms")
			b.ReportMetric(ms(httpbench.Percentile(lat, 99)), "p99-ms")
		})
	}
}

// BenchmarkMiddlewareOverhead runs b.N alternating rounds of 100ms of load
// against each variant and reports the median requests per second, the CPU
// time per request and the paired ratio to the bare handler.
func BenchmarkMiddlewareOverhead(b *testing.B) {
	for _, w := range []struct {
		name string
		h    http.Handler
	}{{"ok", httpbench.Hello}, {"json", httpbench.JSON}} {
		b.Run("handler="+w.name, func(b *testing.B) {
			variants := httpbench.Variants(w.h)
			rps, cpu, err := httpbench.Load(variants, 8, b.N, 100*time.Millisecond)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(0, "ns/op")
			for i, v := range variants {
				b.ReportMetric(httpbench.Median(rps[i]), v.Name+"-req/s")
				b.ReportMetric(httpbench.Median(cpu[i]), v.Name+"-cpu-us/req")
				if i > 0 {
					b.ReportMetric(httpbench.PairedRatio(rps[i], rps[0]), v.Name+"-ratio")
				}
			}
		})
	}
}

// BenchmarkInFlight measures min(max(b.N, 100), 2000) in-flight HTTP/1.1
// requests per server and handler kind: heap and stack bytes per request
// and goroutines per connection. (The cap keeps the connections, two file
// descriptors each, under the process's limit when b.N grows.)
func BenchmarkInFlight(b *testing.B) {
	for _, hk := range []httpbench.InFlightHandler{httpbench.WaitContext, httpbench.SeedSteps} {
		for _, srv := range []httpbench.InFlightServer{httpbench.Plain, httpbench.PlainWrapped, httpbench.Cancelhttp} {
			b.Run(fmt.Sprintf("handler=%d/server=%d", hk, srv), func(b *testing.B) {
				r, err := httpbench.MeasureInFlight(srv, hk, min(max(b.N, 100), 2000))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(r.HeapPerRequest, "heap-B/request")
				b.ReportMetric(r.StackPerRequest, "stack-B/request")
				b.ReportMetric(r.GoroutinesPerConn, "goroutines/conn")
			})
		}
	}
}

// BenchmarkServeHTTP is the in-process cost of one request through each
// variant, without a network.
func BenchmarkServeHTTP(b *testing.B) {
	for _, v := range httpbench.Variants(httpbench.Hello) {
		b.Run("handler="+v.Name, httpbench.ServeHTTPBenchmark(v.Handler))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

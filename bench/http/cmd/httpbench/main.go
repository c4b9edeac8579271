// Command httpbench measures package cancelhttp end to end and prints a
// table: stop latency percentiles per abandon mode, and requests per second
// of the middleware against a bare handler (medians of alternating rounds).
// bench/http.sh runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	httpbench "github.com/go-cancellation/cancellation/bench/http"
)

func main() {
	n := flag.Int("disconnects", 300, "abandoned requests per stop-latency mode")
	burst := flag.Int("burst", 100, "requests abandoned at once in the burst mode")
	rounds := flag.Int("rounds", 9, "load rounds per variant")
	round := flag.Duration("round", time.Second, "length of one load round")
	conns := flag.Int("conns", 8, "concurrent keep-alive connections of the load generator")
	flag.Parse()
	if err := run(*n, *burst, *rounds, *round, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "httpbench:", err)
		os.Exit(1)
	}
}

func run(n, burst, rounds int, round time.Duration, conns int) error {
	fmt.Printf("%s, GOMAXPROCS=%d\n\n", runtime.Version(), runtime.GOMAXPROCS(0))

	fmt.Printf("Stop latency: client abandons an in-flight request -> handler (Sleep on the request token) returns\n")
	fmt.Printf("%-28s %6s %9s %9s %9s %9s  %s\n", "mode", "n", "p50", "p90", "p99", "max", "target p99 <= 5ms")
	for _, m := range []struct {
		name  string
		mode  httpbench.Mode
		burst int
	}{
		{"http1-close, one at a time", httpbench.CloseTCP, 1},
		{"h2-reset, one at a time", httpbench.ResetStream, 1},
		{fmt.Sprintf("http1-close, %d at once", burst), httpbench.CloseTCP, burst},
		{fmt.Sprintf("h2-reset, %d at once", burst), httpbench.ResetStream, burst},
	} {
		lat, err := httpbench.StopLatency(m.mode, n, m.burst)
		if err != nil {
			return err
		}
		p99 := httpbench.Percentile(lat, 99)
		fmt.Printf("%-28s %6d %9s %9s %9s %9s  %s\n", m.name, len(lat),
			ms(httpbench.Percentile(lat, 50)), ms(httpbench.Percentile(lat, 90)), ms(p99), ms(lat[len(lat)-1]),
			verdict(p99 <= 5*time.Millisecond))
	}

	fmt.Printf("\nMiddleware overhead: requests/s, %d rounds x %v per variant (alternating), %d keep-alive connections, handler writes \"ok\"\n",
		rounds, round, conns)
	variants := httpbench.Variants()
	rps, cpu, err := httpbench.Load(variants, conns, rounds, round)
	if err != nil {
		return err
	}
	bare, bareCPU := httpbench.Median(rps[0]), httpbench.Median(cpu[0])
	fmt.Printf("%-22s %12s %10s %10s  %-24s %14s %s\n", "variant", "median req/s", "min", "max", "ratio (target >= 0.95)", "CPU us/req", "CPU ratio")
	for i, v := range variants {
		med, c := httpbench.Median(rps[i]), httpbench.Median(cpu[i])
		ratio, cratio := "-", "-"
		if i > 0 {
			ratio = fmt.Sprintf("%.3f %s", med/bare, verdict(med/bare >= 0.95))
			cratio = fmt.Sprintf("%.3f", c/bareCPU)
		}
		lo, hi := minmax(rps[i])
		fmt.Printf("%-22s %12.0f %10.0f %10.0f  %-24s %14.2f %s\n", v.Name, med, lo, hi, ratio, c, cratio)
	}

	fmt.Printf("\nIn-process cost of one ServeHTTP (no network): testing.Benchmark\n")
	fmt.Printf("%-22s %10s %8s %10s\n", "variant", "ns/op", "B/op", "allocs/op")
	for _, v := range variants {
		r := testing.Benchmark(httpbench.ServeHTTPBenchmark(v.Handler))
		fmt.Printf("%-22s %10d %8d %10d\n", v.Name, r.NsPerOp(), r.AllocedBytesPerOp(), r.AllocsPerOp())
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/1e6) }

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

func minmax(xs []float64) (lo, hi float64) {
	lo, hi = xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

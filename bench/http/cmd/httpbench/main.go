// Command httpbench measures package cancelhttp end to end and prints
// tables: memory and goroutines per in-flight request against plain
// net/http, stop latency percentiles per abandon mode, and requests per
// second of the middleware against plain net/http (medians of alternating
// rounds). bench/http.sh runs it.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"

	httpbench "github.com/go-cancellation/cancellation/bench/http"
)

func main() {
	n := flag.Int("disconnects", 300, "abandoned requests per stop-latency mode")
	burst := flag.Int("burst", 100, "requests abandoned at once in the burst mode")
	rounds := flag.Int("rounds", 31, "load rounds per variant")
	round := flag.Duration("round", 300*time.Millisecond, "length of one load round")
	conns := flag.Int("conns", 8, "concurrent keep-alive connections of the load generator")
	inflight := flag.Int("inflight", 2000, "in-flight requests for the memory and goroutine measurement")
	flag.Parse()
	if err := run(*n, *burst, *rounds, *round, *conns, *inflight); err != nil {
		fmt.Fprintln(os.Stderr, "httpbench:", err)
		os.Exit(1)
	}
}

func run(n, burst, rounds int, round time.Duration, conns, inflight int) error {
	fmt.Printf("%s, GOMAXPROCS=%d\n\n", runtime.Version(), runtime.GOMAXPROCS(0))

	fmt.Printf("In-flight HTTP/1.1 requests (%d, each on its own connection, handler waiting for its context): cost per request,\n", inflight)
	fmt.Printf("medians of %d alternating rounds after a warm-up round of each\n", memRounds)
	fmt.Printf("%-32s %9s %10s %10s %12s\n", "server", "heap KiB", "stack KiB", "total KiB", "goroutines")
	var heap, stack, total, gor [2][]float64
	for r := -1; r < memRounds; r++ {
		for i, plain := range []bool{true, false} {
			res, err := httpbench.MeasureInFlight(plain, inflight)
			if err != nil {
				return err
			}
			if r >= 0 {
				heap[i] = append(heap[i], res.HeapPerRequest/1024)
				stack[i] = append(stack[i], res.StackPerRequest/1024)
				total[i] = append(total[i], (res.HeapPerRequest+res.StackPerRequest)/1024)
				gor[i] = append(gor[i], res.GoroutinesPerConn)
			}
		}
	}
	for i, name := range []string{"plain net/http (Server.Serve)", "cancelhttp.Serve + Handler"} {
		fmt.Printf("%-32s %9.1f %10.1f %10.1f %12.2f\n", name, httpbench.Median(heap[i]), httpbench.Median(stack[i]),
			httpbench.Median(total[i]), httpbench.Median(gor[i]))
	}
	ratio := httpbench.PairedRatio(total[1], total[0])
	fmt.Printf("total, paired ratio cancelhttp/plain: %.3f (target <= 1.10: %s)\n\n", ratio, verdict(ratio <= 1.10))

	fmt.Printf("Stop latency: client abandons an in-flight request -> handler (Sleep on the request token) returns\n")
	fmt.Printf("%-32s %6s %9s %9s %9s %9s  %s\n", "mode", "n", "p50", "p90", "p99", "max", "target p99 <= 5ms")
	type stopMode struct {
		name  string
		mode  httpbench.Mode
		burst int
	}
	var modes []stopMode
	for _, m := range httpbench.Modes {
		modes = append(modes, stopMode{string(m) + ", one at a time", m, 1})
	}
	modes = append(modes,
		stopMode{fmt.Sprintf("http1-close, %d at once", burst), httpbench.CloseTCP, burst},
		stopMode{fmt.Sprintf("h2-reset, %d at once", burst), httpbench.ResetStream, burst})
	for _, m := range modes {
		lat, err := httpbench.StopLatency(m.mode, n, m.burst)
		if err != nil {
			return err
		}
		p99 := httpbench.Percentile(lat, 99)
		fmt.Printf("%-32s %6d %9s %9s %9s %9s  %s\n", m.name, len(lat),
			ms(httpbench.Percentile(lat, 50)), ms(httpbench.Percentile(lat, 90)), ms(p99), ms(lat[len(lat)-1]),
			verdict(p99 <= 5*time.Millisecond))
	}

	for _, w := range []struct {
		name, desc string
		h          http.Handler
	}{
		{"ok", `writes "ok" (worst case)`, httpbench.Hello},
		{"json", "encodes a ~400-byte JSON document", httpbench.JSON},
	} {
		fmt.Printf("\nMiddleware overhead, handler %s: requests/s, %d rounds x %v per variant (alternating), %d keep-alive connections, load generator in-process\n",
			w.desc, rounds, round, conns)
		variants := httpbench.Variants(w.h)
		rps, cpu, err := httpbench.Load(variants, conns, rounds, round)
		if err != nil {
			return err
		}
		fmt.Printf("%-22s %12s %9s %9s  %-15s %-16s %10s %9s\n", "variant", "median req/s", "min", "max",
			"paired ratio", "ratio of medians", "CPU us/req", "CPU ratio")
		for i, v := range variants {
			med, c := httpbench.Median(rps[i]), httpbench.Median(cpu[i])
			paired, ofMedians, cratio := "-", "-", "-"
			if i > 0 {
				pr := httpbench.PairedRatio(rps[i], rps[0])
				paired = fmt.Sprintf("%.3f %s", pr, verdict(pr >= 0.95))
				ofMedians = fmt.Sprintf("%.3f", med/httpbench.Median(rps[0]))
				cratio = fmt.Sprintf("%.3f", c/httpbench.Median(cpu[0]))
			}
			lo, hi := minmax(rps[i])
			fmt.Printf("%-22s %12.0f %9.0f %9.0f  %-15s %-16s %10.2f %9s\n", v.Name, med, lo, hi, paired, ofMedians, c, cratio)
		}
	}
	fmt.Println("paired ratio: median over rounds of variant/bare in the same round (target >= 0.95 for the middleware rows)")

	fmt.Printf("\nIn-process cost of one ServeHTTP (no network): testing.Benchmark\n")
	fmt.Printf("%-22s %10s %8s %10s\n", "variant", "ns/op", "B/op", "allocs/op")
	for _, v := range httpbench.Variants(httpbench.Hello) {
		r := testing.Benchmark(httpbench.ServeHTTPBenchmark(v.Handler))
		fmt.Printf("%-22s %10d %8d %10d\n", v.Name, r.NsPerOp(), r.AllocedBytesPerOp(), r.AllocsPerOp())
	}
	return nil
}

// memRounds is how many alternating rounds the in-flight measurement runs.
const memRounds = 5

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

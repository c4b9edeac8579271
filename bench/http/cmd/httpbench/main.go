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
	"slices"
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

	fmt.Printf("In-flight HTTP/1.1 requests (%d, each on its own connection, handler waiting): cost per request,\n", inflight)
	fmt.Printf("medians of %d alternating rounds after a warm-up round of each\n", memRounds)
	servers := []httpbench.InFlightServer{httpbench.Plain, httpbench.PlainWrapped, httpbench.Cancelhttp}
	for _, hk := range []httpbench.InFlightHandler{httpbench.SeedSteps, httpbench.WaitContext} {
		fmt.Printf("handler: %v\n", hk)
		fmt.Printf("  %-36s %9s %10s %10s %12s %9s\n", "server", "heap KiB", "stack KiB", "total KiB", "goroutines", "vs plain")
		heap, stack, total, gor := make([][]float64, len(servers)), make([][]float64, len(servers)),
			make([][]float64, len(servers)), make([][]float64, len(servers))
		for r := -1; r < memRounds; r++ {
			for i, srv := range servers {
				res, err := httpbench.MeasureInFlight(srv, hk, inflight)
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
		for i, srv := range servers {
			vs := "-"
			if i > 0 {
				vs = fmt.Sprintf("%.3f", httpbench.PairedRatio(total[i], total[0]))
			}
			fmt.Printf("  %-36v %9.1f %10.1f %10.1f %12.2f %9s\n", srv, httpbench.Median(heap[i]), httpbench.Median(stack[i]),
				httpbench.Median(total[i]), httpbench.Median(gor[i]), vs)
		}
		c := len(servers) - 1
		ratio := httpbench.PairedRatio(total[c], total[0])
		fmt.Printf("  cancelhttp/plain %.3f (target <= 1.10: %s); cancelhttp/(plain + status/duration middleware) %.3f\n\n",
			ratio, verdict(ratio <= 1.10), httpbench.PairedRatio(total[c], total[1]))
	}
	fmt.Printf("(Go sizes new goroutines' stacks from the average stack in use, rounded up to a power of two: a handler\n")
	fmt.Printf("path a few dozen bytes deeper can double every new goroutine's stack, as the status/duration middleware\n")
	fmt.Printf("shows with the handler that waits on its context.)\n\n")

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
				paired = fmt.Sprintf("%.3f", pr)
				if v.Name == "middleware" {
					paired += " " + verdict(pr >= 0.95)
				}
				ofMedians = fmt.Sprintf("%.3f", med/httpbench.Median(rps[0]))
				cratio = fmt.Sprintf("%.3f", c/httpbench.Median(cpu[0]))
			}
			lo, hi := minmax(rps[i])
			fmt.Printf("%-22s %12.0f %9.0f %9.0f  %-15s %-16s %10.2f %9s\n", v.Name, med, lo, hi, paired, ofMedians, c, cratio)
		}
		idx := func(name string) int {
			return slices.IndexFunc(variants, func(v httpbench.Variant) bool { return v.Name == name })
		}
		if a, b := idx("middleware+accesslog"), idx("bare+accesslog"); a >= 0 && b >= 0 {
			fmt.Printf("middleware+accesslog / bare+accesslog (the same access log on both): paired ratio %.3f, CPU ratio %.3f\n",
				httpbench.PairedRatio(rps[a], rps[b]), httpbench.Median(cpu[a])/httpbench.Median(cpu[b]))
		}
	}
	fmt.Println("paired ratio: median over rounds of variant/bare in the same round (target >= 0.95 for the middleware row)")

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

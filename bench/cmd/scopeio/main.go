// Command scopeio reads `go test -bench` output of bench/scope and
// bench/cancelio (several rounds) on standard input and prints a markdown
// table: the median of each benchmark, the ratio to its peer, and whether
// the target holds.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/go-cancellation/cancellation/bench/internal/stats"
)

type row struct {
	label       string
	ours, peer  metric
	target      float64 // ratio ours/peer at most this; 0: no target
	absoluteMax float64 // ours at most this (in its unit); 0: none
}

// A metric is one number of one benchmark (name without "Benchmark" and
// -GOMAXPROCS).
type metric struct{ bench, unit string }

var rows = []row{
	{"Scope.Go per goroutine vs errgroup", metric{"Go/unlimited", "scope-ns/goroutine"}, metric{"Go/unlimited", "errgroup-ns/goroutine"}, 1.1, 0},
	{"Scope.Go per goroutine vs errgroup, limit 8", metric{"Go/limit=8", "scope-ns/goroutine"}, metric{"Go/limit=8", "errgroup-ns/goroutine"}, 1.1, 0},
	{"Scope.Go per goroutine vs conc pool", metric{"Go/unlimited", "scope-ns/goroutine"}, metric{"Go/unlimited", "conc-ns/goroutine"}, 0, 0},
	{"Scope.Go per goroutine vs conc pool, limit 8", metric{"Go/limit=8", "scope-ns/goroutine"}, metric{"Go/limit=8", "conc-ns/goroutine"}, 0, 0},
	{"cancelio.Reader Read 512 B vs bare pipe Read", metric{"PipeRead/size=512", "cancelio-ns/read"}, metric{"PipeRead/size=512", "bare-ns/read"}, 1.05, 0},
	{"cancelio.Reader Read 4 KiB vs bare pipe Read", metric{"PipeRead/size=4096", "cancelio-ns/read"}, metric{"PipeRead/size=4096", "bare-ns/read"}, 1.05, 0},
	{"cancelio.Reader Read 32 KiB vs bare pipe Read", metric{"PipeRead/size=32768", "cancelio-ns/read"}, metric{"PipeRead/size=32768", "bare-ns/read"}, 1.05, 0},
	{"cancelio.Reader (stdlib ctx) Read 512 B vs bare", metric{"PipeRead/size=512", "cancelio-context-ns/read"}, metric{"PipeRead/size=512", "bare-ns/read"}, 1.05, 0},
	{"goroutine-per-read wrapper 512 B vs bare", metric{"PipeReadPeer/size=512", "goroutine-ns/read"}, metric{"PipeReadPeer/size=512", "bare-ns/read"}, 0, 0},
	{"goroutine-per-read wrapper 32 KiB vs bare", metric{"PipeReadPeer/size=32768", "goroutine-ns/read"}, metric{"PipeReadPeer/size=32768", "bare-ns/read"}, 0, 0},
	{"cancel to return of a blocked pipe Read, p99 (peer: goroutine-per-read)", metric{"CancelToReturn/impl=cancelio", "p99-ns"}, metric{"CancelToReturn/impl=goroutine", "p99-ns"}, 0, 1e6},
	{"cancel to return of a blocked pipe Read, p50 (peer: goroutine-per-read)", metric{"CancelToReturn/impl=cancelio", "p50-ns"}, metric{"CancelToReturn/impl=goroutine", "p50-ns"}, 0, 0},
}

func main() {
	strict := flag.Bool("strict", false, "exit 1 if a target is missed")
	flag.Parse()
	samples, err := stats.ParseBench(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scopeio:", err)
		os.Exit(2)
	}
	missed, rounds := 0, 0
	fmt.Println("| measurement | ours | peer | ratio | target | allocs (ours/peer) | |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		ours, peer := samples[r.ours.bench][r.ours.unit], samples[r.peer.bench][r.peer.unit]
		if len(ours) == 0 || len(peer) == 0 {
			fmt.Printf("| %s | – | – | – | – | – | no data |\n", r.label)
			missed++
			continue
		}
		rounds = max(rounds, len(ours))
		a, b := stats.Median(ours), stats.Median(peer)
		// The ratio is the median of the per-round ratios: both sides of
		// a round ran back to back, under the same load.
		var ratios []float64
		for i := range min(len(ours), len(peer)) {
			ratios = append(ratios, ours[i]/peer[i])
		}
		ratio := stats.Median(ratios)
		target, verdict := "–", ""
		switch {
		case r.target > 0:
			target = fmt.Sprintf("≤ %.2f×", r.target)
			verdict = "ok"
			if ratio > r.target {
				verdict = "MISSED"
			}
		case r.absoluteMax > 0:
			target = "≤ " + format(r.absoluteMax)
			verdict = "ok"
			if a > r.absoluteMax {
				verdict = "MISSED"
			}
		}
		if verdict == "MISSED" {
			missed++
		}
		allocs := "–"
		if x, y := samples[r.ours.bench]["allocs/op"], samples[r.peer.bench]["allocs/op"]; len(x) > 0 && len(y) > 0 && r.ours.bench != r.peer.bench {
			allocs = fmt.Sprintf("%g / %g", stats.Median(x), stats.Median(y))
		}
		fmt.Printf("| %s | %s | %s | %.2f× | %s | %s | %s |\n", r.label, format(a), format(b), ratio, target, allocs, verdict)
	}
	fmt.Printf("\nmedians of %d rounds; ratio = median of the per-round ratios ours / peer; %d target(s) missed\n", rounds, missed)
	if *strict && missed > 0 {
		os.Exit(1)
	}
}

func format(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f ms", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1f µs", v/1e3)
	default:
		return fmt.Sprintf("%.0f ns", v)
	}
}

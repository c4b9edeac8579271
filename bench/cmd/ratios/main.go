// Command ratios reads `go test -bench` output of the core benchmarks
// (several rounds) on standard input and prints, for every row of the
// performance table in the README, the median of each implementation, the ratio
// cancellation/context and whether the target holds.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/go-cancellation/cancellation/bench/internal/stats"
)

type row struct {
	bench     string
	label     string
	metric    string // "ns/op" or "B/op"
	target    float64
	maxAllocs float64 // -1: no limit
	maxBytes  float64 // -1: no limit (absolute, for the bytes row)
}

var rows = []row{
	{"CheckLive", "check a live token (IsCanceled vs ctx.Err)", "ns/op", 0.6, 0, -1},
	{"ErrCanceledParallel", "Err() of a canceled token, 2 goroutines", "ns/op", 0.5, -1, -1},
	{"NewCancel", "New(parentToken)+Cancel vs WithCancel(parent)+cancel", "ns/op", 0.6, 1, -1},
	{"RegisterStop", "Register+Stop vs AfterFunc+stop", "ns/op", 0.2, 0, -1},
	{"TimeoutCancel", "New+CancelAfter(1h)+Cancel vs WithTimeout+cancel", "ns/op", 0.5, -1, -1},
	{"Rearm", "re-arm CancelAfter vs a fresh WithTimeout", "ns/op", 0.3, 0, -1},
	{"Merge2", "New(a, b)+Cancel vs AfterFunc-based merge", "ns/op", 0.4, 2, -1},
	{"Cancel10kChildren", "Cancel a parent with 10k children (per child)", "ns/op", 0.5, -1, -1},
	{"Callbacks10k", "10k callbacks on Cancel vs 10k AfterFunc (per callback)", "ns/op", 0.1, -1, -1},
	{"LiveChildBytes", "bytes per live child source", "B/op", 0.6, -1, 130},
}

func main() {
	strict := flag.Bool("strict", false, "exit 1 if a target is missed")
	flag.Parse()
	parsed, err := stats.ParseBench(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratios:", err)
		os.Exit(2)
	}
	// samples[bench][impl][unit] = values
	samples := map[string]map[string]map[string][]float64{}
	for name, units := range parsed {
		bench, impl, ok := strings.Cut(name, "/impl=")
		if !ok {
			continue
		}
		if samples[bench] == nil {
			samples[bench] = map[string]map[string][]float64{}
		}
		samples[bench][impl] = units
	}
	missed := 0
	fmt.Println("| operation | cancellation | context | ratio | target | allocs (ours/context) | |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		ours, theirs := samples[r.bench]["cancellation"], samples[r.bench]["context"]
		if ours == nil || theirs == nil {
			fmt.Printf("| %s | – | – | – | ≤ %.1f× | – | no data |\n", r.label, r.target)
			missed++
			continue
		}
		unit := r.metric
		if _, ok := ours["ns/child"]; ok && unit == "ns/op" {
			unit = "ns/child"
		}
		if _, ok := ours["ns/callback"]; ok && unit == "ns/op" {
			unit = "ns/callback"
		}
		a, b := stats.Median(ours[unit]), stats.Median(theirs[unit])
		ratio := a / b
		allocsA, allocsB := stats.Median(ours["allocs/op"]), stats.Median(theirs["allocs/op"])
		ok := ratio <= r.target
		if r.maxAllocs >= 0 && allocsA > r.maxAllocs {
			ok = false
		}
		if r.maxBytes >= 0 && a > r.maxBytes {
			ok = false
		}
		verdict := "ok"
		if !ok {
			verdict = "MISSED"
			missed++
		}
		fmt.Printf("| %s | %s | %s | %.2f× | ≤ %.1f× | %s / %s | %s |\n",
			r.label, format(a, unit), format(b, unit), ratio, r.target, trim(allocsA), trim(allocsB), verdict)
	}
	n := 0
	for _, s := range samples {
		for _, u := range s {
			n = max(n, len(u["ns/op"]))
		}
	}
	fmt.Printf("\nmedians of %d rounds; ratio = cancellation / context; %d target(s) missed\n", n, missed)
	if *strict && missed > 0 {
		os.Exit(1)
	}
}

func format(v float64, unit string) string {
	if unit == "B/op" {
		return fmt.Sprintf("%.0f B", v)
	}
	u := strings.TrimPrefix(unit, "ns/")
	if u == "op" {
		u = ""
	} else {
		u = "/" + u
	}
	if v < 10 {
		return fmt.Sprintf("%.2f ns%s", v, u)
	}
	return fmt.Sprintf("%.0f ns%s", v, u)
}

func trim(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Command taskbench measures task systems side by side (see package
// bench/tasks) in alternating rounds and prints a markdown table of the
// medians with the ratios to River. bench/tasks.sh starts the peers'
// brokers and runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"time"

	"github.com/go-cancellation/cancellation/bench/internal/stats"
	"github.com/go-cancellation/cancellation/bench/tasks"
)

type results struct {
	tput             []float64
	tputFast         []float64 // River with FetchCooldown -river-cooldown
	p50, p99         []float64 // ms, same process
	rp50, rp99       []float64 // ms, across processes
	running          []float64
	queuedB, queuedH []float64
	disc             []tasks.Outcome
}

type config struct {
	rounds, tasks, submitters, workers, cancels, batch, running, queued, trials int
	down, window                                                                time.Duration
	riverCooldown                                                               time.Duration
}

func main() {
	tasks.MaybeWorker()
	var c config
	flag.IntVar(&c.rounds, "rounds", 5, "alternating rounds (every measurement but the cut-off trial runs once per system per round)")
	flag.IntVar(&c.tasks, "tasks", 3000, "no-op tasks per throughput round")
	flag.IntVar(&c.submitters, "submitters", 8, "goroutines submitting no-op tasks")
	flag.IntVar(&c.workers, "workers", 100, "tasks a node runs at once in the throughput rounds")
	flag.IntVar(&c.cancels, "cancels", 200, "cancels per latency round")
	flag.IntVar(&c.batch, "batch", 50, "blocking tasks running at once while they are canceled one by one")
	flag.IntVar(&c.running, "running", 500, "blocking tasks running at once for the memory per running task")
	flag.IntVar(&c.queued, "queued", 2000, "tasks queued for the memory per queued task")
	flag.IntVar(&c.trials, "trials", 1, "cut-off trials per system")
	flag.DurationVar(&c.down, "down", 2*time.Second, "how long the worker stays cut off from its broker after the cancel")
	flag.DurationVar(&c.window, "window", 75*time.Second, "how long to wait, after reconnecting, for a cut-off worker to obey the cancel")
	flag.DurationVar(&c.riverCooldown, "river-cooldown", time.Millisecond, "also measure River's throughput with this FetchCooldown (its minimum is 1ms; 0: do not)")
	systems := flag.String("systems", "river,asynq,taskd", "systems to measure, comma-separated")
	freePort := flag.Bool("free-port", false, "print a free TCP port on 127.0.0.1 and exit (for bench/tasks.sh)")
	flag.Parse()
	if *freePort {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "taskbench:", err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c, strings.Split(*systems, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "taskbench:", err)
		os.Exit(1)
	}
}

type sut struct {
	peer   tasks.Peer
	broker tasks.Broker
	res    results
}

func run(ctx context.Context, c config, names []string) error {
	var suts []*sut
	for _, name := range names {
		p, err := tasks.PeerByName(name)
		if err != nil {
			return err
		}
		b, cleanup, err := p.Setup(ctx)
		if errors.Is(err, tasks.ErrUnavailable) {
			fmt.Fprintf(os.Stderr, "skipping %s: %v\n", name, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer cleanup()
		suts = append(suts, &sut{peer: p, broker: b})
	}
	if len(suts) == 0 {
		return errors.New("no system available")
	}
	for r := range c.rounds {
		for i := range suts {
			s := suts[(i+r)%len(suts)] // alternate which system goes first
			fmt.Fprintf(os.Stderr, "round %d/%d: %s\n", r+1, c.rounds, s.peer.Name())
			if err := measure(ctx, c, s); err != nil {
				return fmt.Errorf("%s: %w", s.peer.Name(), err)
			}
		}
	}
	for t := range c.trials {
		for _, s := range suts {
			fmt.Fprintf(os.Stderr, "cut-off trial %d/%d: %s\n", t+1, c.trials, s.peer.Name())
			o, err := tasks.Disconnected(ctx, s.peer, s.broker, c.down, c.window)
			if err != nil {
				return fmt.Errorf("%s: cut-off trial: %w", s.peer.Name(), err)
			}
			fmt.Fprintf(os.Stderr, "  %s (cause %q)\n", o, o.Cause)
			s.res.disc = append(s.res.disc, o)
		}
	}
	printTable(c, suts)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func measure(ctx context.Context, c config, s *sut) error {
	p, b, res := s.peer, s.broker, &s.res
	tput, err := tasks.Throughput(ctx, p, b, c.tasks, c.submitters, c.workers)
	if err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	res.tput = append(res.tput, tput)
	if p.Name() == "river" && c.riverCooldown > 0 {
		fast, err := tasks.Throughput(ctx, tasks.River{FetchCooldown: c.riverCooldown}, b, c.tasks, c.submitters, c.workers)
		if err != nil {
			return fmt.Errorf("throughput with FetchCooldown %s: %w", c.riverCooldown, err)
		}
		res.tputFast = append(res.tputFast, fast)
	}
	lat, err := tasks.CancelLatency(ctx, p, b, c.cancels, c.batch)
	if err != nil {
		return fmt.Errorf("cancel latency: %w", err)
	}
	res.p50 = append(res.p50, ms(tasks.Percentile(lat, 50)))
	res.p99 = append(res.p99, ms(tasks.Percentile(lat, 99)))
	lat, err = tasks.RemoteCancelLatency(ctx, p, b, c.cancels, c.batch)
	if err != nil {
		return fmt.Errorf("cancel latency across processes: %w", err)
	}
	res.rp50 = append(res.rp50, ms(tasks.Percentile(lat, 50)))
	res.rp99 = append(res.rp99, ms(tasks.Percentile(lat, 99)))
	run, err := tasks.MemoryRunning(ctx, p, b, c.running)
	if err != nil {
		return fmt.Errorf("memory per running task: %w", err)
	}
	res.running = append(res.running, run)
	qb, qh, err := tasks.MemoryQueued(ctx, p, b, c.queued)
	if err != nil {
		return fmt.Errorf("memory per queued task: %w", err)
	}
	res.queuedB = append(res.queuedB, qb)
	res.queuedH = append(res.queuedH, qh)
	fmt.Fprintf(os.Stderr, "  %.0f tasks/s; cancel p50/p99 %.2f/%.2f ms, across processes %.2f/%.2f ms; %.0f B/running task; %.0f+%.0f B/queued task\n",
		tput, res.p50[len(res.p50)-1], res.p99[len(res.p99)-1], res.rp50[len(res.rp50)-1], res.rp99[len(res.rp99)-1], run, qb, qh)
	return nil
}

type row struct {
	label    string
	get      func(*results) []float64
	format   func(float64) string
	target   string
	ok       func(ours, river float64) bool // nil: no target
	noRatio  bool                           // the reference is too close to zero for a ratio to mean anything
	riverGet func(*results) []float64       // if set, River's column comes from here
}

func printTable(c config, suts []*sut) {
	fmt.Printf("%s, %d cores, GOMAXPROCS=%d; medians of %d alternating rounds\n\n", runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), c.rounds)
	var river *sut
	for _, s := range suts {
		if s.peer.Name() == "river" {
			river = s
		}
	}
	f0 := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	f2 := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	kib := func(v float64) string {
		if v > -64 && v < 64 { // below what two GCs apart can tell
			return "≈ 0 B"
		}
		if v < 1024 {
			return fmt.Sprintf("%.0f B", v)
		}
		return fmt.Sprintf("%.1f KiB", v/1024)
	}
	rows := []row{
		{fmt.Sprintf("(a) no-op tasks/s, one node (%d submitters, %d workers)", c.submitters, c.workers),
			func(r *results) []float64 { return r.tput }, f0, "≥ 1× River", func(o, r float64) bool { return o >= r }, false, nil},
	}
	if c.riverCooldown > 0 {
		rows = append(rows, row{label: fmt.Sprintf("(a) the same, River with FetchCooldown %s (default 100ms: at most MaxWorkers jobs per 100ms)", c.riverCooldown),
			get: func(r *results) []float64 { return r.tput }, riverGet: func(r *results) []float64 { return r.tputFast },
			format: f0, target: "≥ 1× River", ok: func(o, r float64) bool { return o >= r }})
	}
	rows = append(rows, []row{
		{fmt.Sprintf("(b) cancel → context canceled, same process, p50 ms (%d cancels/round)", c.cancels),
			func(r *results) []float64 { return r.p50 }, f2, "", nil, false, nil},
		{"(b) cancel → context canceled, same process, p99 ms",
			func(r *results) []float64 { return r.p99 }, f2, "≤ 0.2× River and ≤ 5 ms", func(o, r float64) bool { return o <= 0.2*r && o <= 5 }, false, nil},
		{fmt.Sprintf("(c) memory per queued task, broker (%d queued)", c.queued),
			func(r *results) []float64 { return r.queuedB }, kib, "", nil, false, nil},
		{"(c) memory per queued task, heap of the submitting process (taskd: with its embedded NATS)",
			func(r *results) []float64 { return r.queuedH }, kib, "", nil, true, nil},
		{fmt.Sprintf("(c) memory per running task, heap+stacks of the worker process (taskd: with its embedded NATS; %d running)", c.running),
			func(r *results) []float64 { return r.running }, kib, "≤ 16 KiB", func(o, _ float64) bool { return o <= 16*1024 }, false, nil},
		{"(d) cancel → context canceled, across processes, p50 ms",
			func(r *results) []float64 { return r.rp50 }, f2, "", nil, false, nil},
		{"(d) cancel → context canceled, across processes, p99 ms",
			func(r *results) []float64 { return r.rp99 }, f2, "≤ 10 ms", func(o, _ float64) bool { return o <= 10 }, false, nil},
	}...)
	fmt.Print("| measure |")
	for _, s := range suts {
		fmt.Printf(" %s |", s.peer.Name())
	}
	if river != nil {
		for _, s := range suts {
			if s != river {
				fmt.Printf(" %s/river |", s.peer.Name())
			}
		}
	}
	fmt.Println(" taskd target |")
	fmt.Print("|---|")
	for range suts {
		fmt.Print("---:|")
	}
	if river != nil {
		for range len(suts) - 1 {
			fmt.Print("---:|")
		}
	}
	fmt.Println("---|")
	for _, r := range rows {
		fmt.Printf("| %s |", r.label)
		for _, s := range suts {
			fmt.Printf(" %s |", r.format(stats.Median(r.values(s))))
		}
		if river != nil {
			rv := stats.Median(r.values(river))
			for _, s := range suts {
				if s != river && r.noRatio {
					fmt.Print(" – |")
				} else if s != river {
					fmt.Printf(" %s |", ratio(stats.Median(r.values(s)), rv))
				}
			}
		}
		fmt.Printf(" %s |\n", verdict(r, suts, river))
	}
	fmt.Printf("| (d) cancel sent while the worker is cut off from its broker for %s, then reconnected (waited %s) |", c.down, c.window)
	for _, s := range suts {
		var out []string
		for _, o := range s.res.disc {
			out = append(out, o.String())
		}
		fmt.Printf(" %s |", strings.Join(out, ", "))
	}
	if river != nil {
		for range len(suts) - 1 {
			fmt.Print(" |")
		}
	}
	fmt.Println(" obeyed |")
	fmt.Println()
	fmt.Println("Per round (the medians above are of these):")
	for _, s := range suts {
		fmt.Printf("- %s: tasks/s %s; same-process p99 ms %s; cross-process p99 ms %s\n", s.peer.Name(),
			list(s.res.tput, f0), list(s.res.p99, f2), list(s.res.rp99, f2))
		if len(s.res.tputFast) > 0 {
			fmt.Printf("- %s with FetchCooldown %s: tasks/s %s\n", s.peer.Name(), c.riverCooldown, list(s.res.tputFast, f0))
		}
	}
	fmt.Println()
	for _, s := range suts {
		for _, o := range s.res.disc {
			if o.Stopped {
				fmt.Printf("%s cut-off trial: the task's context said %q\n", s.peer.Name(), o.Cause)
			}
		}
	}
}

func ratio(v, ref float64) string {
	if ref == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v/ref)
}

func (r row) values(s *sut) []float64 {
	if r.riverGet != nil && s.peer.Name() == "river" {
		return r.riverGet(&s.res)
	}
	return r.get(&s.res)
}

func verdict(r row, suts []*sut, river *sut) string {
	if r.ok == nil {
		return r.target
	}
	if river == nil && strings.Contains(r.target, "River") {
		return r.target + ": no River run"
	}
	var ours *sut
	for _, s := range suts {
		if s.peer.Name() == "taskd" {
			ours = s
		}
	}
	if ours == nil {
		return r.target
	}
	rv := 0.0
	if river != nil {
		rv = stats.Median(r.values(river))
	}
	if r.ok(stats.Median(r.values(ours)), rv) {
		return r.target + ": met"
	}
	return r.target + ": **missed**"
}

func list(v []float64, format func(float64) string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = format(x)
	}
	return strings.Join(s, " ")
}

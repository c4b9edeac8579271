// Command fetchbench measures cmd/fetch on loopback, side by side with
// curl and aria2c in the same run: wall time of a large download (the
// tools alternate, median of several runs) over one connection and over
// four, on a server that limits each response's rate (where segments pay
// off), peak RSS, and the time from SIGINT to exit. bench/download.sh
// builds everything and runs it once per target directory.
//
//	fetchbench -fetch BIN -server BIN [-size BYTES] [-runs N] [-interrupts N] [-dir DIR]
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-cancellation/cancellation/bench/internal/stats"
)

type sample struct {
	wall   time.Duration
	synced time.Duration // wall plus a sync(2) right after: as durable as fetch
	maxRSS int64         // bytes
}

// tool is one downloader with its flags.
type tool struct {
	name string
	args func(url, out string) []string
}

func main() {
	fetchBin := flag.String("fetch", "", "fetch binary")
	serverBin := flag.String("server", "", "bench server binary")
	size := flag.Int64("size", 1<<30, "file size in bytes (loopback runs)")
	limited := flag.Int64("limited-size", 128<<20, "file size in bytes for the rate-limited server")
	rate := flag.Int64("rate", 16<<20, "the limited server's rate per response, bytes per second")
	runs := flag.Int("runs", 5, "runs per tool (alternating)")
	interrupts := flag.Int("interrupts", 15, "SIGINT runs")
	dir := flag.String("dir", os.TempDir(), "where downloads are written")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("fetchbench: ")
	if *fetchBin == "" || *serverBin == "" {
		log.Fatal("-fetch and -server are required")
	}
	fetch := func(name string, extra ...string) tool {
		return tool{name, func(url, out string) []string {
			return append(append([]string{*fetchBin, "-quiet"}, extra...), "-o", out, url)
		}}
	}
	single := []tool{fetch("fetch")}
	split := []tool{fetch("fetch -split 4", "-split", "4")}
	if curl, err := exec.LookPath("curl"); err == nil {
		single = append(single, tool{"curl", func(url, out string) []string { return []string{curl, "-sS", "-o", out, url} }})
	} else {
		fmt.Println("# curl not found: no curl column")
	}
	if aria, err := exec.LookPath("aria2c"); err == nil {
		ariaArgs := func(n string) func(url, out string) []string {
			return func(url, out string) []string {
				return []string{aria, "-q", "-x" + n, "-s" + n, "-k1M", "--file-allocation=trunc",
					"--allow-overwrite=true", "--auto-file-renaming=false", "-d", filepath.Dir(out), "-o", filepath.Base(out), url}
			}
		}
		single = append(single, tool{"aria2c -x1", ariaArgs("1")})
		split = append(split, tool{"aria2c -x4 -s4", ariaArgs("4")})
	} else {
		fmt.Println("# aria2c not found (Debian: apt-get install aria2): no aria2c rows")
	}

	url, stop := startServer(*serverBin, "-size", fmt.Sprint(*size))
	fmt.Printf("## %s file on loopback, files in %s, median of %d alternating runs\n\n", mib(*size), *dir, *runs)
	table(bench(url+"/file.bin", *size, *runs, *dir, append(single, split...)), "fetch")
	stop()

	lurl, lstop := startServer(*serverBin, "-size", fmt.Sprint(*limited), "-rate", fmt.Sprint(*rate))
	fmt.Printf("\n## %s file from a server limiting each response to %s/s, files in %s, median of %d runs\n\n",
		mib(*limited), mib(*rate), *dir, max(*runs/2, 1))
	table(bench(lurl+"/file.bin", *limited, max(*runs/2, 1), *dir, append(single, split...)), "fetch")
	lstop()

	// Memory with 8 connections, and SIGINT to exit, over one and eight.
	url, stop = startServer(*serverBin, "-size", fmt.Sprint(*size))
	r8 := bench(url+"/file.bin", *size, 1, *dir, []tool{fetch("fetch -split 8", "-split", "8")})
	stop()
	slowURL, stopSlow := startServer(*serverBin, "-size", fmt.Sprint(*size), "-rate", fmt.Sprint(64<<20))
	defer stopSlow()
	fmt.Printf("\n## fetch alone\n\n| metric | one connection | -split 8 | target |\n|---|---|---|---|\n")
	var stops [2][]time.Duration
	for k, flags := range [][]string{nil, {"-split", "8"}} {
		idir := filepath.Join(*dir, "interrupt")
		for i := range *interrupts {
			os.RemoveAll(idir)
			d, err := interrupt(*fetchBin, flags, idir, fmt.Sprintf("%s/i%d.bin", slowURL, i))
			if err != nil {
				log.Fatalf("interrupt run %d: %v", i+1, err)
			}
			stops[k] = append(stops[k], d)
		}
		os.RemoveAll(idir)
		slices.Sort(stops[k])
	}
	fmt.Printf("| SIGINT → exit, median of %d (min–max) (ms) | %.1f (%.1f–%.1f) | %.1f (%.1f–%.1f) | ≤ 100 ms |\n", *interrupts,
		ms(stats.Median(stops[0])), ms(stops[0][0]), ms(stops[0][len(stops[0])-1]),
		ms(stats.Median(stops[1])), ms(stops[1][0]), ms(stops[1][len(stops[1])-1]))
	fmt.Printf("| peak RSS, %s on loopback (MiB) | | %.1f | ≤ 64 MiB |\n", mib(*size), float64(maxOf(r8.samples["fetch -split 8"]))/(1<<20))
}

// result is what bench measured: the samples of each tool, in order.
type result struct {
	size    int64
	names   []string
	samples map[string][]sample
}

// bench runs every tool runs times, rotating the order.
func bench(url string, size int64, runs int, dir string, tools []tool) result {
	out := filepath.Join(dir, "bench.out")
	r := result{size: size, samples: map[string][]sample{}}
	for _, t := range tools {
		r.names = append(r.names, t.name)
	}
	for i := range runs {
		for k := range tools {
			t := tools[(k+i)%len(tools)]
			syscall.Sync() // start each run with no dirty pages from the last
			s, err := measure(t.args(url, out))
			if err != nil {
				log.Fatalf("%s: %v", t.name, err)
			}
			// fetch has fsynced its file before exiting; the others
			// have not: the time with a sync(2) after compares durable
			// with durable.
			syncStart := time.Now()
			syscall.Sync()
			s.synced = s.wall + time.Since(syncStart)
			if fi, err := os.Stat(out); err != nil || fi.Size() != size {
				log.Fatalf("%s: wrote %v (%v), want %d bytes", t.name, fi, err, size)
			}
			os.Remove(out)
			os.Remove(out + ".aria2")
			r.samples[t.name] = append(r.samples[t.name], s)
			fmt.Fprintf(os.Stderr, "run %d %-15s %8.3f s  %7.1f MiB/s  max RSS %5.1f MiB\n", i+1, t.name, s.wall.Seconds(),
				float64(size)/s.wall.Seconds()/(1<<20), float64(s.maxRSS)/(1<<20))
		}
	}
	syscall.Sync()
	return r
}

// table prints one markdown row per tool: median wall time, throughput
// and its ratio to ref's, the same with a sync(2) after, peak RSS.
func table(r result, ref string) {
	refWall := stats.Median(walls(r.samples[ref]))
	refSynced := stats.Median(synced(r.samples[ref]))
	fmt.Printf("| tool | median (s) | MiB/s | vs %s | with sync(2) after (s) | vs %s | peak RSS (MiB) |\n|---|---|---|---|---|---|---|\n", ref, ref)
	for _, n := range r.names {
		w, ws := stats.Median(walls(r.samples[n])), stats.Median(synced(r.samples[n]))
		fmt.Printf("| %s | %.3f | %.0f | %.2f× | %.3f | %.2f× | %.1f |\n", n, w.Seconds(), float64(r.size)/w.Seconds()/(1<<20),
			refWall.Seconds()/w.Seconds(), ws.Seconds(), refSynced.Seconds()/ws.Seconds(), float64(maxOf(r.samples[n]))/(1<<20))
	}
}

// startServer starts the bench server and returns its URL and a stop
// function (idempotent).
func startServer(bin string, args ...string) (string, func()) {
	cmd := exec.Command(bin, args...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		log.Fatalf("server: %v", err)
	}
	stopped := false
	return strings.TrimSpace(line), func() {
		if !stopped {
			stopped = true
			stdin.Close()
			cmd.Wait()
		}
	}
}

// measure runs a command and returns its wall time and peak RSS.
func measure(args []string) (sample, error) {
	cmd := exec.Command(args[0], args[1:]...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%v\n%s", err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{wall: wall, maxRSS: ru.Maxrss * 1024}, nil // Linux: kilobytes
}

// interrupt starts fetch, waits until it has written 4 MiB (its .meta
// says how much, with segments), sends SIGINT and returns the time until
// it exited (with 130 and a kept .part).
func interrupt(fetch string, flags []string, dir, url string) (time.Duration, error) {
	var stderr strings.Builder
	cmd := exec.Command(fetch, append(append([]string{"-quiet", "-dir", dir}, flags...), url)...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	part := filepath.Join(dir, filepath.Base(url)+".part")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(part); err == nil && fi.Size() >= 4<<20 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			return 0, errors.New("download never got going")
		}
		time.Sleep(time.Millisecond)
	}
	if len(flags) > 0 {
		time.Sleep(100 * time.Millisecond) // the segments' .part has its full size at once: let them run
	}
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	d := time.Since(start)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		return 0, fmt.Errorf("exit %v, want 130\n%s", err, stderr.String())
	}
	if _, err := os.Stat(part + ".meta"); err != nil {
		return 0, fmt.Errorf("validator not kept: %v", err)
	}
	return d, nil
}

func walls(s []sample) []time.Duration {
	var d []time.Duration
	for _, x := range s {
		d = append(d, x.wall)
	}
	return d
}

func synced(s []sample) []time.Duration {
	var d []time.Duration
	for _, x := range s {
		d = append(d, x.synced)
	}
	return d
}

func maxOf(s []sample) int64 {
	var m int64
	for _, x := range s {
		m = max(m, x.maxRSS)
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mib(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

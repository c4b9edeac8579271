// Command fetchbench measures cmd/fetch on loopback, side by side with
// curl in the same run: throughput for a large file (alternating the two
// tools, median of several runs), peak RSS, and the time from SIGINT to
// exit. bench/download.sh builds everything and runs it.
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
)

type sample struct {
	wall   time.Duration
	maxRSS int64 // bytes
}

func main() {
	fetchBin := flag.String("fetch", "", "fetch binary")
	serverBin := flag.String("server", "", "bench server binary")
	size := flag.Int64("size", 1<<30, "file size in bytes")
	runs := flag.Int("runs", 5, "throughput runs per tool (alternating)")
	interrupts := flag.Int("interrupts", 15, "SIGINT runs")
	dir := flag.String("dir", os.TempDir(), "where downloads are written")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("fetchbench: ")
	if *fetchBin == "" || *serverBin == "" {
		log.Fatal("-fetch and -server are required")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		log.Fatal("curl not found")
	}

	url, stop := startServer(*serverBin, "-size", fmt.Sprint(*size))
	defer stop()
	fmt.Printf("# fetch vs curl, %s file on loopback, %d alternating runs each, files in %s\n\n", mib(*size), *runs, *dir)

	out := filepath.Join(*dir, "bench.out")
	tools := []struct {
		name string
		args []string
	}{
		{"fetch", []string{*fetchBin, "-quiet", "-o", out, url + "/file.bin"}},
		{"curl", []string{curl, "-sS", "-o", out, url + "/file.bin"}},
	}
	results := map[string][]sample{}
	for i := range *runs {
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, k := range order {
			t := tools[k]
			syscall.Sync() // start each run with no dirty pages from the last
			s, err := measure(t.args, nil)
			if err != nil {
				log.Fatalf("%s: %v", t.name, err)
			}
			// fetch has fsynced its file before exiting; curl has not.
			// "curl+sync" is curl made as durable, for comparison.
			syncStart := time.Now()
			syscall.Sync()
			if t.name == "curl" {
				results["curl+sync"] = append(results["curl+sync"], sample{wall: s.wall + time.Since(syncStart)})
			}
			if fi, err := os.Stat(out); err != nil || fi.Size() != *size {
				log.Fatalf("%s: wrote %v (%v), want %d bytes", t.name, fi, err, *size)
			}
			os.Remove(out)
			results[t.name] = append(results[t.name], s)
			fmt.Printf("run %d %-5s %8.3f s  %7.1f MiB/s  max RSS %5.1f MiB\n", i+1, t.name, s.wall.Seconds(),
				float64(*size)/s.wall.Seconds()/(1<<20), float64(s.maxRSS)/(1<<20))
		}
	}
	syscall.Sync()
	stop()

	// Interrupt: a throttled server keeps the download going.
	rate := int64(64 << 20)
	slowURL, stopSlow := startServer(*serverBin, "-size", fmt.Sprint(*size), "-rate", fmt.Sprint(rate))
	defer stopSlow()
	var stops []time.Duration
	idir := filepath.Join(*dir, "interrupt")
	for i := range *interrupts {
		os.RemoveAll(idir)
		d, err := interrupt(*fetchBin, idir, fmt.Sprintf("%s/i%d.bin", slowURL, i))
		if err != nil {
			log.Fatalf("interrupt run %d: %v", i+1, err)
		}
		stops = append(stops, d)
	}
	os.RemoveAll(idir)

	fw, cw := median(walls(results["fetch"])), median(walls(results["curl"]))
	frss, crss := maxOf(results["fetch"]), maxOf(results["curl"])
	fmt.Printf("\n| metric | fetch | curl | result | target |\n|---|---|---|---|---|\n")
	fmt.Printf("| %s download, median of %d (s) | %.3f | %.3f | fetch at %.2f× curl's throughput | ≥ 0.9× |\n",
		mib(*size), *runs, fw.Seconds(), cw.Seconds(), cw.Seconds()/fw.Seconds())
	fsw := median(walls(results["curl+sync"]))
	fmt.Printf("| same, curl followed by sync(2), as durable as fetch (s) | %.3f | %.3f | fetch at %.2f× | |\n",
		fw.Seconds(), fsw.Seconds(), fsw.Seconds()/fw.Seconds())
	fmt.Printf("| throughput (MiB/s) | %.0f | %.0f | | |\n",
		float64(*size)/fw.Seconds()/(1<<20), float64(*size)/cw.Seconds()/(1<<20))
	fmt.Printf("| peak RSS, max over runs (MiB) | %.1f | %.1f | | fetch ≤ 64 MiB |\n",
		float64(frss)/(1<<20), float64(crss)/(1<<20))
	slices.Sort(stops)
	fmt.Printf("| SIGINT → exit, median of %d (ms) | %.1f | | min %.1f, max %.1f | ≤ 100 ms |\n",
		len(stops), ms(median(stops)), ms(stops[0]), ms(stops[len(stops)-1]))
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
func measure(args []string, stderr io.Writer) (sample, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, err
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{wall: wall, maxRSS: ru.Maxrss * 1024}, nil // Linux: kilobytes
}

// interrupt starts fetch, waits until it has written 4 MiB, sends SIGINT
// and returns the time until it exited (with 130 and a kept .part).
func interrupt(fetch, dir, url string) (time.Duration, error) {
	var stderr strings.Builder
	cmd := exec.Command(fetch, "-quiet", "-dir", dir, url)
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

func median(d []time.Duration) time.Duration {
	d = slices.Clone(d)
	slices.Sort(d)
	if len(d)%2 == 1 {
		return d[len(d)/2]
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2
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

package tasks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// workerEnv carries a [workerSpec] to a worker process: a program that
// calls [MaybeWorker] first thing in main (or TestMain) becomes a worker
// node when it is set.
const workerEnv = "TASKBENCH_WORKER"

type workerSpec struct {
	System  string `json:"system"`
	Broker  string `json:"broker"`
	Queue   string `json:"queue"`
	Workers int    `json:"workers"`
}

// MaybeWorker turns the process into a worker node and exits when the
// environment asks for one (the harness starts its own executable that
// way); otherwise it returns at once. Call it first in main or TestMain.
//
// A worker node opens its system with the spec's broker, queue and
// workers, prints "ready", then one line per event ("R id mono",
// "C id mono cause", "D id mono") until its standard input is closed.
func MaybeWorker() {
	spec := os.Getenv(workerEnv)
	if spec == "" {
		return
	}
	if err := runWorker(spec, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "taskbench worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runWorker(specJSON string, stdin io.Reader, stdout io.Writer) error {
	var spec workerSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return err
	}
	p, err := PeerByName(spec.System)
	if err != nil {
		return err
	}
	b, err := ParseBroker(spec.Broker)
	if err != nil {
		return err
	}
	quietLogs()
	ev := &lineEvents{w: bufio.NewWriter(stdout)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	node, err := p.Open(ctx, Options{Broker: b, Queue: spec.Queue, Workers: spec.Workers, Events: ev})
	cancel()
	if err != nil {
		return err
	}
	ev.line("ready")
	_, _ = io.Copy(io.Discard, stdin)
	return node.Close()
}

// lineEvents writes events to the parent, one flushed line each.
type lineEvents struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (e *lineEvents) line(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.w, format+"\n", args...)
	_ = e.w.Flush()
}

func (e *lineEvents) Running(id string, at int64) { e.line("R %s %d", id, at) }
func (e *lineEvents) Canceled(id string, at int64, cause string) {
	e.line("C %s %d %s", id, at, strconv.Quote(cause))
}
func (e *lineEvents) Done(id string, at int64) { e.line("D %s %d", id, at) }

// remote is a worker process started by the harness.
type remote struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	read  chan error // the reader's end
}

// startRemote starts this executable as a worker node of p on broker b
// and feeds its events to ev. It returns once the worker printed "ready".
func startRemote(ctx context.Context, p Peer, b Broker, queue string, workers int, ev Events) (*remote, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	spec, _ := json.Marshal(workerSpec{System: p.Name(), Broker: b.String(), Queue: queue, Workers: workers})
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), workerEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &remote{cmd: cmd, stdin: stdin, read: make(chan error, 1)}
	ready := make(chan struct{})
	go func() { r.read <- readEvents(stdout, ready, ev) }()
	select {
	case <-ready:
		return r, nil
	case err := <-r.read:
		r.read <- err
		_ = r.stop()
		return nil, fmt.Errorf("%s worker process did not start: %v", p.Name(), err)
	case <-ctx.Done():
		_ = r.stop()
		return nil, fmt.Errorf("%s worker process did not start: %w", p.Name(), context.Cause(ctx))
	}
}

func readEvents(r io.Reader, ready chan<- struct{}, ev Events) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if f[0] == "ready" {
			close(ready)
			continue
		}
		if len(f) < 3 {
			return fmt.Errorf("worker process wrote %q", sc.Text())
		}
		at, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return fmt.Errorf("worker process wrote %q", sc.Text())
		}
		switch f[0] {
		case "R":
			ev.Running(f[1], at)
		case "D":
			ev.Done(f[1], at)
		case "C":
			cause := ""
			if len(f) == 4 {
				cause, _ = strconv.Unquote(f[3])
			}
			ev.Canceled(f[1], at, cause)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("worker process closed its output")
}

// stop closes the worker's input (it closes its node and exits) and waits
// for it, killing it after 20 s.
func (r *remote) stop() error {
	r.stdin.Close()
	exited := make(chan error, 1)
	go func() { exited <- r.cmd.Wait() }()
	select {
	case err := <-exited:
		return err
	case <-time.After(20 * time.Second):
		_ = r.cmd.Process.Kill()
		<-exited
		return errors.New("worker process did not exit within 20s; killed")
	}
}

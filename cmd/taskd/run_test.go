package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/internal/testlog"
)

func TestRunUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"-nope"}, 2, "flag provided but not defined"},
		{"log format", []string{"-log-format", "xml"}, 2, `invalid -log-format "xml"`},
		{"negative grace", []string{"-shutdown-grace", "-5s"}, 2, "invalid -shutdown-grace -5s"},
		{"negative max timeout", []string{"-max-request-timeout", "-1s"}, 2, "invalid -max-request-timeout -1s"},
		{"negative max task duration", []string{"-max-task-duration", "-1s"}, 2, "invalid -max-task-duration -1s"},
		{"negative max inflight", []string{"-max-inflight", "-1"}, 2, "invalid -max-inflight -1"},
		{"bad duration", []string{"-shutdown-grace", "soon"}, 2, "invalid value"},
		{"argument", []string{"extra"}, 2, `unexpected argument "extra"`},
		{"help", []string{"-h"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			m := &Main{Stdout: &stdout, Stderr: &stderr}
			err := m.Run(context.Background(), tt.args)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			if code := exitCode(err, &stderr); code != tt.code {
				t.Errorf("exit code %d, want %d (err %v)", code, tt.code, err)
			}
			if tt.code == 0 {
				if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stdout.String(), "-shutdown-grace") || stderr.Len() != 0 {
					t.Errorf("-h: err %v, stdout %q, stderr %q; want the usage on stdout only", err, stdout.String(), stderr.String())
				}
				return
			}
			// What a user sees: the error, then the usage, on stderr;
			// nothing on stdout.
			if !strings.HasPrefix(stderr.String(), "taskd: ") || !strings.Contains(stderr.String(), tt.want) ||
				!strings.Contains(stderr.String(), "Usage: taskd") || stdout.Len() != 0 {
				t.Errorf("stderr %q, stdout %q; want %q and the usage on stderr", stderr.String(), stdout.String(), tt.want)
			}
		})
	}
}

// TestBinaryUsageError: the built binary prints the error on stderr and
// exits 2.
func TestBinaryUsageError(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(taskdBinary(t), "-log-format", "xml")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2", err)
	}
	if !strings.HasPrefix(stderr.String(), `taskd: invalid -log-format "xml"`) || stdout.Len() != 0 {
		t.Errorf("stderr %q, stdout %q", stderr.String(), stdout.String())
	}
}

func TestRunListenError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	m := &Main{}
	err = m.Run(context.Background(), []string{"-addr", ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run on a busy address = %v, want a listen error", err)
	}
	if code := exitCode(err, io.Discard); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
}

func TestRunTextLog(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&Main{Stderr: pw, Listener: ln}).Run(ctx, []string{"-shutdown-grace", "0", "-data", t.TempDir()})
		pw.Close()
	}()
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	resp, err := h1Client(t).Get("http://" + ln.Addr().String() + "/longrunningtask?iterations=1&interval=0s")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := testlog.Recv(t, "Run", done); err != nil {
		t.Errorf("Run: %v", err)
	}
	var all []string
	for l := range lines {
		all = append(all, l)
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{`level=INFO msg=listening addr=`, `msg="Iteration 1 of 1 completed." request_id=`, `msg=request method=GET path=/longrunningtask status=200`} {
		if !strings.Contains(text, want) {
			t.Errorf("text log lacks %q:\n%s", want, text)
		}
	}
}

// runBinary starts the built taskd with args and returns its JSON log, the
// base URL it listens on, and the command (already started).
func runBinary(t *testing.T, args ...string) (*exec.Cmd, *testlog.Sink, string) {
	t.Helper()
	cmd, logs := spawnBinary(t, args...)
	return cmd, logs, listeningURL(t, logs)
}

// listeningURL waits for the "listening" line of a taskd's log and
// returns its base URL.
func listeningURL(t *testing.T, logs *testlog.Sink) string {
	t.Helper()
	r := logs.Wait(t, "listening", func(r testlog.Record) bool { return r.Str("msg") == "listening" })
	return "http://" + r.Str("addr")
}

// spawnBinary starts the built taskd with args (on 127.0.0.1:0, JSON logs,
// a temporary -data) and returns the command and its log; it does not
// wait for it to listen. The process is killed at the end of the test if
// it is still running.
func spawnBinary(t *testing.T, args ...string) (*exec.Cmd, *testlog.Sink) {
	t.Helper()
	logs := testlog.NewSink()
	cmd := exec.Command(taskdBinary(t), append([]string{"-addr", "127.0.0.1:0", "-log-format", "json", "-data", t.TempDir()}, args...)...)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, logs
}

// wait waits for the process to exit and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	c := make(chan error, 1)
	go func() { c <- cmd.Wait() }()
	err := testlog.Recv(t, "process exit", c)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode()
}

type result struct {
	code int
	body string
	err  error
}

func getAsync(t *testing.T, url, id string) <-chan result {
	t.Helper()
	client := h1Client(t)
	c := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("X-Request-Id", id)
		resp, err := client.Do(req)
		if err != nil {
			c <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		c <- result{resp.StatusCode, string(b), err}
	}()
	return c
}

func TestBinaryGracefulShutdown(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			const grace = 200 * time.Millisecond
			cmd, logs, url := runBinary(t, "-shutdown-grace", grace.String())
			res := getAsync(t, url+"/longrunningtask?iterations=1&interval=1h", "inflight")
			logs.Wait(t, "start", msgID("Long-running task started.", "inflight"))

			sent := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			sd := logs.Wait(t, "shutdown record", func(r testlog.Record) bool { return r.Str("msg") == "shutting down" })
			if want := "received " + signalName(sig); sd.Str("cause") != want {
				t.Errorf("shutdown record %v, want cause %q", sd, want)
			}
			logs.Wait(t, "grace over", func(r testlog.Record) bool { return r.Str("msg") == "grace period over, canceling in-flight requests" })
			// The listener was closed before the grace period began.
			if c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://")); err == nil {
				c.Close()
				t.Error("a connection was accepted during shutdown")
			}

			r := testlog.Recv(t, "response", res)
			if r.err != nil || r.code != 200 || r.body != "Long-running task cancelled successfully.\n" {
				t.Errorf("in-flight request got %+v, want 200 and the cancel message", r)
			}
			if elapsed := time.Since(sent); elapsed < grace {
				t.Errorf("answered %v after the signal, within the grace period %v", elapsed, grace)
			}
			if code := waitExit(t, cmd); code != 0 {
				t.Errorf("exit code %d, want 0; log:\n%s", code, logs.Dump())
			}
			checkCancelled(t, logs, "inflight", "server shutting down", 0)
			sdr := logs.Wait(t, "shut down", func(r testlog.Record) bool { return r.Str("msg") == "shut down" })
			// Durations in the JSON log are readable: milliseconds with the
			// unit in the key, or a Go duration string.
			if _, ok := sdr["took_ms"].(float64); !ok || sd.Str("grace") != grace.String() {
				t.Errorf("shutdown records %v, %v; want took_ms and grace %q", sd, sdr, grace)
			}
		})
	}
}

func TestBinarySecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	cmd, logs, url := runBinary(t, "-shutdown-grace", "1h")
	res := getAsync(t, url+"/longrunningtask?iterations=1&interval=1h", "stuck")
	logs.Wait(t, "start", msgID("Long-running task started.", "stuck"))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	logs.Wait(t, "shutdown record", func(r testlog.Record) bool { return r.Str("msg") == "shutting down" })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit code %d, want %d", code, 128+int(syscall.SIGTERM))
	}
	logs.Wait(t, "exit message", func(r testlog.Record) bool { return strings.Contains(r.Str("msg"), "exiting at once") })
	if r := testlog.Recv(t, "response", res); r.err == nil {
		t.Errorf("the in-flight request got %+v after the process exited", r)
	}
}

// TestBinarySecondSignalBlockedStderr: with standard error a pipe that
// nobody reads (full, so every write blocks), the second signal still
// exits at once.
func TestBinarySecondSignalBlockedStderr(t *testing.T) {
	t.Parallel()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := exec.Command(taskdBinary(t), "-addr", "127.0.0.1:0", "-log-format", "json", "-shutdown-grace", "1h", "-data", t.TempDir())
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// Read the log until taskd listens, then stop reading and fill the
	// pipe: from now on, every write to stderr blocks.
	sc := bufio.NewScanner(pr)
	var addr string
	for addr == "" && sc.Scan() {
		if _, a, ok := strings.Cut(sc.Text(), `"addr":"`); ok {
			addr, _, _ = strings.Cut(a, `"`)
		}
	}
	if addr == "" {
		t.Fatalf("no listening line: %v", sc.Err())
	}
	fillPipe(t, pw)
	pw.Close() // the child has its own copy

	// A request: its log line blocks the handler (and the logger's lock).
	c := testlog.RawGet(t, addr, "/longrunningtask?iterations=1&interval=1h", "blocked")
	defer c.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := waitExit(t, cmd)
	took := time.Since(sent)
	// Both signals may be pending at once; the kernel then delivers SIGINT
	// first.
	if code != 128+int(syscall.SIGINT) && code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit code %d, want 128+signal", code)
	}
	// Required: within 100 ms. taskd waits at most exitMessageBudget for
	// its message; the bound leaves room for a loaded machine.
	if took > time.Second {
		t.Errorf("exited %v after the second signal", took)
	}
	t.Logf("exited %v after the second signal", took)
}

// fillPipe fills the pipe whose write end is w, which holds nothing yet.
// os/exec put w in blocking mode; writing exactly the pipe's capacity
// returns once the pipe is full.
func fillPipe(t *testing.T, w *os.File) {
	t.Helper()
	const fGetPipeSz = 1032 // F_GETPIPE_SZ (Linux)
	size, _, errno := syscall.Syscall(syscall.SYS_FCNTL, w.Fd(), fGetPipeSz, 0)
	if errno != 0 {
		t.Skipf("F_GETPIPE_SZ: %v", errno)
	}
	if _, err := w.Write(bytes.Repeat([]byte("x"), int(size))); err != nil {
		t.Fatal(err)
	}
}

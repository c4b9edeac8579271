package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/internal/testbin"
)

// buildFetch builds the command once per test run and returns its path.
// FETCH_TEST_BINARY, when set, names a binary to test instead (say, one
// built from an older commit, to see which tests fail without a fix).
func buildFetch(t *testing.T) string {
	t.Helper()
	return testbin.Build(t, "fetch", "FETCH_TEST_BINARY")
}

// runBinary runs the built fetch in dir with stdin and returns its exit
// code, stdout and stderr.
func runBinary(t *testing.T, dir string, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), buildFetch(t), args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return exitCode(t, err), stdout.String(), stderr.String()
}

// waitForPart waits until path holds at least n bytes, or fails the test
// before the test's deadline.
func waitForPart(t *testing.T, path string, n int64) int64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	if d, ok := t.Deadline(); ok && time.Until(d) < 25*time.Second {
		deadline = d.Add(-5 * time.Second)
	}
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(path); err == nil && fi.Size() >= n {
			return fi.Size()
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded by deadline
	}
	t.Fatalf("%s never reached %d bytes", path, n)
	return 0
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return ee.ExitCode()
}

// TestInterrupt is the seed scenario end to end: SIGINT in the middle of
// a throttled download exits 130 quickly, keeps the .part with its
// validator and says how to resume; the same command then resumes with
// Range and If-Range and produces the exact bytes.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	bin := buildFetch(t)
	s := newServer(t, 4<<20)
	s.h.SetRate(2 << 20) // 2 s for the whole file
	dir := t.TempDir()
	url := s.srv.URL + "/files/big.bin"
	args := []string{"-dir", dir, "-idle-timeout", "5s", url}
	final := filepath.Join(dir, "big.bin")

	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) // if the test fails before Wait
	waitForPart(t, final+".part", 512<<10)
	sent := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	took := time.Since(sent)
	t.Logf("SIGINT to exit: %v", took)
	if code := exitCode(t, err); code != exitInterrupted {
		t.Fatalf("exit %d, want 130\n%s", code, stderr.String())
	}
	if took > 2*time.Second {
		t.Errorf("took %v from SIGINT to exit", took)
	}
	hint := fmt.Sprintf("to resume, run the same command again:\n  %s %s\n", bin, strings.Join(args, " "))
	if !strings.Contains(stderr.String(), hint) || !strings.Contains(stderr.String(), "big.bin: interrupted at ") {
		t.Errorf("stderr:\n%s\nwant the hint:\n%s", stderr.String(), hint)
	}
	if _, err := os.Stat(final); !os.IsNotExist(err) {
		t.Fatalf("final file exists after an interrupt (err %v)", err)
	}
	fi, err := os.Stat(final + ".part")
	if err != nil || fi.Size() < 512<<10 || fi.Size() >= 4<<20 {
		t.Fatalf("part: %v %v", fi, err)
	}
	kept := fi.Size()
	var meta struct {
		URL, ETag string
		Size      int64
	}
	b, err := os.ReadFile(final + ".part.meta")
	if err != nil || json.Unmarshal(b, &meta) != nil || meta.URL != url || meta.ETag != `"v1"` || meta.Size != 4<<20 {
		t.Fatalf("meta %s %v", b, err)
	}

	// Resume: the same command.
	s.h.SetRate(0)
	stderr.Reset()
	cmd = exec.Command(bin, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("resume: %v\n%s", err, stderr.String())
	}
	checkFile(t, final, s.data)
	reqs := s.h.Requests()
	last := reqs[len(reqs)-1]
	if want := fmt.Sprintf("bytes=%d-", kept); last.Range != want || last.IfRange != `"v1"` {
		t.Errorf("resume request %+v, want Range %s with If-Range \"v1\"", last, want)
	}
}

// TestSecondSignal: a second signal during shutdown exits at once, still
// with 130 and a resumable .part.
func TestSecondSignal(t *testing.T) {
	t.Parallel()
	bin := buildFetch(t)
	s := newServer(t, 4<<20)
	s.h.SetRate(1 << 20)
	dir := t.TempDir()
	cmd := exec.Command(bin, "-dir", dir, "-quiet", s.srv.URL+"/f.bin")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	waitForPart(t, filepath.Join(dir, "f.bin.part"), 64<<10)
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	took := time.Since(sent)
	if code := exitCode(t, err); code != exitInterrupted {
		t.Fatalf("exit %d, want 130\n%s", code, stderr.String())
	}
	if took > 2*time.Second {
		t.Errorf("took %v", took)
	}
	if _, err := os.Stat(filepath.Join(dir, "f.bin.part.meta")); err != nil {
		t.Errorf("validator not kept: %v", err)
	}
}

// startBinary starts the built fetch in dir; the test's end kills it if
// it is still running.
func startBinary(t *testing.T, dir string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(buildFetch(t), args...)
	cmd.Dir = dir
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, stderr
}

// syncBuffer is a bytes.Buffer that a child process writes while the test
// reads it, and whose writes can be waited for.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{} // closed and replaced at each write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the output contains s, or fails the test before
// its deadline.
func (b *syncBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	if d, ok := t.Deadline(); ok && time.Until(d) < 25*time.Second {
		timeout = time.After(time.Until(d) - 5*time.Second)
	}
	for {
		b.mu.Lock()
		if strings.Contains(b.buf.String(), s) {
			b.mu.Unlock()
			return
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-timeout:
			t.Fatalf("no %q in\n%s", s, b.String())
		}
	}
}

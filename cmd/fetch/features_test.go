package main

// End-to-end tests of the features of issue 9 (what users of wget, curl
// and aria2 expect), against the built binary.

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHeaders(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	dir := t.TempDir()
	code, _, stderr := runBinary(t, dir, nil, "-H", "X-One: 1", "-H", "Cookie: a=b", "-H", "X-One: 2", s.srv.URL+"/f.bin")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	h := s.h.Requests()[0].Header
	if got := h.Values("X-One"); len(got) != 2 || got[0] != "1" || got[1] != "2" || h.Get("Cookie") != "a=b" {
		t.Errorf("headers %v", h)
	}
}

func TestURLList(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	list := "# mirrors\n" + s.srv.URL + "/a.bin\n\n  " + s.srv.URL + "/b.bin  \n"
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(list), 0o666)
		code, _, stderr := runBinary(t, dir, nil, "-i", "urls.txt", s.srv.URL+"/c.bin")
		if code != exitOK || !strings.Contains(stderr, "3 saved") {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		for _, n := range []string{"a.bin", "b.bin", "c.bin"} {
			checkFile(t, filepath.Join(dir, n), s.data)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		code, _, stderr := runBinary(t, dir, strings.NewReader(list), "-i", "-")
		if code != exitOK || !strings.Contains(stderr, "2 saved") {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
	})
}

func TestLimitRate(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	dir := t.TempDir()
	start := time.Now()
	code, _, stderr := runBinary(t, dir, nil, "-limit-rate", "2M", s.srv.URL+"/f.bin")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("1 MiB at -limit-rate 2M took %v", took)
	}
	checkFile(t, filepath.Join(dir, "f.bin"), s.data)
}

func TestTLSFlags(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	srv := httptest.NewUnstartedServer(s.h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o666)

	code, _, stderr := runBinary(t, dir, nil, "-o", "x.bin", srv.URL+"/f.bin")
	if code != exitFailed || !strings.Contains(stderr, "certificate") || strings.Contains(stderr, "retrying") {
		t.Errorf("unverified: exit %d, want 1 at once\n%s", code, stderr)
	}
	for _, flags := range [][]string{{"-insecure"}, {"-cacert", pemFile}} {
		code, _, stderr := runBinary(t, dir, nil, append(flags, "-o", "x.bin", srv.URL+"/f.bin")...)
		if code != exitOK {
			t.Errorf("%v: exit %d\n%s", flags, code, stderr)
		}
		checkFile(t, filepath.Join(dir, "x.bin"), s.data)
	}
}

// TestURLWithoutScheme: "host:port/path" is http://, as wget takes it;
// flags may follow the URLs.
func TestURLWithoutSchemeAndFlagsAfter(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	dir := t.TempDir()
	hostPath := strings.TrimPrefix(s.srv.URL, "http://") + "/f.bin"
	code, _, stderr := runBinary(t, t.TempDir(), nil, hostPath, "-dir", dir, "-quiet")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	checkFile(t, filepath.Join(dir, "f.bin"), s.data)
	// "--" ends the flags.
	code, _, stderr = runBinary(t, dir, nil, "-o", "g.bin", "--", hostPath)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	checkFile(t, filepath.Join(dir, "g.bin"), s.data)
}

func TestNoClobberFlag(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f.bin"), []byte("mine"), 0o666)
	code, _, stderr := runBinary(t, dir, nil, "-no-clobber", s.srv.URL+"/f.bin", s.srv.URL+"/g.bin")
	if code != exitOK || !strings.Contains(stderr, "skipped f.bin: it exists (-no-clobber)") || !strings.Contains(stderr, "1 saved, 1 skipped (exist)") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f.bin")); string(b) != "mine" {
		t.Error("f.bin replaced")
	}
	checkFile(t, filepath.Join(dir, "g.bin"), s.data)
	for _, r := range s.h.Requests() {
		if r.Range != "" {
			t.Errorf("request %+v", r)
		}
	}
	if n := len(s.h.Requests()); n != 1 {
		t.Errorf("%d requests, want only g.bin's", n)
	}
}

// TestSplitInterruptResume: -split 4 on a server limiting each response:
// 4 connections at once; SIGINT keeps every segment's progress and exits
// quickly; the same command resumes only what is missing.
func TestSplitInterruptResume(t *testing.T) {
	t.Parallel()
	s := newServer(t, 8<<20)
	s.h.SetRate(2 << 20)
	dir := t.TempDir()
	args := []string{"-split", "4", s.srv.URL + "/big.bin"}
	cmd, stderr := startBinary(t, dir, args...)
	stderr.waitFor(t, "over 4 connections")
	meta := filepath.Join(dir, "big.bin.part.meta")
	deadline := time.Now().Add(20 * time.Second)
	for maxActive(s) < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling the server's state, bounded
	}
	sent := time.Now()
	cmd.Process.Signal(os.Interrupt)
	code := exitCode(t, cmd.Wait())
	took := time.Since(sent)
	t.Logf("SIGINT to exit with -split 4: %v", took)
	if took > 2*time.Second {
		t.Errorf("took %v from SIGINT to exit", took)
	}
	if code != exitInterrupted || !strings.Contains(stderr.String(), "partial files are kept; to resume") {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if n := maxActive(s); n != 4 {
		t.Errorf("%d requests at once, want 4", n)
	}
	var m struct {
		Missing []string `json:"missing"`
	}
	b, err := os.ReadFile(meta)
	if err != nil || json.Unmarshal(b, &m) != nil || len(m.Missing) != 4 {
		t.Fatalf("meta %s %v: want 4 missing ranges", b, err)
	}
	s.h.SetRate(0)
	code, _, out := runBinary(t, dir, nil, args...)
	if code != exitOK || !strings.Contains(out, "big.bin: resuming at ") {
		t.Fatalf("resume: exit %d\n%s", code, out)
	}
	checkFile(t, filepath.Join(dir, "big.bin"), s.data)
}

func maxActive(s *server) int {
	n := 0
	for _, r := range s.h.Requests() {
		n = max(n, r.Active)
	}
	return n
}

// TestSplitMemory: -split 8 stays far below 64 MiB of peak RSS: one
// buffer per connection, whatever the file size. The peak is the child's
// VmHWM, read while it runs (its rusage would count this test process's
// memory, which the child shared until its exec).
func TestSplitMemory(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	s := newServer(t, 64<<20)
	s.h.SetRate(16 << 20) // 0.5 s over 8 connections
	dir := t.TempDir()
	cmd := exec.Command(buildFetch(t), "-quiet", "-split", "8", s.srv.URL+"/big.bin")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		case <-tick.C:
			b, err := os.ReadFile(status)
			if _, v, ok := strings.Cut(string(b), "VmHWM:"); err == nil && ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.Fields(v)[0], "kB")), 10, 64)
				peak = max(peak, kb<<10)
			}
		}
	}
	checkFile(t, filepath.Join(dir, "big.bin"), s.data)
	t.Logf("peak RSS with -split 8: %.1f MiB", float64(peak)/(1<<20))
	if peak == 0 || peak > 64<<20 {
		t.Errorf("peak RSS %.1f MiB with -split 8", float64(peak)/(1<<20))
	}
	if n := maxActive(s); n < 4 {
		t.Errorf("%d requests at once", n)
	}
}

// TestSplitKilled: the progress of segments is stored as they go, so a
// kill -9 (or a second Ctrl-C, which exits at once) loses at most about a
// second of it; the next run resumes from there, byte for byte.
func TestSplitKilled(t *testing.T) {
	t.Parallel()
	s := newServer(t, 8<<20)
	s.h.SetRate(1 << 20) // 2 s for each of the 4 segments
	dir := t.TempDir()
	args := []string{"-split", "4", s.srv.URL + "/big.bin"}
	cmd, _ := startBinary(t, dir, args...)
	meta := filepath.Join(dir, "big.bin.part.meta")
	deadline := time.Now().Add(20 * time.Second)
	var kept int64
	for kept < 1<<20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the file, bounded
		var m struct {
			Size    int64    `json:"size"`
			Missing []string `json:"missing"`
		}
		if b, err := os.ReadFile(meta); err == nil && json.Unmarshal(b, &m) == nil && len(m.Missing) > 0 {
			kept = m.Size
			for _, r := range m.Missing {
				a, z, _ := strings.Cut(r, "-")
				first, _ := strconv.ParseInt(a, 10, 64)
				last, _ := strconv.ParseInt(z, 10, 64)
				kept -= last + 1 - first
			}
		}
	}
	if kept < 1<<20 {
		t.Fatalf("the .meta never recorded 1 MiB of progress (%d bytes)", kept)
	}
	cmd.Process.Kill()
	cmd.Wait()
	code, _, out := runBinary(t, dir, nil, args...)
	if code != exitOK || !strings.Contains(out, "big.bin: resuming at ") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	checkFile(t, filepath.Join(dir, "big.bin"), s.data)
}

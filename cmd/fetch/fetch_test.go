// Tests of the fetch command. They are in package main (a command cannot
// be imported by an external test package); they use only Main.Run,
// watchSignals and the built binary.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/download/downloadtest"
	"github.com/go-cancellation/cancellation/internal/testbin"
)

// TestMain removes the binary the tests built (see buildFetch) and checks
// for leaked goroutines.
func TestMain(m *testing.M) { testbin.Main(m) }

const fileSize = 1 << 20

type server struct {
	h    *downloadtest.Handler
	srv  *httptest.Server
	data []byte
}

func newServer(t *testing.T, size int64) *server {
	t.Helper()
	data := downloadtest.Pattern{Seed: 9}.Bytes(size)
	h := downloadtest.New(bytes.NewReader(data), size, `"v1"`)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Close(); srv.Close() })
	return &server{h: h, srv: srv, data: data}
}

// run runs fetch in-process and returns its exit code and output.
func run(t *testing.T, ctx context.Context, s *server, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr}
	if s != nil {
		m.Transport = s.srv.Client().Transport
	}
	code := m.Run(ctx, args)
	return code, stdout.String(), stderr.String()
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, sha256 %x; want %d bytes, %x", path, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
	for _, p := range []string{path + ".part", path + ".part.meta"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) && !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("%s left behind", p)
		}
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no URL", nil, "no URL given"},
		{"-o with two URLs", []string{"-o", "x", "http://a/1", "http://a/2"}, "-o takes exactly one URL"},
		{"-sha256 with two URLs", []string{"-sha256", strings.Repeat("0", 64), "http://a/1", "http://a/2"}, "-sha256 takes exactly one URL"},
		{"bad -sha256", []string{"-sha256", "xyz", "http://a/1"}, "want 64 hex digits"},
		{"-parallel 0", []string{"-parallel", "0", "http://a/1"}, "-parallel must be at least 1"},
		{"negative -retries", []string{"-retries", "-1", "http://a/1"}, "-retries must not be negative"},
		{"negative -timeout", []string{"-timeout", "-1s", "http://a/1"}, "timeouts must not be negative"},
		{"unknown flag", []string{"-x", "http://a/1"}, "flag provided but not defined: -x"},
		{"bad duration", []string{"-timeout", "soon", "http://a/1"}, "invalid value"},
		{"not http", []string{"ftp://a/1"}, `"ftp://a/1": not a valid http or https URL: the scheme must be http or https`},
		{"port out of range", []string{"http://a:99999/x"}, "port 99999 is not between 1 and 65535"},
		{"no host", []string{"http:///x"}, "no host"},
		{"password not shown", []string{"http://u:secret@a:0/x"}, `"http://u:xxxxx@a:0/x": not a valid`},
		{"flag after URL needs its value", []string{"http://a/1", "-o"}, "flag needs an argument: -o"},
		{"-split 0", []string{"-split", "0", "http://a/1"}, "-split must be from 1 to 16"},
		{"bad -limit-rate", []string{"-limit-rate", "fast", "http://a/1"}, "want a rate like 500k"},
		{"bad -H", []string{"-H", "NoColon", "http://a/1"}, `want "Name: value"`},
		{"-H Range", []string{"-H", "Range: bytes=1-", "http://a/1"}, "Range is set by fetch"},
		{"-i missing file", []string{"-i", "/nonexistent/urls.txt"}, "no such file"},
		{"-cacert missing", []string{"-cacert", "/nonexistent.pem", "http://a/1"}, "-cacert: open /nonexistent.pem"},
		{"-insecure and -cacert", []string{"-insecure", "-cacert", "x.pem", "http://a/1"}, "exclude each other"},
		{"-o directory", []string{"-o", ".", "http://a/1"}, "-o . is a directory"},
		{"-o parent", []string{"-o", "..", "http://a/1"}, "-o .. is a directory"},
		{"-o slash", []string{"-o", "out/", "http://a/1"}, "-o out/ is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := run(t, t.Context(), nil, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "fetch -h") {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.want)
			}
		})
	}
	t.Run("-h", func(t *testing.T) {
		t.Parallel()
		code, stdout, _ := run(t, t.Context(), nil, "-h")
		if code != exitOK || !strings.Contains(stdout, "usage: fetch [flags] URL...") || !strings.Contains(stdout, "-idle-timeout") {
			t.Errorf("exit %d, stdout %q", code, stdout)
		}
	})
}

func TestDownloadMany(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	dir := t.TempDir()
	code, _, stderr := run(t, t.Context(), s, "-dir", dir, "-parallel", "2",
		s.srv.URL+"/a/one.bin", s.srv.URL+"/b/two.bin", s.srv.URL+"/c/three.bin", s.srv.URL+"/a/one.bin")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, name := range []string{"one.bin", "two.bin", "three.bin"} {
		checkFile(t, filepath.Join(dir, name), s.data)
		if !strings.Contains(stderr, "saved "+filepath.Join(dir, name)) {
			t.Errorf("no line for %s in\n%s", name, stderr)
		}
	}
	if !strings.Contains(stderr, "fetch: 3 saved, 3.0 MiB downloaded in ") {
		t.Errorf("summary missing:\n%s", stderr)
	}
}

func TestOneFails(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	s.h.Plan(downloadtest.Step{Status: 404})
	dir := t.TempDir()
	// -parallel 1: the first request (the 404) is the first URL's.
	code, _, stderr := run(t, t.Context(), s, "-dir", dir, "-parallel", "1", "-quiet", s.srv.URL+"/missing.bin", s.srv.URL+"/ok.bin")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	checkFile(t, filepath.Join(dir, "ok.bin"), s.data)
	want := "fetch: " + s.srv.URL + "/missing.bin: HTTP 404 Not Found\nfetch: 1 saved, 1 failed, 1.0 MiB downloaded in "
	if !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 2 {
		t.Errorf("stderr:\n%s\nwant exactly the error and the summary:\n%s", stderr, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.bin")); !os.IsNotExist(err) {
		t.Error("missing.bin exists")
	}
}

func TestSHA256(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	sum := sha256.Sum256(s.data)
	t.Run("match", func(t *testing.T) {
		t.Parallel()
		out := filepath.Join(t.TempDir(), "named.bin")
		code, _, stderr := run(t, t.Context(), s, "-o", out, "-sha256", hex.EncodeToString(sum[:]), s.srv.URL+"/x")
		if code != exitOK {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		checkFile(t, out, s.data)
	})
	t.Run("mismatch", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		code, _, stderr := run(t, t.Context(), s, "-dir", dir, "-o", "f.bin", "-sha256", strings.Repeat("ab", 32), s.srv.URL+"/x")
		if code != exitFailed || !strings.Contains(stderr, s.srv.URL+"/x: sha256 mismatch: got ") {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("left %v", entries)
		}
	})
}

func TestStallIsRetried(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	s.h.Plan(downloadtest.Step{Stall: true, After: 100_000})
	dir := t.TempDir()
	code, _, stderr := run(t, t.Context(), s, "-dir", dir, "-idle-timeout", "200ms", s.srv.URL+"/f.bin")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	checkFile(t, filepath.Join(dir, "f.bin"), s.data)
	for _, want := range []string{"f.bin: stalled: no data for 200ms; retrying in ", "f.bin: resuming at 97.7 KiB of 1.0 MiB (9%)", "resumed at 97.7 KiB"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("no %q in\n%s", want, stderr)
		}
	}
}

func TestRetriesExhausted(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	s.h.Plan(downloadtest.Step{Status: 500}, downloadtest.Step{Status: 503, RetryAfter: "0"})
	code, _, stderr := run(t, t.Context(), s, "-dir", t.TempDir(), "-retries", "1", s.srv.URL+"/f.bin")
	if code != exitFailed || !strings.Contains(stderr, s.srv.URL+"/f.bin: HTTP 503 Service Unavailable") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// TestCanceled: the in-process view of an interrupt; the binary test below
// covers the signal.
func TestCanceled(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	reached := make(chan struct{})
	s.h.Plan(downloadtest.Step{Stall: true, After: 300_000, Reached: reached})
	dir := t.TempDir()
	src := cancellation.New(t.Context())
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		var stderr bytes.Buffer
		m := &Main{Stderr: &stderr, Transport: s.srv.Client().Transport}
		code := m.Run(src.Token(), []string{"-dir", dir, "-retries", "0", s.srv.URL + "/f.bin"})
		done <- result{code, stderr.String()}
	}()
	<-reached
	waitForPart(t, filepath.Join(dir, "f.bin.part"), 300_000)
	src.CancelCause(errInterrupted)
	r := <-done
	code, stderr := r.code, r.stderr
	if code != exitInterrupted {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"fetch: interrupted: 1 incomplete", "to resume, run the same command again:\n  fetch -dir " + dir + " -retries 0 " + s.srv.URL + "/f.bin\n"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("no %q in\n%s", want, stderr)
		}
	}
	code, _, stderr = run(t, t.Context(), s, "-dir", dir, "-retries", "0", s.srv.URL+"/f.bin")
	if code != exitOK {
		t.Fatalf("resume: exit %d\n%s", code, stderr)
	}
	checkFile(t, filepath.Join(dir, "f.bin"), s.data)
}

// TestBars runs the terminal display (into a buffer) to the end.
func TestBars(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	s.h.Plan(downloadtest.Step{Cut: true, After: 200_000}, downloadtest.Step{}, downloadtest.Step{Status: 404})
	dir := t.TempDir()
	var stderr bytes.Buffer
	m := &Main{Stderr: &stderr, Terminal: true, Transport: s.srv.Client().Transport}
	code := m.Run(t.Context(), []string{"-dir", dir, "-parallel", "1", s.srv.URL + "/a.bin", s.srv.URL + "/b.bin"})
	if code != exitFailed {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	checkFile(t, filepath.Join(dir, "a.bin"), s.data)
	if !strings.Contains(stderr.String(), "HTTP 404 Not Found") {
		t.Errorf("no error shown:\n%s", stderr.String())
	}
}

func TestWatchSignals(t *testing.T) {
	t.Parallel()
	sig := make(chan os.Signal, 2)
	src := cancellation.New()
	exited := make(chan int, 1)
	var stderr bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchSignals(sig, src, &stderr, func(code int) { exited <- code })
	}()
	sig <- syscall.SIGINT
	<-src.Token().Done()
	if context.Cause(src.Token()) != errInterrupted {
		t.Errorf("cause %v", context.Cause(src.Token()))
	}
	select {
	case code := <-exited:
		t.Fatalf("exit(%d) after the first signal", code)
	default:
	}
	sig <- syscall.SIGTERM
	if code := <-exited; code != exitInterrupted {
		t.Errorf("exit(%d), want 130", code)
	}
	<-done
	if !strings.Contains(stderr.String(), "interrupted again: exiting now") {
		t.Errorf("stderr %q", stderr.String())
	}
}

func TestShellJoin(t *testing.T) {
	t.Parallel()
	got := shellJoin([]string{"fetch", "-dir", "my dir", "http://x/a?b=1&c='2'", ""})
	want := `fetch -dir 'my dir' 'http://x/a?b=1&c='\''2'\''' ''`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

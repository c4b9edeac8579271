package main

// End-to-end tests of the defects of issue 9, each against the built
// binary where it was seen: each failed before its fix.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/download/downloadtest"
)

// Defect 1: resumed bytes that turn out wrong under the same ETag within
// one run are downloaded again from zero, once, instead of failing.
func TestSHA256WrongResumeWithinRun(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	reached, hold := make(chan struct{}), make(chan struct{})
	s.h.Plan(downloadtest.Step{Cut: true, After: 300_000, Reached: reached, Hold: hold})
	v2 := downloadtest.Pattern{Seed: 42}.Bytes(fileSize)
	go func() {
		<-reached
		// Same ETag, other bytes: the resume splices two versions. The
		// cut waits for the switch.
		s.h.SetContent(bytes.NewReader(v2), fileSize, `"v1"`, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		close(hold)
	}()
	sum := sha256.Sum256(v2)
	dir := t.TempDir()
	code, _, stderr := runBinary(t, dir, nil, "-sha256", hex.EncodeToString(sum[:]), s.srv.URL+"/f.bin")
	if code != exitOK {
		t.Fatalf("exit %d, want 0\n%s", code, stderr)
	}
	checkFile(t, filepath.Join(dir, "f.bin"), v2)
	if !strings.Contains(stderr, "starting again from zero (1.0 MiB): sha256 mismatch") {
		t.Errorf("the restart is not explained:\n%s", stderr)
	}
}

// Defect 2: names of 242-255 bytes are kept whole; longer ones are cut to
// 255 bytes with the extension kept; every name derived fits.
func TestLongNames(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	data := downloadtest.Pattern{Seed: 3}.Bytes(fileSize)
	name250 := strings.Repeat("a", 246) + ".bin"
	name300 := strings.Repeat("b", 296) + ".iso"
	for path, name := range map[string]string{"/250": name250, "/300": name300} {
		h := downloadtest.New(bytes.NewReader(data), fileSize, `"v1"`)
		h.SetContentDisposition(`attachment; filename="` + name + `"`)
		h.Plan(downloadtest.Step{Cut: true, After: 100_000}) // a resume too
		t.Cleanup(h.Close)
		mux.Handle(path, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	code, _, stderr := runBinary(t, dir, nil, "-parallel", "1", srv.URL+"/250", srv.URL+"/300")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	checkFile(t, filepath.Join(dir, name250), data)
	checkFile(t, filepath.Join(dir, strings.Repeat("b", 251)+".iso"), data)
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("left %d entries, want the 2 files", len(entries))
	}
}

// Defect 3: two URLs the server names alike are saved as NAME and
// NAME.1, never one over the other, with either -parallel.
func TestNameClash(t *testing.T) {
	t.Parallel()
	for _, parallel := range []string{"1", "2"} {
		t.Run("parallel="+parallel, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			one := downloadtest.Pattern{Seed: 1}.Bytes(fileSize)
			two := downloadtest.Pattern{Seed: 2}.Bytes(fileSize)
			for path, data := range map[string][]byte{"/one": one, "/two": two} {
				h := downloadtest.New(bytes.NewReader(data), fileSize, `"v1"`)
				h.SetContentDisposition(`attachment; filename="report.pdf"`)
				h.SetRate(4 << 20) // both at once with -parallel 2
				t.Cleanup(h.Close)
				mux.Handle(path, h)
			}
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			dir := t.TempDir()
			code, _, stderr := runBinary(t, dir, nil, "-parallel", parallel, srv.URL+"/one", srv.URL+"/two")
			if code != exitOK {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			a, _ := os.ReadFile(filepath.Join(dir, "report.pdf"))
			b, _ := os.ReadFile(filepath.Join(dir, "report.pdf.1"))
			if !(bytes.Equal(a, one) && bytes.Equal(b, two) || bytes.Equal(a, two) && bytes.Equal(b, one)) {
				t.Fatalf("report.pdf and report.pdf.1 do not hold the two files\n%s", stderr)
			}
			if !strings.Contains(stderr, "report.pdf.1 (1.0 MiB") || !strings.Contains(stderr, "(not report.pdf: another URL of this run is saved there)") ||
				!strings.Contains(stderr, "2 saved") {
				t.Errorf("stderr does not say so:\n%s", stderr)
			}
		})
	}
}

// Defect 4: the command line decides the name. A .part left by
// "-o custom.bin" is left alone by a later plain run of the URL.
func TestLeftoverOfOtherTarget(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	s.h.Plan(downloadtest.Step{Cut: true, After: 300_000})
	dir := t.TempDir()
	url := s.srv.URL + "/files/file.bin"
	code, _, stderr := runBinary(t, dir, nil, "-retries", "0", "-o", "custom.bin", url)
	if code != exitFailed {
		t.Fatalf("first run: exit %d, want 1\n%s", code, stderr)
	}
	part, err := os.ReadFile(filepath.Join(dir, "custom.bin.part"))
	if err != nil || len(part) != 300_000 {
		t.Fatalf("custom.bin.part: %d bytes, %v", len(part), err)
	}
	code, _, stderr = runBinary(t, dir, nil, url)
	if code != exitOK {
		t.Fatalf("plain run: exit %d\n%s", code, stderr)
	}
	checkFile(t, filepath.Join(dir, "file.bin"), s.data)
	if _, err := os.Stat(filepath.Join(dir, "custom.bin")); !os.IsNotExist(err) {
		t.Errorf("custom.bin was written by a run without -o")
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "custom.bin.part")); !bytes.Equal(again, part) {
		t.Errorf("custom.bin.part was touched")
	}
	// And -o custom.bin still resumes it.
	code, _, stderr = runBinary(t, dir, nil, "-o", "custom.bin", url)
	if code != exitOK || !strings.Contains(stderr, "resuming at 293.0 KiB") {
		t.Fatalf("resume: exit %d\n%s", code, stderr)
	}
	checkFile(t, filepath.Join(dir, "custom.bin"), s.data)
}

// Defect 5: -o naming a directory is refused before any request; -o -
// writes to standard output.
func TestOutputEdgeCases(t *testing.T) {
	t.Parallel()
	s := newServer(t, fileSize)
	url := s.srv.URL + "/f.bin"
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"existing dir", []string{"-o", "sub"}},
		{"dot dot", []string{"-dir", "sub", "-o", ".."}},
		{"dir and dot", []string{"-dir", "sub", "-o", "."}},
		{"trailing slash", []string{"-o", "outdir/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.Mkdir(filepath.Join(dir, "sub"), 0o777)
			code, _, stderr := runBinary(t, dir, nil, append(tc.args, url)...)
			if code != exitUsage || !strings.Contains(stderr, "is a directory") {
				t.Errorf("exit %d, want 2\n%s", code, stderr)
			}
			var found []string
			filepath.Walk(filepath.Dir(dir), func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					found = append(found, p)
				}
				return nil
			})
			if len(found) > 0 {
				t.Errorf("files left: %v", found)
			}
		})
	}
	if n := len(s.h.Requests()); n != 0 {
		t.Errorf("%d requests made; want none", n)
	}
	t.Run("stdout", func(t *testing.T) {
		dir := t.TempDir()
		code, stdout, stderr := runBinary(t, dir, nil, "-o", "-", url)
		if code != exitOK {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if stdout != string(s.data) {
			t.Errorf("stdout: %d bytes, want the file", len(stdout))
		}
		if !strings.Contains(stderr, "wrote - to standard output (1.0 MiB") {
			t.Errorf("stderr:\n%s", stderr)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("files created: %v", entries)
		}
	})
}

// Defect 6: a password in the URL is shown masked everywhere and never
// stored on disk.
func TestCredentialsMasked(t *testing.T) {
	t.Parallel()
	s := newServer(t, 4<<20)
	s.h.SetRate(1 << 20)
	mux := http.NewServeMux()
	mux.Handle("/big.bin", s.h)
	mux.Handle("/missing.bin", http.NotFoundHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	authed := strings.Replace(srv.URL, "http://", "http://alice:s3cret@", 1)
	dir := t.TempDir()
	cmd, stderr := startBinary(t, dir, "-H", "Authorization: Bearer t0ken", authed+"/missing.bin", authed+"/big.bin")
	waitForPart(t, filepath.Join(dir, "big.bin.part"), 64<<10)
	cmd.Process.Signal(os.Interrupt)
	if code := exitCode(t, cmd.Wait()); code != exitInterrupted {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{"http://alice:xxxxx@127.0.0.1:", "/missing.bin: HTTP 404 Not Found", "'Authorization: xxxxx'"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	meta, err := os.ReadFile(filepath.Join(dir, "big.bin.part.meta"))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret", "t0ken"} {
		if strings.Contains(out, secret) || bytes.Contains(meta, []byte(secret)) {
			t.Errorf("%q shown or stored:\n%s\n%s", secret, out, meta)
		}
	}
	// The masked URL still finds the .part: the same command resumes.
	code, _, errOut := runBinary(t, dir, nil, authed+"/big.bin")
	if code != exitOK || !strings.Contains(errOut, "big.bin: resuming at ") {
		t.Errorf("resume: exit %d\n%s", code, errOut)
	}
	if reqs := s.h.Requests(); reqs[len(reqs)-1].Header.Get("Authorization") != "Basic YWxpY2U6czNjcmV0" {
		t.Errorf("the password was not sent: %v", reqs[len(reqs)-1].Header)
	}
}

// Defect 7: what cannot get better is not retried; a bad URL is a usage
// error.
func TestPermanentErrorsNotRetried(t *testing.T) {
	t.Parallel()
	var loops int
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loops++
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(loop.Close)
	plain := newServer(t, fileSize)
	for _, tc := range []struct {
		name, url string
		code      int
		want      string
	}{
		{"redirect loop", loop.URL + "/a", exitFailed, "redirect loop"},
		{"https to a plain port", strings.Replace(plain.srv.URL, "http://", "https://", 1) + "/f.bin", exitFailed, "server gave HTTP response to HTTPS client"},
		{"port out of range", "http://127.0.0.1:99999/f.bin", exitUsage, "port 99999 is not between 1 and 65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runBinary(t, t.TempDir(), nil, tc.url)
			if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "retrying") {
				t.Errorf("exit %d, want %d with %q and no retry\n%s", code, tc.code, tc.want, stderr)
			}
		})
	}
	if loops > 2 {
		t.Errorf("%d requests to the redirect loop; want 2 (no retry)", loops)
	}
	if n := len(plain.h.Requests()); n != 0 {
		t.Errorf("%d requests reached the plain server", n)
	}
}

// Defect 10: honest messages.
func TestHonestMessages(t *testing.T) {
	t.Parallel()
	t.Run("restart explained, nothing kept is said", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, 4<<20)
		s.h.SetIgnoreRange(true)
		reached := make(chan struct{})
		s.h.Plan(downloadtest.Step{Cut: true, After: 300_000, Reached: reached}, downloadtest.Step{Rate: 1 << 20})
		dir := t.TempDir()
		cmd, stderr := startBinary(t, dir, s.srv.URL+"/f.bin")
		<-reached
		stderr.waitFor(t, "starting again")
		waitForPart(t, filepath.Join(dir, "f.bin.part"), 100_000) // the second response's bytes
		cmd.Process.Signal(os.Interrupt)
		if code := exitCode(t, cmd.Wait()); code != exitInterrupted {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
		out := stderr.String()
		for _, want := range []string{"f.bin: starting again from zero (4.0 MiB): the server ignored the range request", "nothing was kept to resume; to start again, run:"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in\n%s", want, out)
			}
		}
		if strings.Contains(out, "to resume, run") {
			t.Errorf("promises a resume:\n%s", out)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("left %v", entries)
		}
	})
	t.Run("-quiet success prints nothing", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, fileSize)
		code, stdout, stderr := runBinary(t, t.TempDir(), nil, "-quiet", s.srv.URL+"/f.bin")
		if code != exitOK || stdout != "" || stderr != "" {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0 and nothing", code, stdout, stderr)
		}
	})
	t.Run("full disk leaves no .meta.tmp", func(t *testing.T) {
		t.Parallel()
		if _, err := os.Stat("/dev/full"); err != nil {
			t.Skip("no /dev/full")
		}
		s := newServer(t, fileSize)
		dir := t.TempDir()
		// The temporary .meta is written to a full device.
		tmp := filepath.Join(dir, "f.bin.part.meta.tmp")
		if err := os.Symlink("/dev/full", tmp); err != nil {
			t.Skip(err)
		}
		code, _, stderr := runBinary(t, dir, nil, s.srv.URL+"/f.bin")
		if code != exitFailed || !strings.Contains(stderr, "no space left on device") {
			t.Errorf("exit %d, want 1 with ENOSPC\n%s", code, stderr)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("left %v", entries)
		}
	})
}

// Defect 10: the resume hint never names the temporary binary of go run.
func TestCommandName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ arg0, pkg, want string }{
		{"/tmp/go-build123/b001/exe/fetch", "github.com/go-cancellation/cancellation/cmd/fetch", "go run github.com/go-cancellation/cancellation/cmd/fetch"},
		{"/tmp/go-build123/b001/exe/main", "command-line-arguments", "fetch"},
		{"./fetch", "github.com/go-cancellation/cancellation/cmd/fetch", "./fetch"},
		{"/usr/local/bin/fetch", "", "/usr/local/bin/fetch"},
	} {
		if got := commandName(tc.arg0, tc.pkg); got != tc.want {
			t.Errorf("commandName(%q, %q) = %q, want %q", tc.arg0, tc.pkg, got, tc.want)
		}
	}
	m := &Main{Name: "go run github.com/go-cancellation/cancellation/cmd/fetch"}
	if m.name() != "fetch" {
		t.Errorf("name %q", m.name())
	}
}

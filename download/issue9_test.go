package download_test

// Tests of the defects of issue 9 at the library's level, and of the
// features added with them (Names, NoClobber, Output, RateLimit).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/download"
	"github.com/go-cancellation/cancellation/download/downloadtest"
	"github.com/go-cancellation/cancellation/internal/doccheck"
)

func TestDocs(t *testing.T) {
	t.Parallel()
	doccheck.Check(t, ".")
	doccheck.Check(t, "downloadtest")
}

// Defect 1: bytes resumed within one call that turn out wrong (another
// version under the same ETag) are downloaded once more from zero.
func TestChecksumWrongResumeWithinCall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reached := make(chan struct{})
	f.h.Plan(downloadtest.Step{Cut: true, After: 300_000, Reached: reached})
	v2 := downloadtest.Pattern{Seed: 2}.Bytes(size)
	sum := sha256.Sum256(v2)
	var started []download.Event
	res, err := f.client().Do(t.Context(), &download.Request{URL: f.url(), Path: f.path, SHA256: sum[:], Progress: func(e download.Event) {
		switch e.Kind {
		case download.Retrying:
			if e.Attempt == 1 {
				<-reached
				f.h.SetContent(bytes.NewReader(v2), size, `"v1"`, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			}
		case download.Started:
			started = append(started, e)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.checkFinal(t, v2)
	if res.Attempts != 3 || len(started) != 3 || !errors.Is(started[2].Err, download.ErrChecksum) || started[2].Offset != 0 {
		t.Errorf("result %+v, Started events %+v: want a resume, then a restart from zero for the checksum", res, started)
	}
}

// Defect 2: the .part, .part.meta and its temporary of a long name all
// fit, and a long name from the server resumes in a later call.
func TestLongNameResume(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	long := strings.Repeat("é", 150) + ".tar.gz" // 307 bytes
	f.h.SetContentDisposition(`attachment; filename*=UTF-8''` + strings.ReplaceAll(long, "é", "%C3%A9"))
	f.h.Plan(downloadtest.Step{Cut: true, After: 200_000})
	c := f.client()
	c.Retries = -1
	req := &download.Request{URL: f.url(), Dir: f.dir}
	_, err := c.Do(t.Context(), req)
	var de *download.Error
	if !errors.As(err, &de) || de.Kept != 200_000 {
		t.Fatalf("err = %v, want 200000 bytes kept", err)
	}
	if n := len(filepath.Base(de.Path)); n > 255 || !strings.HasSuffix(de.Path, "é.tar.gz") {
		t.Fatalf("name of %d bytes: %s", n, filepath.Base(de.Path))
	}
	res, err := c.Do(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != de.Path || res.Resumed != 200_000 {
		t.Errorf("result %+v, want a resume of %s", res, de.Path)
	}
	got, _ := os.ReadFile(res.Path)
	if !bytes.Equal(got, f.data) {
		t.Error("wrong content")
	}
	if entries, _ := os.ReadDir(f.dir); len(entries) != 1 {
		t.Errorf("left %v", entries)
	}
}

// Defect 3: downloads of one run sharing Names never write one file.
func TestNamesClash(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.SetContentDisposition(`attachment; filename="same.bin"`)
	var names download.Names
	var paths []string
	for _, u := range []string{"/a", "/b", "/c"} {
		res, err := f.client().Do(t.Context(), &download.Request{URL: f.srv.URL + u, Dir: f.dir, Names: &names})
		if err != nil {
			t.Fatal(err)
		}
		if res.Renamed != (u != "/a") {
			t.Errorf("%s: Renamed %v", u, res.Renamed)
		}
		paths = append(paths, filepath.Base(res.Path))
	}
	if strings.Join(paths, " ") != "same.bin same.bin.1 same.bin.2" {
		t.Errorf("saved as %v", paths)
	}
}

// Defect 4: a .part whose name the caller chose is not found by URL.
func TestPartOfOtherTargetLeftAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Plan(downloadtest.Step{Cut: true, After: 100_000})
	c := f.client()
	c.Retries = -1
	custom := filepath.Join(f.dir, "custom.bin")
	if _, err := c.Get(t.Context(), f.url(), custom); err == nil {
		t.Fatal("no error")
	}
	res, err := c.Do(t.Context(), &download.Request{URL: f.url(), Dir: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != f.path || res.Resumed != 0 {
		t.Errorf("result %+v, want a fresh %s", res, f.path)
	}
	if fi, err := os.Stat(custom + ".part"); err != nil || fi.Size() != 100_000 {
		t.Errorf("custom.bin.part: %v %v", fi, err)
	}
}

// Defect 5: a Path that is a directory is refused before any request.
func TestPathIsDirectory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, p := range []string{f.dir, f.dir + "/", filepath.Join(f.dir, ".."), filepath.Join(f.dir, "new") + "/"} {
		if _, err := f.client().Get(t.Context(), f.url(), p); err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Errorf("%s: err = %v", p, err)
		}
	}
	if n := len(f.h.Requests()); n != 0 {
		t.Errorf("%d requests", n)
	}
}

// Defect 5: Output receives the file; a cut is resumed within the call.
func TestOutput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Plan(downloadtest.Step{Cut: true, After: 300_000})
	var out bytes.Buffer
	res, err := f.client().Do(t.Context(), &download.Request{URL: f.url(), Output: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), f.data) || res.Path != "" || res.Resumed != 300_000 {
		t.Errorf("result %+v, %d bytes out", res, out.Len())
	}
	if entries, _ := os.ReadDir(f.dir); len(entries) != 0 {
		t.Errorf("files: %v", entries)
	}
	// A restart from zero cannot take back what was written.
	f.h.Plan(downloadtest.Step{Cut: true, After: 300_000}, downloadtest.Step{IgnoreRange: true})
	out.Reset()
	_, err = f.client().Do(t.Context(), &download.Request{URL: f.url(), Output: &out})
	if err == nil || !strings.Contains(err.Error(), "cannot start again from zero") {
		t.Errorf("err = %v", err)
	}
}

// Defect 6: a password is masked in errors, events and results and never
// stored.
func TestPasswordMasked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Plan(downloadtest.Step{Cut: true, After: 100_000})
	u := strings.Replace(f.url(), "http://", "http://bob:hunter2@", 1)
	c := f.client()
	c.Retries = -1
	var shown []string
	_, err := c.Do(t.Context(), &download.Request{URL: u, Path: f.path, Progress: func(e download.Event) { shown = append(shown, e.URL) }})
	if err == nil {
		t.Fatal("no error")
	}
	meta, _ := os.ReadFile(f.path + ".part.meta")
	for _, s := range append(shown, err.Error(), string(meta)) {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password in %q", s)
		}
	}
	if !strings.Contains(err.Error(), "bob:xxxxx@") {
		t.Errorf("err = %v", err)
	}
	res, err := c.Get(t.Context(), u, f.path)
	if err != nil || res.Resumed != 100_000 || strings.Contains(res.URL, "hunter2") {
		t.Errorf("resume: %+v %v", res, err)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://a/b":                  "http://a/b",
		"http://u@a/b":                "http://u@a/b",
		"http://u:p@a/b":              "http://u:xxxxx@a/b",
		"https://u:p%40ss@a:8/b?c=@d": "https://u:xxxxx@a:8/b?c=@d",
		"http://u:p@a:99999999999/x":  "http://u:xxxxx@a:99999999999/x",
		"http://u:p@[::1/x":           "http://u:xxxxx@[::1/x",
		"u:p@host/x":                  "u:xxxxx@host/x",
	} {
		if got := download.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzRedactURL: whatever the input, a password of a URL that parses
// is never shown.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"http://u:p@a/b", "http://u:secret@[::1/x", "https://a:b:c@d@e/f", "u:p@h", "http://a/b?x=u:p@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := download.RedactURL(s)
		u, err := url.Parse(s)
		if err != nil || u.User == nil {
			return
		}
		if pw, ok := u.User.Password(); ok && len(pw) >= 3 && !strings.Contains("xxxxx", pw) &&
			strings.Contains(got, u.User.String()) {
			t.Errorf("RedactURL(%q) = %q shows the password %q", s, got, pw)
		}
	})
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{
		"http://a/b": true, "https://a:443/b": true, "http://[::1]:8080/": true,
		"ftp://a/b": false, "http:///b": false, "http://a:99999/b": false, "http://a:0/b": false,
		"http://a:/b": false, "a/b": false, "http://a b/": false,
	} {
		_, err := download.ParseURL(in)
		if (err == nil) != ok || err != nil && !errors.Is(err, download.ErrBadURL) {
			t.Errorf("ParseURL(%q): %v", in, err)
		}
	}
}

// Defect 7: permanent failures are final at once.
func TestPermanentErrors(t *testing.T) {
	t.Parallel()
	var loops int
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loops++
		http.Redirect(w, r, "/again", http.StatusFound)
	}))
	t.Cleanup(loop.Close)
	f := newFixture(t)
	tlsSrv := httptest.NewUnstartedServer(f.h)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	// A retry would wait an hour: the 20 s bound turns it into a failure.
	c := &download.Client{Backoff: time.Hour, MaxBackoff: time.Hour}
	for _, tc := range []struct {
		name, url string
		hc        *http.Client
		want      string
	}{
		{"redirect loop", loop.URL + "/a", loop.Client(), "redirect loop"},
		{"https to plain http", strings.Replace(f.srv.URL, "http:", "https:", 1) + "/x", f.srv.Client(), "server gave HTTP response to HTTPS client"},
		{"unknown authority", tlsSrv.URL + "/x", &http.Client{}, "certificate"},
		{"bad port", "http://127.0.0.1:99999/x", f.srv.Client(), "not between 1 and 65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *c
			c.HTTPClient = tc.hc
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			_, err := c.Get(ctx, tc.url, filepath.Join(t.TempDir(), "x"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if loops > 2 {
		t.Errorf("%d requests to the loop", loops)
	}
}

// Defect 10: a full disk while writing the .meta leaves no temporary.
func TestMetaFullDisk(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	f := newFixture(t)
	if err := os.Symlink("/dev/full", f.path+".part.meta.tmp"); err != nil {
		t.Skip(err)
	}
	_, err := f.client().Get(t.Context(), f.url(), f.path)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("err = %v", err)
	}
	noFile(t, f.path, f.path+".part", f.path+".part.meta", f.path+".part.meta.tmp")
}

// Defect 10: a restart from zero says why.
func TestRestartReason(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Plan(downloadtest.Step{Cut: true, After: 100_000}, downloadtest.Step{IgnoreRange: true})
	reasons := restartReasons(t, f.client(), f)
	if len(reasons) != 2 || reasons[0] != nil || reasons[1] == nil || reasons[1].Error() != "the server ignored the range request" {
		t.Errorf("reasons %v", reasons)
	}
}

func TestNoClobber(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	os.WriteFile(f.path, []byte("mine"), 0o666)
	_, err := f.client().Do(t.Context(), &download.Request{URL: f.url(), Path: f.path, NoClobber: true})
	if !errors.Is(err, download.ErrExists) {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.h.Requests()); n != 0 {
		t.Errorf("%d requests", n)
	}
	// Named by the response: checked when the name is known.
	f.h.SetContentDisposition(`attachment; filename="file.bin"`)
	_, err = f.client().Do(t.Context(), &download.Request{URL: f.srv.URL + "/get", Dir: f.dir, NoClobber: true})
	if !errors.Is(err, download.ErrExists) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(f.path); string(b) != "mine" {
		t.Error("replaced")
	}
	noFile(t, f.path+".part", f.path+".part.meta")
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client()
	c.RateLimit = 2 << 20 // 1 MiB: half a second
	start := time.Now()
	if _, err := c.Get(t.Context(), f.url(), f.path); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("1 MiB at 2 MiB/s took %v", took)
	}
	f.checkFinal(t, f.data)
}

// A canceled rate-limited download returns at once.
func TestRateLimitCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client()
	c.RateLimit = 64 << 10
	src := cancellation.New(t.Context())
	_, err := c.Do(src.Token(), &download.Request{URL: f.url(), Path: f.path, Progress: func(e download.Event) {
		if e.Written > 100_000 {
			src.Cancel()
		}
	}})
	if err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("err = %v", err)
	}
}

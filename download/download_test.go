package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/download"
	"github.com/go-cancellation/cancellation/download/downloadtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const size = 1 << 20 // 1 MiB: enough for several chunks, fast under -race

type fixture struct {
	h    *downloadtest.Handler
	srv  *httptest.Server
	data []byte
	dir  string
	path string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	data := downloadtest.Pattern{Seed: 1}.Bytes(size)
	h := downloadtest.New(bytes.NewReader(data), size, `"v1"`)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Close(); srv.Close() })
	dir := t.TempDir()
	return &fixture{h: h, srv: srv, data: data, dir: dir, path: filepath.Join(dir, "file.bin")}
}

func (f *fixture) url() string { return f.srv.URL + "/files/file.bin" }

// client returns a client with fast retries and a short idle timeout.
func (f *fixture) client() *download.Client {
	return &download.Client{
		HTTPClient:  f.srv.Client(),
		IdleTimeout: 2 * time.Second,
		Backoff:     time.Millisecond,
		MaxBackoff:  5 * time.Millisecond,
	}
}

func (f *fixture) checkFinal(t *testing.T, want []byte) {
	t.Helper()
	got, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("final file: %d bytes, want %d (sha256 %x, want %x)", len(got), len(want), sha256.Sum256(got), sha256.Sum256(want))
	}
	for _, p := range []string{f.path + ".part", f.path + ".part.meta"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind (err %v)", p, err)
		}
	}
}

func noFile(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists (err %v), want none", p, err)
		}
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var events []download.Event
	sum := sha256.Sum256(f.data)
	res, err := f.client().Do(t.Context(), &download.Request{
		URL: f.url(), Path: f.path, SHA256: sum[:],
		Progress: func(e download.Event) { events = append(events, e) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.checkFinal(t, f.data)
	if res.Size != size || res.Resumed != 0 || res.Attempts != 1 || !bytes.Equal(res.SHA256, sum[:]) || res.Path != f.path {
		t.Errorf("result %+v", res)
	}
	reqs := f.h.Requests()
	if len(reqs) != 1 || reqs[0].Range != "" || reqs[0].AcceptEncoding != "identity" {
		t.Errorf("requests %+v, want one plain GET with Accept-Encoding: identity", reqs)
	}
	if len(events) < 2 || events[0].Kind != download.Started || events[0].Total != size {
		t.Fatalf("first event %+v, want Started with Total", events[0])
	}
	last := int64(0)
	for _, e := range events[1:] {
		if e.Kind != download.Received || e.Written < last || e.Path != f.path || e.URL != f.url() {
			t.Fatalf("event %+v after %d bytes", e, last)
		}
		last = e.Written
	}
	if last != size {
		t.Errorf("last Received at %d, want %d", last, size)
	}
}

func TestPackageGetWithToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := cancellation.New(t.Context())
	defer src.Cancel()
	// The package-level Get uses http.DefaultClient: use the fixture's
	// transport through a Client instead, but a Token as the context.
	if _, err := f.client().Get(src.Token(), f.url(), f.path); err != nil {
		t.Fatal(err)
	}
	f.checkFinal(t, f.data)
}

// TestResumeWithinCall: the connection drops mid-body; the retry asks for
// the rest with Range and If-Range and appends.
func TestResumeWithinCall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Plan(downloadtest.Step{Cut: true, After: 300_000})
	var retries []download.Event
	res, err := f.client().Do(t.Context(), &download.Request{URL: f.url(), Path: f.path, Progress: func(e download.Event) {
		if e.Kind == download.Retrying {
			retries = append(retries, e)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.checkFinal(t, f.data)
	reqs := f.h.Requests()
	if len(reqs) != 2 || reqs[1].Range != "bytes=300000-" || reqs[1].IfRange != `"v1"` {
		t.Errorf("requests %+v, want a resume from 300000 with If-Range", reqs)
	}
	if res.Resumed != 300_000 || res.Attempts != 2 {
		t.Errorf("result %+v", res)
	}
	if len(retries) != 1 || retries[0].Err == nil || retries[0].Written != 300_000 {
		t.Errorf("Retrying events %+v", retries)
	}
}

// TestInterruptAndResume: a canceled call keeps the .part and its
// validator; the next call resumes from it.
func TestInterruptAndResume(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Plan(downloadtest.Step{Stall: true, After: 400_000})
	src := cancellation.New(t.Context())
	interrupted := errors.New("interrupted")
	_, err := f.client().Do(src.Token(), &download.Request{URL: f.url(), Path: f.path, Progress: func(e download.Event) {
		if e.Written == 400_000 {
			src.CancelCause(interrupted) // as if the user pressed Ctrl-C now
		}
	}})
	var de *download.Error
	if !errors.As(err, &de) || !errors.Is(err, context.Canceled) || !errors.Is(err, interrupted) {
		t.Fatalf("err = %v, want a *download.Error matching context.Canceled and the cause", err)
	}
	if want := f.url() + ": interrupted"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if de.Kept != 400_000 || de.Path != f.path {
		t.Errorf("Error %+v, want Kept 400000", de)
	}
	noFile(t, f.path)
	fi, err := os.Stat(f.path + ".part")
	if err != nil || fi.Size() != 400_000 {
		t.Fatalf("part: %v, %v", fi, err)
	}
	var meta map[string]any
	b, err := os.ReadFile(f.path + ".part.meta")
	if err != nil || json.Unmarshal(b, &meta) != nil || meta["etag"] != `"v1"` || meta["url"] != f.url() || meta["size"] != float64(size) {
		t.Fatalf("meta %s (%v)", b, err)
	}

	res, err := f.client().Get(t.Context(), f.url(), f.path)
	if err != nil {
		t.Fatal(err)
	}
	f.checkFinal(t, f.data)
	if res.Resumed != 400_000 {
		t.Errorf("Resumed %d", res.Resumed)
	}
	if r := f.h.Requests(); r[len(r)-1].Range != "bytes=400000-" || r[len(r)-1].IfRange != `"v1"` {
		t.Errorf("last request %+v", r[len(r)-1])
	}
}

// TestResumeSHA256 hashes the kept prefix before appending.
func TestResumeSHA256(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Plan(downloadtest.Step{Cut: true, After: 123_457})
	sum := sha256.Sum256(f.data)
	c := f.client()
	c.Retries = -1
	req := &download.Request{URL: f.url(), Path: f.path, SHA256: sum[:]}
	if _, err := c.Do(t.Context(), req); err == nil {
		t.Fatal("no error from a cut connection without retries")
	}
	res, err := c.Do(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 123_457 || !bytes.Equal(res.SHA256, sum[:]) {
		t.Errorf("result %+v", res)
	}
	f.checkFinal(t, f.data)
}

func TestStall(t *testing.T) {
	t.Parallel()
	t.Run("retried", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.h.Plan(downloadtest.Step{Stall: true, After: 200_000})
		c := f.client()
		c.IdleTimeout = 100 * time.Millisecond
		var retry download.Event
		res, err := c.Do(t.Context(), &download.Request{URL: f.url(), Path: f.path, Progress: func(e download.Event) {
			if e.Kind == download.Retrying {
				retry = e
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		f.checkFinal(t, f.data)
		if !errors.Is(retry.Err, download.ErrStalled) || retry.Err.Error() != "stalled: no data for 100ms" {
			t.Errorf("retry cause %v", retry.Err)
		}
		if res.Resumed != 200_000 {
			t.Errorf("Resumed %d", res.Resumed)
		}
	})
	t.Run("final", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.h.Plan(downloadtest.Step{Stall: true, After: 0})
		c := f.client()
		c.IdleTimeout = 100 * time.Millisecond
		c.Retries = -1
		_, err := c.Get(t.Context(), f.url(), f.path)
		var se *download.StallError
		if !errors.As(err, &se) || se.Idle != 100*time.Millisecond || errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want a StallError", err)
		}
		if want := f.url() + ": stalled: no data for 100ms"; err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
	})
}

// TestRestart: whenever the server cannot continue the same version, the
// download starts again from zero; two versions are never spliced.
func TestRestart(t *testing.T) {
	t.Parallel()
	v2 := downloadtest.Pattern{Seed: 2}.Bytes(size + 1000)
	for _, tc := range []struct {
		name    string
		setup   func(h *downloadtest.Handler)
		want    func(f *fixture) []byte
		noRange bool // the resume must not even send a Range
	}{
		{"server ignores Range", func(h *downloadtest.Handler) { h.SetIgnoreRange(true) }, nil, false},
		{"ETag changed", func(h *downloadtest.Handler) {
			h.SetContent(bytes.NewReader(v2), int64(len(v2)), `"v2"`, time.Now())
		}, func(*fixture) []byte { return v2 }, false},
		{"no validator", func(h *downloadtest.Handler) { h.SetNoValidators(true) }, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tc.name == "no validator" {
				f.h.SetNoValidators(true)
			}
			f.h.Plan(downloadtest.Step{Cut: true, After: 500_000})
			c := f.client()
			c.Retries = -1
			_, err := c.Get(t.Context(), f.url(), f.path)
			if err == nil {
				t.Fatal("cut connection: no error")
			}
			var de *download.Error
			errors.As(err, &de)
			if tc.noRange {
				if de.Kept != 0 {
					t.Errorf("Kept %d without a validator", de.Kept)
				}
				noFile(t, f.path+".part", f.path+".part.meta")
			} else if de.Kept != 500_000 {
				t.Fatalf("Kept %d", de.Kept)
			}
			tc.setup(f.h)
			res, err := c.Get(t.Context(), f.url(), f.path)
			if err != nil {
				t.Fatal(err)
			}
			want := f.data
			if tc.want != nil {
				want = tc.want(f)
			}
			f.checkFinal(t, want)
			if res.Resumed != 0 {
				t.Errorf("Resumed %d, want a restart from zero", res.Resumed)
			}
			last := f.h.Requests()[1]
			if tc.noRange != (last.Range == "") {
				t.Errorf("resume request %+v", last)
			}
		})
	}
}

// TestUntrustedPart: a .part without a validator, or with one for another
// URL, is never resumed.
func TestUntrustedPart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, meta string }{
		{"no meta", ""},
		{"other URL", `{"version":1,"url":"http://elsewhere/file.bin","etag":"\"v1\"","size":1048576}`},
		{"garbage meta", `{not json`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			os.WriteFile(f.path+".part", bytes.Repeat([]byte("x"), 1000), 0o666)
			if tc.meta != "" {
				os.WriteFile(f.path+".part.meta", []byte(tc.meta), 0o666)
			}
			if _, err := f.client().Get(t.Context(), f.url(), f.path); err != nil {
				t.Fatal(err)
			}
			f.checkFinal(t, f.data)
			if r := f.h.Requests(); r[0].Range != "" {
				t.Errorf("sent Range %q for an untrusted .part", r[0].Range)
			}
		})
	}
}

// TestCompletePart: a .part that is already whole (a crash between the
// last byte and the rename) is finished on a 416.
func TestCompletePart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	os.WriteFile(f.path+".part", f.data, 0o666)
	meta := fmt.Sprintf(`{"version":1,"url":%q,"etag":"\"v1\"","size":%d}`, f.url(), size)
	os.WriteFile(f.path+".part.meta", []byte(meta), 0o666)
	res, err := f.client().Get(t.Context(), f.url(), f.path)
	if err != nil {
		t.Fatal(err)
	}
	f.checkFinal(t, f.data)
	if res.Resumed != size {
		t.Errorf("Resumed %d", res.Resumed)
	}
}

func TestHTTPStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		steps    []downloadtest.Step
		retries  int
		status   int // 0: success expected
		attempts int
		message  string
		minWait  time.Duration
	}{
		{name: "404 is final", steps: []downloadtest.Step{{Status: 404}}, status: 404, attempts: 1, message: "HTTP 404 Not Found"},
		{name: "403 is final", steps: []downloadtest.Step{{Status: 403}}, status: 403, attempts: 1, message: "HTTP 403 Forbidden"},
		{name: "500 then ok", steps: []downloadtest.Step{{Status: 500}, {Status: 502}}, attempts: 3},
		{name: "503 with no retries (Retries < 0)", steps: []downloadtest.Step{{Status: 503}}, retries: -1, status: 503, attempts: 1, message: "HTTP 503 Service Unavailable"},
		{name: "503 exhausts retries", steps: []downloadtest.Step{{Status: 503}, {Status: 503}, {Status: 503}}, retries: 2, status: 503, attempts: 3, message: "HTTP 503 Service Unavailable"},
		{name: "429 Retry-After seconds", steps: []downloadtest.Step{{Status: 429, RetryAfter: "1"}}, attempts: 2, minWait: time.Second},
		{name: "429 Retry-After too long", steps: []downloadtest.Step{{Status: 429, RetryAfter: "86400"}}, status: 429, attempts: 1, message: "HTTP 429 Too Many Requests (server asks to retry after 24h0m0s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.h.Plan(tc.steps...)
			c := f.client()
			c.Retries = tc.retries
			var waits []time.Duration
			res, err := c.Do(t.Context(), &download.Request{URL: f.url(), Path: f.path, Progress: func(e download.Event) {
				if e.Kind == download.Retrying {
					waits = append(waits, e.Wait)
				}
			}})
			if got := len(f.h.Requests()); got != tc.attempts {
				t.Errorf("%d requests, want %d", got, tc.attempts)
			}
			if tc.status == 0 {
				if err != nil {
					t.Fatal(err)
				}
				f.checkFinal(t, f.data)
				if res.Attempts != tc.attempts {
					t.Errorf("Attempts %d", res.Attempts)
				}
				if tc.minWait > 0 && (len(waits) == 0 || waits[0] < tc.minWait) {
					t.Errorf("waits %v, want Retry-After honoured (>= %v)", waits, tc.minWait)
				}
				return
			}
			var he *download.HTTPError
			if !errors.As(err, &he) || he.StatusCode != tc.status {
				t.Fatalf("err = %v, want HTTP %d", err, tc.status)
			}
			if want := f.url() + ": " + tc.message; err.Error() != want {
				t.Errorf("message %q, want %q", err, want)
			}
			noFile(t, f.path, f.path+".part", f.path+".part.meta")
		})
	}
}

func TestChecksumMismatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	wrong := sha256.Sum256([]byte("something else"))
	_, err := f.client().Do(t.Context(), &download.Request{URL: f.url(), Path: f.path, SHA256: wrong[:]})
	var ce *download.ChecksumError
	if !errors.Is(err, download.ErrChecksum) || !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a checksum error", err)
	}
	if !strings.HasPrefix(err.Error(), f.url()+": sha256 mismatch: got ") {
		t.Errorf("message %q", err)
	}
	noFile(t, f.path, f.path+".part", f.path+".part.meta")
	if n := len(f.h.Requests()); n != 1 {
		t.Errorf("%d requests: a fresh download with a bad digest is not retried", n)
	}
}

// TestChecksumBadPrefix: a kept prefix that is wrong (say, a disk error)
// is caught by the digest; the download is repeated from zero once.
func TestChecksumBadPrefix(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bad := bytes.Clone(f.data[:5000])
	bad[100] ^= 0xff
	os.WriteFile(f.path+".part", bad, 0o666)
	meta := fmt.Sprintf(`{"version":1,"url":%q,"etag":"\"v1\"","size":%d}`, f.url(), size)
	os.WriteFile(f.path+".part.meta", []byte(meta), 0o666)
	sum := sha256.Sum256(f.data)
	res, err := f.client().Do(t.Context(), &download.Request{URL: f.url(), Path: f.path, SHA256: sum[:]})
	if err != nil {
		t.Fatal(err)
	}
	f.checkFinal(t, f.data)
	if res.Resumed != 0 || res.Attempts != 2 {
		t.Errorf("result %+v, want a second full download", res)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Plan(downloadtest.Step{Stall: true, After: 100_000})
	c := f.client()
	c.Timeout = 200 * time.Millisecond
	c.IdleTimeout = time.Minute
	_, err := c.Get(t.Context(), f.url(), f.path)
	var te *download.TimeoutError
	var de *download.Error
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &de) {
		t.Fatalf("err = %v, want a TimeoutError", err)
	}
	if de.Kept != 100_000 {
		t.Errorf("Kept %d", de.Kept)
	}
	if want := f.url() + ": timeout: not finished within 200ms"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

// TestCanceledWhileWaiting: cancellation also ends the wait between
// attempts at once.
func TestCanceledWhileWaiting(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Plan(downloadtest.Step{Status: 503, RetryAfter: "600"})
	src := cancellation.New(t.Context())
	c := f.client()
	_, err := c.Do(src.Token(), &download.Request{URL: f.url(), Path: f.path, Progress: func(e download.Event) {
		if e.Kind == download.Retrying {
			src.Cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestNameFromResponse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, disposition, path, want string }{
		{"url segment", "", "/a/b/data.tar.gz?x=1", "data.tar.gz"},
		{"disposition", `attachment; filename="report.pdf"`, "/download?id=7", "report.pdf"},
		{"disposition utf-8", `attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.txt`, "/x", "résumé.txt"},
		{"traversal", `attachment; filename="../../../etc/passwd"`, "/x", "passwd"},
		{"hidden", `attachment; filename=".bashrc"`, "/x", "bashrc"},
		{"no name", "", "/", "index.html"},
		{"dot dot path", "", "/a/..", "index.html"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.h.SetContentDisposition(tc.disposition)
			res, err := f.client().Do(t.Context(), &download.Request{URL: f.srv.URL + tc.path, Dir: f.dir})
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(f.dir, tc.want); res.Path != want {
				t.Fatalf("saved as %q, want %q", res.Path, want)
			}
			f.path = res.Path
			f.checkFinal(t, f.data)
			entries, _ := os.ReadDir(f.dir)
			if len(entries) != 1 {
				t.Errorf("dir holds %v", entries)
			}
		})
	}
}

// TestResumeByMeta: a name chosen by Content-Disposition is found again
// through the stored URL.
func TestResumeByMeta(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.SetContentDisposition(`attachment; filename="chosen.bin"`)
	f.h.Plan(downloadtest.Step{Cut: true, After: 250_000})
	c := f.client()
	c.Retries = -1
	req := &download.Request{URL: f.srv.URL + "/get?id=1", Dir: f.dir}
	_, err := c.Do(t.Context(), req)
	var de *download.Error
	if !errors.As(err, &de) || de.Kept != 250_000 || de.Path != filepath.Join(f.dir, "chosen.bin") {
		t.Fatalf("err = %#v", err)
	}
	res, err := c.Do(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	f.path = res.Path
	f.checkFinal(t, f.data)
	if res.Resumed != 250_000 {
		t.Errorf("Resumed %d", res.Resumed)
	}
}

func TestLocked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Plan(downloadtest.Step{Stall: true, After: 1000})
	src := cancellation.New(t.Context())
	reached := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var firstErr error
	go func() {
		defer wg.Done()
		_, firstErr = f.client().Do(src.Token(), &download.Request{URL: f.url(), Path: f.path, Progress: func(e download.Event) {
			if e.Written == 1000 {
				close(reached)
			}
		}})
	}()
	<-reached
	_, err := f.client().Get(t.Context(), f.url(), f.path)
	if !errors.Is(err, download.ErrLocked) {
		t.Errorf("second download: %v, want ErrLocked", err)
	}
	src.Cancel()
	wg.Wait()
	if !errors.Is(firstErr, context.Canceled) {
		t.Errorf("first download: %v", firstErr)
	}
	// The loser must not have touched the winner's files.
	if fi, err := os.Stat(f.path + ".part"); err != nil || fi.Size() != 1000 {
		t.Errorf(".part %v %v", fi, err)
	}
}

func TestBadRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		req  download.Request
	}{
		{"ftp", download.Request{URL: "ftp://example.com/x", Path: "x"}},
		{"no host", download.Request{URL: "http:///x", Path: "x"}},
		{"short digest", download.Request{URL: "http://example.com/x", Path: "x", SHA256: []byte{1, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c download.Client
			_, err := c.Do(t.Context(), &tc.req)
			var de *download.Error
			if !errors.As(err, &de) || de.URL != tc.req.URL {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// TestNoGrowth: memory does not grow with the file. The heap allocated by
// a 16 MiB download stays far below its size.
func TestNoGrowth(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const big = 16 << 20
	h := downloadtest.New(downloadtest.Pattern{Seed: 3}, big, `"big"`)
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()
	c := &download.Client{HTTPClient: srv.Client()}
	path := filepath.Join(t.TempDir(), "big")
	// Warm up the connection pool etc.
	if _, err := c.Get(t.Context(), srv.URL+"/big", path); err != nil {
		t.Fatal(err)
	}
	var before, after runtimeMem
	before.read()
	if _, err := c.Get(t.Context(), srv.URL+"/big", path); err != nil {
		t.Fatal(err)
	}
	after.read()
	// Server and client share the process: allow both their buffers.
	if grew := after.total - before.total; grew > big/4 {
		t.Errorf("allocated %d bytes to download %d", grew, big)
	}
}

// TestResumeLastModified: without an ETag, Last-Modified is the validator.
func TestResumeLastModified(t *testing.T) {
	t.Parallel()
	data := downloadtest.Pattern{Seed: 4}.Bytes(size)
	h := downloadtest.New(bytes.NewReader(data), size, "")
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Close(); srv.Close() })
	f := &fixture{h: h, srv: srv, data: data, dir: t.TempDir()}
	f.path = filepath.Join(f.dir, "file.bin")
	h.Plan(downloadtest.Step{Cut: true, After: 100_000})
	res, err := f.client().Get(t.Context(), f.url(), f.path)
	if err != nil {
		t.Fatal(err)
	}
	f.checkFinal(t, data)
	if r := h.Requests()[1]; r.Range != "bytes=100000-" || r.IfRange != "Fri, 02 Jan 2026 03:04:05 GMT" || res.Resumed != 100_000 {
		t.Errorf("resume request %+v, result %+v", r, res)
	}
}

// TestWrongRange: a 206 for other bytes than asked is never appended.
func TestWrongRange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Plan(downloadtest.Step{Cut: true, After: 200_000}, downloadtest.Step{ShiftRange: 1000})
	var retries []error
	res, err := f.client().Do(t.Context(), &download.Request{URL: f.url(), Path: f.path, Progress: func(e download.Event) {
		if e.Kind == download.Retrying {
			retries = append(retries, e.Err)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.checkFinal(t, f.data)
	if res.Resumed != 0 || len(retries) != 2 || !strings.Contains(retries[1].Error(), "asked for bytes from 200000, got 201000-") {
		t.Errorf("result %+v, retries %v", res, retries)
	}
}

package download

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-cancellation/cancellation"
)

// Defaults used for zero fields of a [Client].
const (
	DefaultIdleTimeout = 30 * time.Second
	DefaultRetries     = 3
	DefaultBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultBufferSize  = 256 << 10
)

// maxRetryAfter is the longest Retry-After that is waited for; a server
// asking for more makes its 429/503 final.
const maxRetryAfter = 10 * time.Minute

// Client downloads files. The zero value is ready to use, with the
// defaults above. A Client is safe for use by many goroutines at once,
// provided its fields are not changed while a download runs.
type Client struct {
	// HTTPClient sends the requests; nil means [http.DefaultClient].
	// Its Timeout, if any, bounds every attempt, so leave it zero and use
	// Timeout and IdleTimeout instead.
	HTTPClient *http.Client

	// Timeout bounds one download as a whole: every attempt and every
	// wait between attempts. Zero means no bound. When it expires the
	// error is a [*TimeoutError] and the .part is kept.
	Timeout time.Duration

	// IdleTimeout cancels an attempt that has received no bytes (headers
	// or body) for that long; the attempt fails with a [*StallError] and
	// is retried. Zero means [DefaultIdleTimeout]; negative disables it.
	IdleTimeout time.Duration

	// Retries is how many times a failed attempt is retried (stalls,
	// dropped connections, truncated bodies, 5xx, 408, 429). The count
	// starts again whenever an attempt gets further into the file than
	// any before it, so a long download on a flaky link still finishes.
	// Zero means [DefaultRetries]; negative means no retries.
	Retries int

	// Backoff is the wait before the first retry, doubled for each
	// further one up to MaxBackoff, with random jitter (the wait is
	// between half and all of that). A Retry-After sent with a 429 or
	// 503 is honoured when longer. Zero means [DefaultBackoff] and
	// [DefaultMaxBackoff].
	Backoff, MaxBackoff time.Duration

	// BufferSize is the size of the one buffer a download streams
	// through; memory use does not grow with the file. Zero means
	// [DefaultBufferSize].
	BufferSize int

	// UserAgent is sent as User-Agent when not empty.
	UserAgent string
}

// Request describes one download for [Client.Do]. Do does not modify it.
type Request struct {
	URL string // http or https

	// Path is the final file. When it is empty, the file is created in
	// Dir with the name from the response's Content-Disposition, else the
	// last segment of the URL's path, else "index.html"; a name from the
	// server is reduced to a plain file name and never leaves Dir.
	Path string
	Dir  string // used when Path is empty; "" is the current directory

	// SHA256, when not nil, is the expected digest (32 bytes) of the whole
	// file. A mismatch leaves neither the final file nor the .part.
	SHA256 []byte

	// Header holds extra request headers (Authorization, Cookie...).
	// Range, If-Range and Accept-Encoding are set by Do.
	Header http.Header

	// Progress, when not nil, is called on the downloading goroutine for
	// every [Event]: once per chunk of data, so it must be quick and must
	// not block; hand the numbers to another goroutine to draw them.
	Progress func(Event)
}

// Result describes a finished download.
type Result struct {
	URL      string
	Path     string // the final file
	Size     int64  // its size in bytes
	Resumed  int64  // bytes kept from an earlier attempt or run, not downloaded again
	Attempts int    // HTTP requests made
	SHA256   []byte // the verified digest, when Request.SHA256 was set
}

// EventKind tells what an [Event] reports.
type EventKind int

const (
	// Started: a response was accepted and data is about to flow into
	// Path+".part". Offset is the number of bytes kept from before
	// (0 when starting from zero, also after a restart); Total is the
	// file size, -1 if unknown.
	Started EventKind = iota + 1
	// Received: Written bytes are now in the .part.
	Received
	// Retrying: the attempt failed with Err; the next starts after Wait.
	Retrying
)

// Event is a progress report passed to [Request.Progress].
type Event struct {
	Kind    EventKind
	URL     string
	Path    string // the final file; for Retrying it may be "" when no name was chosen yet
	Attempt int    // 1 for the first request
	Offset  int64  // Started: bytes kept from before
	Written int64  // bytes in the .part so far
	Total   int64  // expected size, -1 if unknown
	Err     error  // Retrying: why the attempt failed (the cause, not an *Error)
	Wait    time.Duration
}

// Get downloads url to path with a zero [Client] (so [http.DefaultClient]
// and the defaults): see [Client.Do]. It blocks until the download
// finished, failed or ctx is done.
func Get(ctx context.Context, url, path string) (*Result, error) {
	var c Client
	return c.Do(ctx, &Request{URL: url, Path: path})
}

// Get downloads url to path: see [Client.Do].
func (c *Client) Get(ctx context.Context, url, path string) (*Result, error) {
	return c.Do(ctx, &Request{URL: url, Path: path})
}

// Do downloads r.URL into the file r.Path (or a name chosen in r.Dir),
// resuming a .part left by an earlier call. It blocks until the file is
// complete, the download failed, or ctx is done; it returns within
// milliseconds of ctx being done (unless the final fsync has begun: it is
// not interrupted), with an error that matches ctx.Err() and
// context.Cause(ctx) (errors.Is). Every error is an [*Error].
//
// On success the final file has been fsynced and renamed into place and
// its directory fsynced. On failure the final file is untouched; the
// .part and its validator (Path+".part.meta") are kept when they can be
// resumed ([Error.Kept] > 0) and removed otherwise.
//
// Do starts no goroutine that outlives it. Two downloads to the same file
// at once, in one process or two, fail with [ErrLocked] (where the
// platform has flock).
func (c *Client) Do(ctx context.Context, r *Request) (*Result, error) {
	j := &job{c: c, r: r, ctx: ctx, total: -1}
	if err := j.validate(); err != nil {
		return nil, &Error{URL: r.URL, Path: r.Path, Err: err}
	}
	src := cancellation.New(ctx)
	defer src.Cancel()
	if c.Timeout > 0 {
		src.CancelAfter(c.Timeout)
	}
	j.tok = src.Token()
	res, err := j.run()
	var kept int64
	if err != nil && j.resumable() {
		kept = j.written
	}
	j.close()
	if err != nil {
		return nil, &Error{URL: r.URL, Path: j.path, Kept: kept, Err: err}
	}
	return res, nil
}

// job is the state of one Do call. It is used by one goroutine.
type job struct {
	c   *Client
	r   *Request
	u   *url.URL
	ctx context.Context    // the caller's
	tok cancellation.Token // ctx plus Client.Timeout

	path   string   // final file; "" until named
	f      *os.File // the .part, locked
	meta   partMeta // what the bytes in f are a prefix of
	total  int64    // expected size; -1 unknown
	buf    []byte
	hasher hash.Hash // digest of f[0:hashed] when SHA256 was asked for
	hashed int64

	written   int64 // bytes in f (all of them trusted)
	flushed   int64 // bytes handed to the disk (see writeback)
	committed bool  // the .part was renamed to path
	fromDisk  bool  // written includes bytes from before this call
	resumed   int64
	attempts  int
}

func (j *job) validate() error {
	u, err := url.Parse(j.r.URL)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("not an http(s) URL")
	}
	j.u = u
	if j.r.SHA256 != nil && len(j.r.SHA256) != sha256.Size {
		return fmt.Errorf("SHA256 must be %d bytes, not %d", sha256.Size, len(j.r.SHA256))
	}
	if j.r.SHA256 != nil {
		j.hasher = sha256.New()
	}
	return nil
}

func (c *Client) idleTimeout() time.Duration {
	switch {
	case c.IdleTimeout == 0:
		return DefaultIdleTimeout
	case c.IdleTimeout < 0:
		return 0
	}
	return c.IdleTimeout
}

func (c *Client) retries() int {
	switch {
	case c.Retries == 0:
		return DefaultRetries
	case c.Retries < 0:
		return 0
	}
	return c.Retries
}

func (c *Client) backoff(n int) time.Duration {
	base, top := c.Backoff, c.MaxBackoff
	if base <= 0 {
		base = DefaultBackoff
	}
	if top <= 0 {
		top = max(DefaultMaxBackoff, base)
	}
	d := base
	for i := 0; i < n && d < top; i++ {
		d *= 2
	}
	d = min(d, top)
	// "Equal jitter": half fixed, half random, so clients that failed
	// together do not come back together.
	return d/2 + rand.N(d/2+1)
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// run is the retry loop.
func (j *job) run() (*Result, error) {
	if j.r.Path != "" {
		j.path = j.r.Path
	} else {
		j.path = findPart(j.r.Dir, j.u, j.r.URL)
	}
	if j.path != "" {
		if err := j.open(); err != nil {
			return nil, err
		}
	}
	budget, backoffs := j.c.retries(), 0
	best := j.written
	checksumRetried := false
	for {
		done, err := j.attempt()
		if err == nil && done {
			err = j.verify()
			if err == nil {
				return j.commit()
			}
			if errors.Is(err, ErrChecksum) && j.fromDisk && !checksumRetried {
				// The bytes kept from before may be what is wrong:
				// download everything once more before giving up.
				checksumRetried = true
				if rerr := j.reset(); rerr != nil {
					return nil, rerr
				}
				j.emitRetry(err, 0)
				continue
			}
			j.discard()
			return nil, err
		}
		if cerr := j.canceled(); cerr != nil {
			return nil, cerr
		}
		if err == nil {
			continue // a shorter range than asked: ask for the rest at once
		}
		if !retryable(err) {
			return nil, err
		}
		if j.written > best {
			best, budget, backoffs = j.written, j.c.retries(), 0
		}
		if budget <= 0 {
			return nil, err
		}
		budget--
		wait := j.c.backoff(backoffs)
		backoffs++
		var he *HTTPError
		if errors.As(err, &he) && he.RetryAfter > 0 {
			if he.RetryAfter > maxRetryAfter {
				return nil, fmt.Errorf("%w (server asks to retry after %v)", err, he.RetryAfter)
			}
			wait = max(wait, he.RetryAfter)
		}
		j.emitRetry(err, wait)
		if cancellation.Sleep(j.tok, wait) != nil {
			return nil, j.canceled()
		}
	}
}

// canceled returns the error for a done ctx or an expired Timeout, or nil.
func (j *job) canceled() error {
	if err := j.ctx.Err(); err != nil {
		return &canceledError{err: err, cause: context.Cause(j.ctx)}
	}
	if j.tok.IsCanceled() {
		return &TimeoutError{Timeout: j.c.Timeout}
	}
	return nil
}

func (j *job) emit(e Event) {
	if j.r.Progress != nil {
		e.URL, e.Path, e.Attempt, e.Written, e.Total = j.r.URL, j.path, j.attempts, j.written, j.total
		j.r.Progress(e)
	}
}

func (j *job) emitRetry(err error, wait time.Duration) {
	j.emit(Event{Kind: Retrying, Err: err, Wait: wait})
}

// attempt makes one request and streams its body into the .part. It
// reports done when the .part holds the whole file; (false, nil) means the
// server sent less than asked and the rest should be asked for at once.
func (j *job) attempt() (done bool, err error) {
	j.attempts++
	if j.hasher != nil && j.hashed < j.written {
		// Hash what is kept before asking, so that the idle timer does
		// not run while a large prefix is read back.
		if err := j.hashPrefix(); err != nil {
			return false, err
		}
	}
	idle := cancellation.New(j.tok)
	defer idle.Cancel()
	idleTimeout := j.c.idleTimeout()
	stall := &StallError{Idle: idleTimeout}
	if idleTimeout > 0 {
		// The timer's cause names the stall, for whoever holds the token
		// (the HTTP request's context); re-arming with it allocates nothing.
		idle.CancelAfterCause(idleTimeout, stall)
	}
	fail := func(err error) (bool, error) {
		if j.tok.IsCanceled() {
			return false, j.canceled()
		}
		if idle.Token().IsCanceled() {
			// Canceled by its own timer, not by a parent: a stall.
			return false, stall
		}
		// *url.Error repeats the method and URL, which *Error names.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, io.ErrUnexpectedEOF) && j.total >= 0 {
			err = fmt.Errorf("connection closed after %d of %d bytes: %w", j.written, j.total, err)
		}
		return false, err
	}

	req, err := http.NewRequestWithContext(idle.Token(), http.MethodGet, j.r.URL, nil)
	if err != nil {
		return false, err
	}
	for k, v := range j.r.Header {
		req.Header[k] = v
	}
	// Without this the transport asks for gzip and inflates it on the fly:
	// sizes and ranges would then be those of the compressed bytes.
	req.Header.Set("Accept-Encoding", "identity")
	if j.c.UserAgent != "" {
		req.Header.Set("User-Agent", j.c.UserAgent)
	}
	ifRange := j.meta.ifRange()
	asked := j.written
	if asked > 0 && ifRange != "" {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(asked, 10)+"-")
		req.Header.Set("If-Range", ifRange)
	} else {
		asked = 0
	}
	resp, err := j.c.httpClient().Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	if idleTimeout > 0 {
		idle.CancelAfterCause(idleTimeout, stall)
	}

	var cr contentRange
	switch resp.StatusCode {
	case http.StatusOK:
		if err := j.accept(resp, -1); err != nil {
			return false, err
		}
	case http.StatusPartialContent:
		cr, err = parseContentRange(resp.Header.Get("Content-Range"))
		switch {
		case err != nil:
			return false, j.restart(&protocolError{"206 with " + quote(resp.Header.Get("Content-Range"))})
		case cr.Start != asked:
			return false, j.restart(&protocolError{fmt.Sprintf("asked for bytes from %d, got %d-%d", asked, cr.Start, cr.End)})
		case resp.ContentLength >= 0 && resp.ContentLength != cr.End-cr.Start+1:
			return false, j.restart(&protocolError{"Content-Length does not match Content-Range"})
		case asked > 0 && !j.meta.sameVersion(resp.Header, cr.Total):
			// If-Range should have prevented this; never splice.
			return false, j.restart(&protocolError{"content changed during resume"})
		}
		if asked == 0 {
			if err := j.accept(resp, cr.Total); err != nil {
				return false, err
			}
		} else {
			if j.total < 0 {
				j.total = cr.Total
			}
			j.resumed = asked
			j.emit(Event{Kind: Started, Offset: asked})
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if asked > 0 {
			cr, err := parseContentRange(resp.Header.Get("Content-Range"))
			if err == nil && cr.Start < 0 && cr.Total == asked && (j.total < 0 || j.total == asked) {
				// The .part already holds the whole file (it was
				// complete but not yet renamed).
				j.total, j.resumed = asked, asked
				return true, nil
			}
			return false, j.restart(&protocolError{"range not satisfiable"})
		}
		fallthrough
	default:
		he := &HTTPError{StatusCode: resp.StatusCode, Status: resp.Status}
		if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			he.RetryAfter = ra
		}
		return false, he
	}

	// Stream the body with one buffer; every chunk re-arms the idle timer.
	if j.buf == nil {
		n := j.c.BufferSize
		if n <= 0 {
			n = DefaultBufferSize
		}
		j.buf = make([]byte, n)
	}
	for {
		n, rerr := resp.Body.Read(j.buf)
		if n > 0 {
			if idleTimeout > 0 {
				idle.CancelAfterCause(idleTimeout, stall)
			}
			if j.total >= 0 && j.written+int64(n) > j.total {
				return false, j.restart(&protocolError{"body longer than announced"})
			}
			if _, err := j.f.Write(j.buf[:n]); err != nil {
				return false, &fileError{err}
			}
			if j.hasher != nil {
				j.hasher.Write(j.buf[:n])
				j.hashed += int64(n)
			}
			j.written += int64(n)
			if j.written-j.flushed >= writebackChunk {
				writeback(j.f, j.flushed, j.written)
				j.flushed = j.written
			}
			j.emit(Event{Kind: Received})
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fail(rerr)
		}
	}
	if j.total < 0 {
		if resp.StatusCode == http.StatusPartialContent && j.written != cr.End+1 {
			return false, io.ErrUnexpectedEOF
		}
		// No length was announced: a clean end of the body is the end.
		j.total = j.written
		return true, nil
	}
	if j.written == j.total {
		return true, nil
	}
	if resp.StatusCode == http.StatusPartialContent && j.written == cr.End+1 {
		return false, nil // a shorter range than asked; ask for the rest
	}
	return false, fmt.Errorf("connection closed after %d of %d bytes: %w", j.written, j.total, io.ErrUnexpectedEOF)
}

// accept starts the .part from zero for a full response (200, or a 206
// from byte 0) and stores the response's validator beside it.
func (j *job) accept(resp *http.Response, total int64) error {
	if j.path == "" {
		j.path = filepath.Join(j.r.Dir, responseName(resp, j.u))
		if err := j.open(); err != nil {
			return err
		}
	}
	if total < 0 && resp.StatusCode == http.StatusOK {
		total = resp.ContentLength
	}
	if err := j.reset(); err != nil {
		return err
	}
	j.total = total
	etag, lm := validator(resp.Header)
	j.meta = partMeta{Version: 1, URL: j.r.URL, ETag: etag, LastModified: lm, Size: total}
	if j.meta.ifRange() != "" {
		if err := writeMeta(j.metaPath(), &j.meta); err != nil {
			return &fileError{err}
		}
	}
	j.resumed = 0
	j.emit(Event{Kind: Started})
	return nil
}

// restart forgets the .part so that the next attempt starts from zero, and
// returns err (a retryable *protocolError).
func (j *job) restart(err error) error {
	if rerr := j.reset(); rerr != nil {
		return rerr
	}
	return err
}

// reset empties the .part and forgets its validator.
func (j *job) reset() error {
	j.written, j.flushed, j.hashed, j.fromDisk, j.total = 0, 0, 0, false, -1
	j.meta = partMeta{}
	if j.hasher != nil {
		j.hasher.Reset()
	}
	if j.f == nil {
		return nil
	}
	os.Remove(j.metaPath())
	if err := j.f.Truncate(0); err != nil {
		return &fileError{err}
	}
	if _, err := j.f.Seek(0, io.SeekStart); err != nil {
		return &fileError{err}
	}
	return nil
}

func (j *job) partPath() string { return j.path + ".part" }
func (j *job) metaPath() string { return j.path + ".part.meta" }

// open opens and locks the .part of j.path and decides whether its bytes
// can be trusted: only with a stored validator for the same URL.
func (j *job) open() error {
	f, err := openLocked(j.partPath())
	if err != nil {
		return err
	}
	j.f = f
	fi, err := f.Stat()
	if err != nil {
		return &fileError{err}
	}
	m, err := readMeta(j.metaPath())
	size := fi.Size()
	if err == nil && m.URL == j.r.URL && m.ifRange() != "" && size > 0 && (m.Size < 0 || size <= m.Size) {
		j.meta, j.total, j.written, j.flushed, j.fromDisk = m, m.Size, size, size, true
		if _, err := f.Seek(size, io.SeekStart); err != nil {
			return &fileError{err}
		}
		return nil
	}
	return j.reset()
}

// hashPrefix feeds f[hashed:written] to the hasher, checking for
// cancellation between chunks.
func (j *job) hashPrefix() error {
	buf := make([]byte, 1<<20)
	for j.hashed < j.written {
		if j.tok.IsCanceled() {
			return j.canceled()
		}
		n := int(min(int64(len(buf)), j.written-j.hashed))
		if _, err := j.f.ReadAt(buf[:n], j.hashed); err != nil {
			return &fileError{err}
		}
		j.hasher.Write(buf[:n])
		j.hashed += int64(n)
	}
	return nil
}

// verify checks the size and, if asked, the digest of the complete .part.
func (j *job) verify() error {
	if j.total >= 0 && j.written != j.total {
		return fmt.Errorf("size mismatch: have %d bytes, want %d", j.written, j.total)
	}
	if j.hasher == nil {
		return nil
	}
	if err := j.hashPrefix(); err != nil {
		return err
	}
	if got := j.hasher.Sum(nil); string(got) != string(j.r.SHA256) {
		return &ChecksumError{Want: j.r.SHA256, Got: got}
	}
	return nil
}

// commit makes the complete .part the final file, durably.
func (j *job) commit() (*Result, error) {
	if err := j.f.Sync(); err != nil {
		return nil, &fileError{err}
	}
	if err := os.Rename(j.partPath(), j.path); err != nil {
		return nil, &fileError{err}
	}
	syncDir(filepath.Dir(j.path))
	os.Remove(j.metaPath())
	res := &Result{URL: j.r.URL, Path: j.path, Size: j.written, Resumed: j.resumed, Attempts: j.attempts}
	if j.hasher != nil {
		res.SHA256 = j.hasher.Sum(nil)
	}
	j.committed = true
	return res, nil
}

// discard removes the .part and its validator (after a checksum mismatch).
func (j *job) discard() {
	if j.f != nil {
		os.Remove(j.partPath())
		os.Remove(j.metaPath())
		j.written = 0
		j.meta = partMeta{}
	}
}

// resumable reports whether what is on disk can be resumed later.
func (j *job) resumable() bool {
	return j.f != nil && j.written > 0 && j.meta.ifRange() != ""
}

// close releases the .part; one that cannot be resumed is removed.
func (j *job) close() {
	if j.f == nil {
		return
	}
	if !j.committed && !j.resumable() {
		// Bytes without a validator would not be trusted next time.
		os.Remove(j.partPath())
		os.Remove(j.metaPath())
	}
	j.f.Close() // unlocks
	j.f = nil
}

// fileError is a local I/O error: final, never retried.
type fileError struct{ err error }

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// retryable reports whether an attempt that failed with err is worth
// repeating.
func retryable(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.temporary()
	}
	var fe *fileError
	if errors.As(err, &fe) || errors.Is(err, ErrLocked) {
		return false
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return false
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return false
	}
	// Stalls, resets, truncated bodies, refused connections, protocol
	// errors: all may go away.
	return true
}

// responseName picks the file name for a response: Content-Disposition,
// else the URL's last path segment, else "index.html".
func responseName(resp *http.Response, u *url.URL) string {
	if name, ok := contentDispositionName(resp.Header.Get("Content-Disposition")); ok {
		return name
	}
	if name, ok := urlName(u); ok {
		return name
	}
	return "index.html"
}

func quote(s string) string { return strconv.Quote(s) }

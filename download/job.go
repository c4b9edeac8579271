package download

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-cancellation/cancellation"
)

// job is the state of one Do call: it names the file, then runs attempts
// (one connection, or segments) until the file is whole, a failure is
// final, or the caller cancels; then it verifies and commits.
type job struct {
	c     *Client
	r     *Request
	u     *url.URL
	shown string             // r.URL with any password masked
	ctx   context.Context    // the caller's
	tok   cancellation.Token // ctx plus Client.Timeout

	path    string    // final file; "" until named
	claimed bool      // path is claimed in r.Names
	renamed bool      // path got a suffix: the name was taken in this run
	out     io.Writer // r.Output: no .part at all
	f       *os.File  // the .part, locked
	meta    partMeta  // what the bytes in f are a prefix of (or, segmented, hold)
	total   int64     // expected size; -1 unknown
	buf     []byte
	hasher  hash.Hash // digest of f[0:hashed] when SHA256 was asked for
	hashed  int64
	limit   *limiter // Client.RateLimit; nil for none

	// mu guards the fields below while segments run (see segments.go),
	// and serializes Progress calls.
	mu        sync.Mutex
	written   int64 // bytes in f that are trusted (with holes: all but the missing)
	flushed   int64 // bytes handed to the disk (see writeback)
	committed bool  // the .part was renamed to path
	resumed   int64
	attempts  int
	spliced   bool // the bytes came from more than one response (a resume, segments)

	why     error // why the next Started begins from zero after a restart; nil the first time
	noRange bool  // the server ignored a Range for this version: nothing is worth keeping
}

func (j *job) validate() error {
	u, err := ParseURL(j.r.URL)
	if err != nil {
		return err
	}
	j.u = u
	if j.r.SHA256 != nil && len(j.r.SHA256) != sha256.Size {
		return fmt.Errorf("SHA256 must be %d bytes, not %d", sha256.Size, len(j.r.SHA256))
	}
	if j.r.SHA256 != nil {
		j.hasher = sha256.New()
	}
	if j.c.RateLimit > 0 {
		j.limit = &limiter{rate: j.c.RateLimit}
	}
	j.out = j.r.Output
	if j.out == nil && j.r.Path != "" {
		if isDir(j.r.Path) {
			return &fileError{fmt.Errorf("%s is a directory", j.r.Path)}
		}
	}
	return nil
}

// isDir reports whether p names a directory, or must be one (it ends in a
// slash, or its last element is "." or "..").
func isDir(p string) bool {
	if p == "" || os.IsPathSeparator(p[len(p)-1]) {
		return true
	}
	if b := filepath.Base(p); b == "." || b == ".." {
		return true
	}
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// run names the file and runs the retry loop.
func (j *job) run() (*Result, error) {
	if err := j.prepare(); err != nil {
		return nil, err
	}
	budget, backoffs := j.c.retries(), 0
	best := j.written
	checksumRetried := false
	for {
		done, err := j.step()
		if err == nil && done {
			err = j.verify()
			if err == nil {
				return j.commit()
			}
			if errors.Is(err, ErrChecksum) && j.spliced && !checksumRetried && j.out == nil {
				// The bytes kept from before, from this call or an
				// earlier one, may be what is wrong (another version
				// under the same validator, a disk error): download
				// everything once more before giving up.
				checksumRetried = true
				if rerr := j.reset(); rerr != nil {
					return nil, rerr
				}
				j.why = err
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

// step runs one attempt: the segments still missing, or one request.
func (j *job) step() (bool, error) {
	if len(j.meta.Missing) > 0 {
		return j.runSegments(nil)
	}
	return j.attempt()
}

// prepare chooses the final path when it is known before any request
// (Request.Path, or the .part of an earlier call found by its URL) and
// opens its .part.
func (j *job) prepare() error {
	if j.out != nil {
		return nil
	}
	switch {
	case j.r.Path != "":
		if j.r.Names != nil && !j.r.Names.claim(j.r.Path) {
			return &fileError{fmt.Errorf("%s is written by another download of this run", j.r.Path)}
		}
		j.path, j.claimed = j.r.Path, j.r.Names != nil
	default:
		name, ok := urlName(j.u)
		if ok && j.r.NoClobber && exists(filepath.Join(j.r.Dir, name)) {
			// As wget -nc: the name the URL gives exists; no request.
			j.path = filepath.Join(j.r.Dir, name)
			return fmt.Errorf("%s: %w", j.path, ErrExists)
		}
		p := findPart(j.r.Dir, name, j.shown)
		if p == "" || j.r.Names != nil && !j.r.Names.claim(p) {
			return nil // named by the response
		}
		j.path, j.claimed = p, j.r.Names != nil
	}
	if j.r.NoClobber && exists(j.path) {
		return fmt.Errorf("%s: %w", j.path, ErrExists)
	}
	return j.open()
}

// name chooses the final path from a response (Content-Disposition, the
// URL) and opens its .part.
func (j *job) name(p string) error {
	if j.r.Names != nil {
		q := j.r.Names.claimFree(p)
		j.path, j.claimed, j.renamed = q, true, q != p
	} else {
		j.path = p
	}
	if j.r.NoClobber && exists(j.path) {
		return fmt.Errorf("%s: %w", j.path, ErrExists)
	}
	return j.open()
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
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

// emit calls Progress; with segments, j.mu is held.
func (j *job) emit(e Event) {
	if j.r.Progress != nil {
		e.URL, e.Path, e.Attempt, e.Written, e.Total = j.shown, j.path, j.attempts, j.written, j.total
		if e.Kind == Started && e.Segments == 0 {
			e.Segments = 1
		}
		j.r.Progress(e)
	}
}

func (j *job) emitRetry(err error, wait time.Duration) {
	j.emit(Event{Kind: Retrying, Err: err, Wait: wait})
}

// emitStarted reports a start: from zero (with the reason of a restart,
// if any) or from offset.
func (j *job) emitStarted(offset int64, segments int) {
	e := Event{Kind: Started, Offset: offset, Segments: segments}
	if offset == 0 {
		e.Err, j.why = j.why, nil
	}
	j.emit(e)
}

package download

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-cancellation/cancellation"
)

// One request: send it, check the response against what was asked and
// what is kept, stream the body.

// conn is the idle timer of one request: a cancellation source re-armed
// on every chunk received, whose token is the request's context.
type conn struct {
	j       *job
	idle    *cancellation.Source
	timeout time.Duration
	stall   *StallError
}

func (j *job) newConn(parent cancellation.Token) *conn {
	t := j.c.idleTimeout()
	cn := &conn{j: j, idle: cancellation.New(parent), timeout: t, stall: &StallError{Idle: t}}
	cn.arm()
	return cn
}

// arm restarts the idle timer. Its cause names the stall, for whoever
// holds the token (the HTTP request's context); re-arming with the same
// cause allocates nothing.
func (cn *conn) arm() {
	if cn.timeout > 0 {
		cn.idle.CancelAfterCause(cn.timeout, cn.stall)
	}
}

func (cn *conn) stop() { cn.idle.Cancel() }

// fail maps the error of a request or a body read to the one to report:
// the caller's cancellation, a stall, or the cause without *url.Error's
// repetition of the method and URL (which would show a password).
func (cn *conn) fail(err error) error {
	if cn.j.tok.IsCanceled() {
		return cn.j.canceled()
	}
	if cn.idle.Token().IsCanceled() {
		// Canceled by its own timer, not by a parent: a stall.
		return cn.stall
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err
}

// send sends a GET for bytes [from, to] (to < 0: to the end; from 0 and
// to < 0: the whole file, no Range) with If-Range when a validator is
// known.
func (cn *conn) send(from, to int64, ifRange string) (*http.Response, error) {
	j := cn.j
	req, err := http.NewRequestWithContext(cn.idle.Token(), http.MethodGet, j.r.URL, nil)
	if err != nil {
		return nil, err
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
	if from > 0 || to >= 0 {
		rng := "bytes=" + strconv.FormatInt(from, 10) + "-"
		if to >= 0 {
			rng += strconv.FormatInt(to, 10)
		}
		req.Header.Set("Range", rng)
		if ifRange != "" {
			req.Header.Set("If-Range", ifRange)
		}
	}
	resp, err := j.c.httpClient().Do(req)
	if err != nil {
		return nil, cn.fail(err)
	}
	cn.arm()
	return resp, nil
}

// pump streams body through buf into write until the body ends or write
// reports that it wants no more. Every chunk re-arms the idle timer; the
// rate limit, if any, is applied between chunks.
func (cn *conn) pump(body io.Reader, buf []byte, write func([]byte) (more bool, err error)) error {
	j := cn.j
	if j.limit != nil {
		buf = buf[:min(len(buf), j.limit.chunk())]
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			cn.arm()
			more, err := write(buf[:n])
			if err != nil {
				return err
			}
			if !more {
				return nil
			}
			if j.limit != nil {
				if d := j.limit.take(n); d > 0 {
					if cancellation.Sleep(j.tok, d) != nil {
						return j.canceled()
					}
					cn.arm()
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return cn.fail(rerr)
		}
	}
}

// httpError is the error for a response status that ends an attempt.
func httpError(resp *http.Response) error {
	he := &HTTPError{StatusCode: resp.StatusCode, Status: resp.Status}
	if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		he.RetryAfter = ra
	}
	return he
}

// The reasons for starting again from zero.
var (
	errRangeIgnored = &protocolError{"the server ignored the range request"}
	errChanged      = &protocolError{"the file changed on the server"}
)

// attempt makes one request and streams its body into the .part. It
// reports done when the .part holds the whole file; (false, nil) means the
// server sent less than asked and the rest should be asked for at once.
func (j *job) attempt() (done bool, err error) {
	j.attempts++
	if j.hasher != nil && j.hashed < j.written && j.f != nil {
		// Hash what is kept before asking, so that the idle timer does
		// not run while a large prefix is read back.
		if err := j.hashPrefix(); err != nil {
			return false, err
		}
	}
	cn := j.newConn(j.tok)
	defer cn.stop()
	ifRange := j.meta.ifRange()
	asked := j.written
	if asked == 0 || ifRange == "" {
		asked = 0
	}
	resp, err := cn.send(asked, -1, ifRange)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()

	var cr contentRange
	switch resp.StatusCode {
	case http.StatusOK:
		if asked > 0 {
			if j.meta.sameVersion(resp.Header, resp.ContentLength) {
				j.why, j.noRange = errRangeIgnored, true
			} else {
				j.why = errChanged
			}
		}
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
			return false, j.restart(errChanged)
		}
		if asked == 0 {
			if err := j.accept(resp, cr.Total); err != nil {
				return false, err
			}
		} else {
			if j.total < 0 {
				j.total = cr.Total
			}
			j.resumed, j.spliced = asked, true
			if !j.splittable(resp) {
				j.emitStarted(asked, 1)
			}
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
		return false, httpError(resp)
	default:
		return false, httpError(resp)
	}

	if j.splittable(resp) {
		return j.runSegments(&firstStream{cn: cn, resp: resp})
	}
	if j.buf == nil {
		j.buf = j.c.newBuffer()
	}
	err = cn.pump(resp.Body, j.buf, func(b []byte) (bool, error) {
		if j.total >= 0 && j.written+int64(len(b)) > j.total {
			return false, j.restart(&protocolError{"body longer than announced"})
		}
		if err := j.write(b); err != nil {
			return false, err
		}
		j.emit(Event{Kind: Received})
		return true, nil
	})
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) && j.total >= 0 {
			err = fmt.Errorf("connection closed after %d of %d bytes: %w", j.written, j.total, err)
		}
		return false, err
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

// write appends b to the .part (or the output), hashing it if asked.
func (j *job) write(b []byte) error {
	w := io.Writer(j.f)
	if j.out != nil {
		w = j.out
	}
	if _, err := w.Write(b); err != nil {
		return &fileError{err}
	}
	if j.hasher != nil {
		j.hasher.Write(b)
		j.hashed += int64(len(b))
	}
	j.written += int64(len(b))
	if j.f != nil && j.written-j.flushed >= writebackChunk {
		writeback(j.f, j.flushed, j.written)
		j.flushed = j.written
	}
	return nil
}

func (c *Client) newBuffer() []byte {
	n := c.BufferSize
	if n <= 0 {
		n = DefaultBufferSize
	}
	return make([]byte, n)
}

// accept starts the .part from zero for a full response (200, or a 206
// from byte 0) and stores the response's validator beside it.
func (j *job) accept(resp *http.Response, total int64) error {
	if j.path == "" && j.out == nil {
		if err := j.name(filepath.Join(j.r.Dir, responseName(resp, j.u))); err != nil {
			return err
		}
	}
	if total < 0 && resp.StatusCode == http.StatusOK {
		total = resp.ContentLength
	}
	why, noRange := j.why, j.noRange
	if err := j.reset(); err != nil {
		return err
	}
	j.why, j.noRange = why, noRange
	j.total = total
	etag, lm := validator(resp.Header)
	if resp.Header.Get("Accept-Ranges") == "none" {
		j.noRange = true
	}
	j.meta = j.newMeta(etag, lm, total)
	if err := j.saveMeta(); err != nil {
		return err
	}
	j.resumed = 0
	if !j.splittable(resp) {
		j.emitStarted(0, 1)
	}
	return nil
}

func quote(s string) string { return strconv.Quote(s) }

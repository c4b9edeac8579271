// Package downloadtest serves one file over HTTP the way real servers
// misbehave, for testing download clients: it throttles, stalls, drops the
// connection mid-body, ignores Range, changes the file (and its ETag)
// between requests, and answers 404/500/429 with Retry-After on demand.
//
// A [Handler] is an [http.Handler]; serve it with httptest.NewServer or any
// [http.Server]. Its content is an [io.ReaderAt], so a large file (see
// [Pattern]) costs no memory. All methods are safe for concurrent use,
// also while requests are being served.
package downloadtest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Step scripts the answer to one request. Steps given to [Handler.Plan]
// are used by the following requests in order, one each; when none is
// left, requests are served normally.
type Step struct {
	// Status, when not zero, is sent instead of the file, with RetryAfter
	// as the Retry-After header when not empty.
	Status     int
	RetryAfter string

	// After is a number of body bytes. With Cut, the connection is dropped
	// after sending them; with Stall, nothing more is sent until the
	// client goes away (or the Handler is closed).
	After int64
	Cut   bool
	Stall bool

	// IgnoreRange answers with the whole file (200) even to a Range.
	IgnoreRange bool

	// ShiftRange, when not zero, answers a Range for bytes from N with the
	// bytes from N+ShiftRange (and a Content-Range that says so): a server
	// bug a client must not splice.
	ShiftRange int64

	// Rate, when positive, limits this response to that many bytes per
	// second.
	Rate int64

	// Reached, when not nil, is closed once After bytes were sent (before
	// the cut or stall).
	Reached chan struct{}

	// Hold, when not nil, delays the cut or stall after Reached until it
	// is closed: what a test does meanwhile (say, SetContent) happens
	// before the client can notice the cut.
	Hold chan struct{}
}

// Request is what the handler saw of one request.
type Request struct {
	Method, Range, IfRange, AcceptEncoding string
	Header                                 http.Header // all of the request's headers
	// Active is the number of responses in progress when this one
	// started, itself included: a client's concurrency.
	Active int
}

// Handler serves one file with single byte ranges ("bytes=N-" and
// "bytes=N-M"), If-Range, a strong ETag and Last-Modified.
type Handler struct {
	mu           sync.Mutex
	content      io.ReaderAt
	size         int64
	etag         string
	lastModified time.Time
	plan         []Step
	seen         []Request
	rate         int64
	ignoreRange  bool
	noValidators bool
	disposition  string
	maxRange     int64
	closed       chan struct{}
	closeOnce    sync.Once
	active       int
}

// New returns a handler serving size bytes of content with the given ETag
// (a quoted string, for example `"v1"`; "" sends no ETag, only
// Last-Modified).
func New(content io.ReaderAt, size int64, etag string) *Handler {
	return &Handler{
		content:      content,
		size:         size,
		etag:         etag,
		lastModified: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		closed:       make(chan struct{}),
	}
}

// SetContent replaces the file (a new version): later requests get it.
func (h *Handler) SetContent(content io.ReaderAt, size int64, etag string, lastModified time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.content, h.size, h.etag, h.lastModified = content, size, etag, lastModified
}

// Plan appends steps for the next requests.
func (h *Handler) Plan(steps ...Step) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.plan = append(h.plan, steps...)
}

// SetRate limits every unscripted response to bytes per second (0: none).
func (h *Handler) SetRate(bytesPerSecond int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rate = bytesPerSecond
}

// SetIgnoreRange makes every response a 200 with the whole file.
func (h *Handler) SetIgnoreRange(ignore bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ignoreRange = ignore
}

// SetNoValidators stops sending ETag and Last-Modified.
func (h *Handler) SetNoValidators(none bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.noValidators = none
}

// SetMaxRange makes a 206 carry at most n bytes (0: no limit), with a
// Content-Range that says so, as some servers do with large ranges: the
// client must ask again for the rest.
func (h *Handler) SetMaxRange(n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.maxRange = n
}

// SetContentDisposition sets the Content-Disposition header sent with the
// file ("" for none).
func (h *Handler) SetContentDisposition(v string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.disposition = v
}

// Requests returns what the handler saw so far, in order.
func (h *Handler) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Request(nil), h.seen...)
}

// Close ends every stalled response. Call it before closing the server
// (httptest.Server.Close waits for handlers). It is idempotent.
func (h *Handler) Close() {
	h.closeOnce.Do(func() { close(h.closed) })
}

// ServeHTTP implements [http.Handler].
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.active++
	defer func() {
		h.mu.Lock()
		h.active--
		h.mu.Unlock()
	}()
	h.seen = append(h.seen, Request{
		Method:         r.Method,
		Range:          r.Header.Get("Range"),
		IfRange:        r.Header.Get("If-Range"),
		AcceptEncoding: r.Header.Get("Accept-Encoding"),
		Header:         r.Header.Clone(),
		Active:         h.active,
	})
	var step Step
	if len(h.plan) > 0 {
		step = h.plan[0]
		h.plan = h.plan[1:]
	}
	content, size, etag, lm := h.content, h.size, h.etag, h.lastModified
	rate := h.rate
	if step.Rate > 0 {
		rate = step.Rate
	}
	ignoreRange := h.ignoreRange || step.IgnoreRange
	noValidators, disposition, maxRange := h.noValidators, h.disposition, h.maxRange
	h.mu.Unlock()

	if step.Status != 0 {
		if step.RetryAfter != "" {
			w.Header().Set("Retry-After", step.RetryAfter)
		}
		http.Error(w, http.StatusText(step.Status), step.Status)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("Content-Type", "application/octet-stream")
	if !noValidators {
		if etag != "" {
			hdr.Set("Etag", etag)
		}
		hdr.Set("Last-Modified", lm.UTC().Format(http.TimeFormat))
	}
	if disposition != "" {
		hdr.Set("Content-Disposition", disposition)
	}

	start, end, status := int64(0), size-1, http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" && !ignoreRange {
		ir := r.Header.Get("If-Range")
		if ir == "" || !noValidators && (ir == etag && etag != "" || ir == lm.UTC().Format(http.TimeFormat)) {
			s, e, ok := parseRange(rg, size)
			if ok && step.ShiftRange != 0 {
				s = min(max(s+step.ShiftRange, 0), e)
			}
			switch {
			case !ok && s >= size:
				hdr.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
				http.Error(w, "range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
				return
			case ok:
				if maxRange > 0 {
					e = min(e, s+maxRange-1)
				}
				start, end, status = s, e, http.StatusPartialContent
				hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", s, e, size))
			}
		}
	}
	hdr.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}

	rc := http.NewResponseController(w)
	chunk := int64(64 << 10)
	var tick *time.Ticker
	if rate > 0 {
		const per = 20 * time.Millisecond
		chunk = max(rate*int64(per)/int64(time.Second), 1)
		tick = time.NewTicker(per)
		defer tick.Stop()
	}
	buf := make([]byte, chunk)
	sent := int64(0)
	limit := end - start + 1
	if step.Cut || step.Stall {
		limit = min(limit, step.After)
	}
	for sent < limit {
		n := min(int64(len(buf)), limit-sent)
		if _, err := content.ReadAt(buf[:n], start+sent); err != nil && err != io.EOF {
			panic(http.ErrAbortHandler)
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return
		}
		sent += n
		if tick != nil {
			rc.Flush()
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			case <-h.closed:
				return
			}
		}
	}
	if !step.Cut && !step.Stall {
		return
	}
	rc.Flush()
	if step.Reached != nil {
		close(step.Reached)
	}
	if step.Hold != nil {
		select {
		case <-step.Hold:
		case <-r.Context().Done():
			return
		case <-h.closed:
			return
		}
	}
	if step.Cut {
		conn, _, err := rc.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		conn.Close()
		return
	}
	select {
	case <-r.Context().Done():
	case <-h.closed:
	}
}

// parseRange parses "bytes=N-" or "bytes=N-M" against size. ok is false
// for anything else; s >= size then means unsatisfiable.
func parseRange(v string, size int64) (s, e int64, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(spec, "-")
	if !found || a == "" {
		return 0, 0, false
	}
	s, err := strconv.ParseInt(a, 10, 64)
	if err != nil || s < 0 {
		return 0, 0, false
	}
	if s >= size {
		return s, 0, false
	}
	e = size - 1
	if b != "" {
		if e2, err := strconv.ParseInt(b, 10, 64); err == nil && e2 >= s {
			e = min(e2, size-1)
		} else {
			return 0, 0, false
		}
	}
	return s, e, true
}

// Pattern is deterministic content of any size that needs no memory: byte
// i is a function of i. Use [Pattern.Bytes] for the expected bytes of a
// small one.
type Pattern struct{ Seed byte }

// ReadAt implements [io.ReaderAt]; it never fails. It runs at memory
// speed (one multiplication per 8 bytes).
func (p Pattern) ReadAt(b []byte, off int64) (int, error) {
	n := len(b)
	for len(b) > 0 {
		w := p.word(off >> 3)
		k := int(off & 7)
		if k == 0 && len(b) >= 8 {
			binary.LittleEndian.PutUint64(b, w)
			b, off = b[8:], off+8
			continue
		}
		b[0] = byte(w >> (8 * k))
		b, off = b[1:], off+1
	}
	return n, nil
}

func (p Pattern) word(i int64) uint64 {
	x := (uint64(i) + uint64(p.Seed)<<56) * 0x9E3779B97F4A7C15
	return x ^ x>>29
}

// Bytes returns the first n bytes of the pattern.
func (p Pattern) Bytes(n int64) []byte {
	b := make([]byte, n)
	p.ReadAt(b, 0)
	return b
}

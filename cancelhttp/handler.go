package cancelhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-cancellation/cancellation"
)

// RequestIDHeader is the request header that carries the request id, and
// the response header that echoes it (see [Handler] and
// [WithResponseRequestID] for when responses carry it).
const RequestIDHeader = "X-Request-Id"

// StatusClientClosedRequest (499, the code nginx uses) is the status the
// access log reports for a request whose client went away before the
// handler returned. It is never sent: nobody is there to read it.
const StatusClientClosedRequest = 499

// maxRequestIDLen bounds an inbound X-Request-Id that is used (and echoed).
const maxRequestIDLen = 128

// An Option configures [Handler]. Options hold no state of their own: one
// Option value may be passed to any number of Handler calls, concurrently.
type Option interface{ apply(*handlerConfig) }

type handlerConfig struct {
	logger     *slog.Logger
	maxTimeout time.Duration
	responseID bool // WithResponseRequestID: set X-Request-Id on every response
}

type optionFunc func(*handlerConfig)

func (f optionFunc) apply(c *handlerConfig) { f(c) }

// WithLogger sets the logger that receives the access log, one record per
// request. Without this option, or with a nil logger, [slog.Default] is
// used; pass slog.New(slog.DiscardHandler) to turn the access log off.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *handlerConfig) { c.logger = l })
}

// WithMaxTimeout caps the timeout a client may ask for in a
// Connect-Timeout-Ms or Grpc-Timeout header: a longer one is shortened to d
// (and the [DeadlineError] says so). d <= 0, the default, means no cap. The
// cap does not give requests without a timeout header a deadline.
func WithMaxTimeout(d time.Duration) Option {
	return optionFunc(func(c *handlerConfig) { c.maxTimeout = d })
}

// WithResponseRequestID makes the middleware set the X-Request-Id response
// header on every response, to the request id it uses: the client's when
// the request carried a valid one, else the generated one. Use it when
// clients should see generated ids, for example to quote them in bug
// reports.
//
// Without this option a response carries X-Request-Id only when the request
// carried a valid one (a true echo), and the generated id is only in the
// access log and [RequestID]. That default is for throughput: setting a
// response header that the handler did not set makes net/http clone the
// handler's header map and write, and the client parse, one more header.
// For a small handler that sets no header itself that costs about 5% of
// requests/s (the middleware went from 0.97× a bare handler to 0.92× with
// this option in bench/http; see docs/taskd.md), for one that sets headers
// 1-4%. chi's RequestID middleware does not set the response header either.
//
// Like every Option, it is safe to use concurrently and from any number of
// handlers.
func WithResponseRequestID() Option {
	return optionFunc(func(c *handlerConfig) { c.responseID = true })
}

// Handler returns next wrapped in the cancellation middleware. For each
// request it
//
//   - checks the Connect-Timeout-Ms and Grpc-Timeout headers, and answers
//     400 Bad Request with a [HeaderError]'s message, without calling next,
//     when one is malformed;
//   - creates a [cancellation.Source] whose Token becomes the request's
//     context: r.Context() in next is a [cancellation.Token] carrying every
//     value of the original request context, and [RequestToken] finds it
//     again below derived contexts;
//   - cancels that token when the client goes away (cause
//     [ErrClientDisconnected]), when the server's base context is canceled
//     ([Serve] does that with cause [ErrServerShutdown] once the grace period
//     is over), or when the client's timeout passes (Err
//     [context.DeadlineExceeded], cause a *[DeadlineError]). Err is always
//     exactly context.Canceled or context.DeadlineExceeded; the reason is in
//     the cause;
//   - takes the request id from the X-Request-Id header (a printable ASCII
//     value of at most 128 bytes; the first value if there are several) or,
//     when the header is missing or invalid, generates one (16 hex digits).
//     [RequestID] and the access log always have it. The response carries
//     X-Request-Id only when the request carried a valid one (an echo); an
//     invalid one is replaced and not echoed. [WithResponseRequestID] sets
//     it on every response, generated ids included;
//   - cancels the token when next returns (cause context.Canceled, as
//     net/http does with its own request context), which releases every link
//     the request held;
//   - logs one access-log record: method, path, status (499 when the client
//     went away), bytes (for a 499, only those written before the client
//     left; none for HEAD), duration_ms and request_id, plus on cancellation canceled
//     (client, deadline, shutdown, or other for a custom base context), the
//     cause and stop_latency_ms, the time from cancellation to next's
//     return. Durations are milliseconds, as floats; strings from the
//     request are cut to 1 KiB;
//   - on an HTTP/1 request with a Transfer-Encoding, sets Connection: close
//     on the response, so net/http closes the connection after it, and,
//     under [Serve], answers 400 without calling next when the request also
//     had a Content-Length (see the package documentation on request
//     smuggling);
//     A 5xx or a panic is logged at level Error, the rest at Info (a
//     handler that aborts with http.ErrAbortHandler is logged with
//     aborted=true).
//
// The http.ResponseWriter given to next records the status and size; it
// implements http.Flusher and http.Hijacker by delegation and has an Unwrap
// method, so [http.ResponseController] reaches every feature of the
// underlying writer. A panic in next is logged and then re-panicked, so
// net/http handles it as usual.
//
// The linkage costs no goroutine while the request runs: the client link is
// a [context.AfterFunc] on the original request context (net/http cancels it
// when the connection closes or the HTTP/2 stream is reset), which runs one
// short goroutine only if it fires. Under [Serve], an HTTP/1 request whose
// context is net/http's own shares one such link with the other requests of
// its connection, set at the first one (a request's context is then canceled
// only with its connection's), which saves the per-request registration; it
// runs one short goroutine when the connection ends. A timeout header adds
// one runtime timer.
//
// Handler panics if next is nil. The returned handler is safe for concurrent
// use; it does not block beyond what next does.
func Handler(next http.Handler, opts ...Option) http.Handler {
	if next == nil {
		panic("cancelhttp: nil handler")
	}
	h := &handler{next: next}
	for _, o := range opts {
		o.apply(&h.config)
	}
	if h.config.logger == nil {
		h.config.logger = slog.Default()
	}
	return h
}

type handler struct {
	next   http.Handler
	config handlerConfig
}

// epoch anchors the monotonic timestamps stored in request.canceledAt.
var epoch = time.Now()

// monotonic returns the time since epoch on the monotonic clock, plus one so
// that zero means "not set".
func monotonic(t time.Time) int64 { return int64(t.Sub(epoch)) + 1 }

// request is the middleware's per-request state, allocated once. It is also
// the first parent of the request's Source: a context that is never done and
// answers the request key and otherwise the values of the original request
// context.
//
// Value delegates to parent directly, without a context.WithoutCancel in
// between: the context package asks a context for its parent cancelCtx
// (under a private key) only when the context's Done is non-nil (propagating
// cancellation) or its Err is non-nil (context.Cause), and both are nil here.
// Through the request's Token, that key never reaches request.Value: the
// Token answers it itself. So only ordinary keys get here: from the
// handler's code through the Token, and from slog handlers in the access
// log.
type request struct {
	// req is what next gets when copyRequest works: the original request
	// with the Token as its context, allocated with the rest (r.WithContext
	// would allocate it on its own). r is what next got: &req, or the
	// WithContext copy.
	req    http.Request
	r      *http.Request
	parent context.Context // the original request's context, as net/http gave it
	src    *cancellation.Source
	id     string
	idHdr  [1]string // the response header's value slice, without an allocation
	idBuf  [16]byte  // a generated id's bytes: id points here, no allocation
	// start is when the request began, as time since epoch (one monotonic
	// clock read), and stopLink removes the link to parent (nil when conn
	// links the request instead): kept here, not on ServeHTTP's frame,
	// which stays small for as long as next runs.
	start    time.Duration
	stopLink func() bool
	conn     *watchConn // the connection that links the request, or nil
	// deadline is the earliest of the timeout header's deadline, the
	// original request context's and SetRequestDeadline's (monotonic(t));
	// 0 if none. Written under dlMu, read atomically.
	deadline atomic.Int64
	dlMu     sync.Mutex
	// canceledAt is when parentDone or the release canceled src
	// (monotonic(t)), or 0. A deadline's time is the deadline itself.
	canceledAt atomic.Int64
	rw         responseWriter
}

// since is the time since epoch on the monotonic clock: one clock read,
// where time.Now makes two (wall and monotonic).
func since() time.Duration { return time.Since(epoch) }

// requestCtxOffset is the offset of http.Request's unexported context field
// when copyRequest can set it, or 0.
var requestCtxOffset = findRequestCtx()

// findRequestCtx returns the offset of http.Request's context field, after
// checking that a copy of a request with that field set is exactly what
// Request.WithContext returns (a request with a body, a pattern and path
// values; every field compared); or 0, and Handler then uses WithContext.
func findRequestCtx() uintptr {
	f, ok := reflect.TypeFor[http.Request]().FieldByName("ctx")
	if !ok || len(f.Index) != 1 || f.Offset == 0 || f.Type != reflect.TypeFor[context.Context]() {
		return 0
	}
	ctx := context.WithValue(context.Background(), requestKey{}, nil)
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://example.com/a/b?c=d",
		struct{ io.Reader }{strings.NewReader("body")})
	if err != nil {
		return 0
	}
	r.Header.Set(RequestIDHeader, "x")
	r.Pattern = "/a/{k}"
	r.SetPathValue("k", "b")
	want := r.WithContext(context.TODO())
	var got http.Request
	copyRequest(&got, r, context.TODO(), f.Offset)
	if !reflect.DeepEqual(&got, want) {
		return 0
	}
	return f.Offset
}

// copyRequest sets *dst to r with ctx as its context, as r.WithContext does
// (a shallow copy with the context replaced); off is requestCtxOffset.
func copyRequest(dst, r *http.Request, ctx context.Context, off uintptr) {
	*dst = *r
	*(*context.Context)(unsafe.Add(unsafe.Pointer(dst), off)) = ctx
}

type requestKey struct{}

func (rq *request) Deadline() (time.Time, bool) { return time.Time{}, false }
func (rq *request) Done() <-chan struct{}       { return nil }
func (rq *request) Err() error                  { return nil }
func (rq *request) String() string              { return "cancelhttp.request" }
func (rq *request) Value(key any) any {
	if _, ok := key.(requestKey); ok {
		return rq
	}
	return rq.parent.Value(key)
}

// parentDone runs (in a goroutine of context.AfterFunc) when the original
// request context is done: the client went away, or the server's base
// context was canceled.
func (rq *request) parentDone() { rq.canceledBy(rq.parent) }

// canceledBy cancels the request because ctx, the original request context
// or the connection context it derives from (see watchConn.link), is done.
func (rq *request) canceledBy(ctx context.Context) {
	now := time.Now()
	if ctx.Err() == context.DeadlineExceeded {
		// An outer layer gave the request context a deadline (for example
		// http.TimeoutHandler). Fire the token's own timer so that its Err
		// is DeadlineExceeded too.
		dl, ok := ctx.Deadline()
		if !ok || dl.After(now) {
			dl = now
		}
		rq.src.SetDeadline(dl)
		return
	}
	cause := context.Cause(ctx)
	if cause == nil || cause == context.Canceled {
		// net/http cancels the request context with a bare
		// context.Canceled when the connection is closed or the HTTP/2
		// stream is reset.
		cause = ErrClientDisconnected
	}
	// Stored before the cancellation, so that whoever sees the token
	// canceled also sees the time.
	rq.canceledAt.CompareAndSwap(0, monotonic(now))
	rq.src.CancelCause(cause)
}

// setDeadline arms the Source's timer at t with cause, unless the request
// already has a deadline no later than t.
func (rq *request) setDeadline(t time.Time, cause error) {
	m := monotonic(t)
	rq.dlMu.Lock()
	defer rq.dlMu.Unlock()
	if cur := rq.deadline.Load(); cur != 0 && cur <= m {
		return
	}
	rq.deadline.Store(m)
	rq.src.SetDeadlineCause(t, cause)
}

// cancelTime is when the token was canceled, if known.
func (rq *request) cancelTime() (time.Time, bool) {
	if dl := rq.deadline.Load(); dl != 0 && rq.src.Token().Err() == context.DeadlineExceeded {
		return epoch.Add(time.Duration(dl - 1)), true
	}
	if n := rq.canceledAt.Load(); n != 0 {
		return epoch.Add(time.Duration(n - 1)), true
	}
	return time.Time{}, false
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rq := h.begin(w, r)
	if rq == nil {
		return // answered 400
	}
	// ServeHTTP's frame stays small (the request's state is in rq): it is
	// on the stack for as long as next runs, so its size counts once per
	// in-flight request.
	defer h.finish(rq)
	h.next.ServeHTTP(&rq.rw, rq.r)
}

// begin sets the request up: its id, its timeout header, its Source and the
// link to the original request context (stopLink removes it). It answers a
// malformed timeout header with 400 and returns nil then. rq.r is r with
// the request's Token as its context.
//
//go:noinline
func (h *handler) begin(w http.ResponseWriter, r *http.Request) (rq *request) {
	rq = &request{parent: r.Context(), start: since()}
	var echo bool
	rq.id, echo = requestID(r.Header, &rq.idBuf)
	rq.rw.ResponseWriter = w
	if echo || h.config.responseID {
		// Only then: calling w.Header() at all makes net/http clone the
		// header map when the response is written.
		rq.idHdr[0] = rq.id
		w.Header()[RequestIDHeader] = rq.idHdr[:]
	}

	de, err := inboundTimeout(r.Header, h.config.maxTimeout)
	if err != nil {
		http.Error(&rq.rw, err.Error(), http.StatusBadRequest)
		h.log(r, rq, since()-rq.start, outcome{err: err})
		return nil
	}

	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// RFC 9112 requires closing the connection after answering a
		// request with both Transfer-Encoding and Content-Length, which
		// drops any request smuggled after it. net/http has removed the
		// Content-Length; under Serve the raw headers tell (usually).
		w.Header().Set("Connection", "close")
		if wc := connOf(rq.parent); wc != nil && wc.sentContentLength(r) {
			http.Error(&rq.rw, errAmbiguousFraming.Error(), http.StatusBadRequest)
			h.log(r, rq, since()-rq.start, outcome{err: errAmbiguousFraming})
			return nil
		}
	}

	rq.src = cancellation.New(rq)
	rq.rw.src = rq.src
	if de != nil {
		// The Source's own timer, with a cause that names the header.
		rq.setDeadline(epoch.Add(rq.start+de.Timeout), de)
	}
	dl, hasDeadline := rq.parent.Deadline()
	if hasDeadline {
		// Rare: an outer layer set a deadline. parentDone maps
		// cancellations of the original context, but only the Source's own
		// timer can make Err DeadlineExceeded.
		rq.setDeadline(dl, nil)
	}
	// Under Serve, an HTTP/1 request whose context is net/http's own is
	// linked through its connection, which saves the per-request
	// registration (see watchConn.link); any other through AfterFunc.
	if wc := connOf(rq.parent); hasDeadline || wc == nil || r.ProtoMajor != 1 || !wc.link(rq) {
		rq.stopLink = context.AfterFunc(rq.parent, rq.parentDone)
	}
	if requestCtxOffset != 0 {
		copyRequest(&rq.req, r, rq.src.Token(), requestCtxOffset)
		rq.r = &rq.req
	} else {
		rq.r = r.WithContext(rq.src.Token())
	}
	return rq
}

// finish runs, deferred, when next returns or panics: it releases the
// request and logs it, and re-panics with next's panic.
func (h *handler) finish(rq *request) {
	v := recover()
	d := since() - rq.start
	end := epoch.Add(rq.start + d) // with a monotonic reading
	if rq.stopLink != nil {
		rq.stopLink()
	} else {
		rq.conn.unlink(rq)
	}
	o := outcome{panicked: v}
	if v == http.ErrAbortHandler {
		// A deliberate abort, not a failure.
		o.panicked, o.aborted = nil, true
	}
	tok := rq.src.Token()
	if tok.IsCanceled() {
		// Canceled before next returned, not by the race between a
		// late cancellation and the return.
		if at, ok := rq.cancelTime(); ok && !at.After(end) {
			o.cause = tok.Cause()
			o.stopLatency = end.Sub(at)
			o.deadline = tok.Err() == context.DeadlineExceeded
		}
	}
	// Release: the request is over. Canceling drops the links to the
	// parents and frees the timer.
	rq.canceledAt.CompareAndSwap(0, monotonic(end))
	rq.src.Cancel()
	h.log(rq.r, rq, d, o)
	if v != nil {
		panic(v)
	}
}

// outcome is what the access log says beyond the request itself.
type outcome struct {
	err         error // why the middleware answered 400 itself
	cause       error // why the token was canceled before next returned
	deadline    bool  // that cancellation was a deadline
	stopLatency time.Duration
	panicked    any
	aborted     bool // next panicked with http.ErrAbortHandler
}

func (h *handler) log(r *http.Request, rq *request, d time.Duration, o outcome) {
	status := int(rq.rw.status)
	if status == 0 {
		status = http.StatusOK // what net/http sends for a handler that wrote nothing
		if o.panicked != nil {
			status = http.StatusInternalServerError
		}
	}
	bytes := rq.rw.bytes
	if r.Method == http.MethodHead {
		bytes = 0 // net/http sends no body, whatever the handler wrote
	}
	if o.cause != nil && errors.Is(o.cause, ErrClientDisconnected) {
		status = StatusClientClosedRequest
		// What was written after the client left went nowhere.
		bytes = rq.rw.bytesLive
	}
	level := slog.LevelInfo
	if status >= 500 || o.panicked != nil {
		level = slog.LevelError
	}
	// rq, not the canceled token: the request's values, and never done.
	ctx := context.Context(rq)
	if !h.config.logger.Enabled(ctx, level) {
		return
	}
	var attrs [13]slog.Attr
	attrs[0] = slog.String("method", truncate(r.Method))
	attrs[1] = slog.String("path", truncate(r.URL.Path))
	attrs[2] = slog.Int("status", status)
	attrs[3] = slog.Int64("bytes", bytes)
	attrs[4] = milliseconds("duration_ms", d)
	attrs[5] = slog.String("request_id", rq.id)
	n := 6
	if o.cause != nil {
		attrs[n] = slog.String("canceled", cancelKind(o))
		attrs[n+1] = slog.Any("cause", o.cause)
		attrs[n+2] = milliseconds("stop_latency_ms", o.stopLatency)
		n += 3
	}
	if o.err != nil {
		attrs[n] = slog.String("error", o.err.Error())
		n++
	}
	if o.panicked != nil {
		attrs[n] = slog.String("panic", truncate(fmt.Sprint(o.panicked)))
		n++
	}
	if o.aborted {
		attrs[n] = slog.Bool("aborted", true)
		n++
	}
	if rq.rw.hijacked {
		attrs[n] = slog.Bool("hijacked", true)
		n++
	}
	h.config.logger.LogAttrs(ctx, level, "request", attrs[:n]...)
}

// errAmbiguousFraming answers a request with both Content-Length and
// Transfer-Encoding.
var errAmbiguousFraming = errors.New("request has both Content-Length and Transfer-Encoding: send one of them")

// Cancellation kinds of the access log's canceled attribute.
const (
	canceledClient   = "client"
	canceledDeadline = "deadline"
	canceledShutdown = "shutdown"
	canceledOther    = "other"
)

// cancelKind names why the token was canceled, for counting: client,
// deadline, shutdown, or other (a cancellation of a custom base context).
func cancelKind(o outcome) string {
	switch {
	case errors.Is(o.cause, ErrClientDisconnected):
		return canceledClient
	case o.deadline:
		return canceledDeadline
	case errors.Is(o.cause, ErrServerShutdown):
		return canceledShutdown
	}
	return canceledOther
}

// milliseconds is d as a float number of milliseconds, to the microsecond:
// readable in both text and JSON logs, with the unit in the key.
func milliseconds(key string, d time.Duration) slog.Attr {
	return slog.Float64(key, float64(d.Microseconds())/1000)
}

// maxLogged bounds the strings from a request (path, method, panic value)
// that the access log repeats; maxEchoed bounds a bad header value quoted
// in an answer and in the log.
const (
	maxLogged = 1024
	maxEchoed = 64
)

// truncate shortens s to maxLogged bytes, saying how long it was.
func truncate(s string) string {
	if len(s) <= maxLogged {
		return s
	}
	return s[:maxLogged] + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// quoteEchoed quotes s like %q, shortened to maxEchoed bytes (and its
// length) when it is longer.
func quoteEchoed(s string) string {
	if len(s) <= maxEchoed {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxEchoed]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// requestID returns the inbound X-Request-Id and true when it is
// acceptable, or a new random id of 16 hex digits, written in buf, and
// false. buf must not change afterwards: the id points into it.
func requestID(h http.Header, buf *[16]byte) (id string, inbound bool) {
	if vs := h[RequestIDHeader]; len(vs) > 0 && validRequestID(vs[0]) {
		return vs[0], true
	}
	const hex = "0123456789abcdef"
	x := rand.Uint64()
	for i := len(buf) - 1; i >= 0; i-- {
		buf[i] = hex[x&0xf]
		x >>= 4
	}
	return unsafe.String(&buf[0], len(buf)), false
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func lookup(ctx context.Context) *request {
	rq, _ := ctx.Value(requestKey{}).(*request)
	if rq == nil || rq.src == nil {
		return nil
	}
	return rq
}

// RequestToken returns the token [Handler] installed for the request whose
// context is ctx (or derives from it), and false when there is none. It is
// the same token as r.Context() in the handler, found again through any
// context derived from it.
//
// It does not block and is safe for concurrent use.
func RequestToken(ctx context.Context) (cancellation.Token, bool) {
	rq := lookup(ctx)
	if rq == nil {
		return cancellation.Token{}, false
	}
	return rq.src.Token(), true
}

// RequestID returns the request id [Handler] chose for the request whose
// context is ctx (or derives from it), or "" when there is none: the
// client's X-Request-Id if it was valid, else a generated one. It is the
// request_id of the access log; a generated id is in the response only with
// [WithResponseRequestID].
//
// It does not block and is safe for concurrent use.
func RequestID(ctx context.Context) string {
	if rq, _ := ctx.Value(requestKey{}).(*request); rq != nil {
		return rq.id
	}
	return ""
}

// SetRequestDeadline gives the request whose context is ctx (or derives
// from it) a deadline set by the server, for work that must not run longer
// than t whatever the client asked: the request token is canceled at t,
// with Err [context.DeadlineExceeded] and the given cause (Cause is
// context.DeadlineExceeded when cause is nil), and the access log reports
// canceled=deadline. A deadline the request already has (from a timeout
// header, or an earlier call) that is no later than t is kept. It reports
// whether ctx carries a request token; without one it does nothing.
//
// It does not block and is safe for concurrent use.
func SetRequestDeadline(ctx context.Context, t time.Time, cause error) bool {
	rq := lookup(ctx)
	if rq == nil {
		return false
	}
	rq.setDeadline(t, cause)
	return true
}

// CanceledAt reports when the request token of ctx was canceled: the
// moment the middleware noticed that the client went away or the server
// shut down, or the deadline itself for a deadline. It returns false while
// the token is live, and when ctx carries no request token. The time
// carries a monotonic clock reading, so time.Since(at) is the handler's
// stop latency so far.
//
// It does not block and is safe for concurrent use.
func CanceledAt(ctx context.Context) (time.Time, bool) {
	rq := lookup(ctx)
	if rq == nil || !rq.src.Token().IsCanceled() {
		return time.Time{}, false
	}
	return rq.cancelTime()
}

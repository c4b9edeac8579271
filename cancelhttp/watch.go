package cancelhttp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"sync/atomic"
	"unsafe"
)

// watchListener wraps the connections [Serve] accepts so that the requests
// net/http rejects without calling a handler reach the log. It is safe for
// concurrent use, like the listener it wraps.
type watchListener struct {
	net.Listener
	log *slog.Logger
}

func (l *watchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return &watchConn{Conn: c, log: l.log}, nil
}

// watchConn sees what net/http reads and writes on one connection:
//
//   - a write of one of net/http's own error answers ("HTTP/1.1 400 Bad
//     Request" followed by exactly the headers net/http gives them, which
//     a handler's answer never has, since it always has Date and
//     Content-Length) is logged as a rejected request;
//   - a read that fails with a timeout after bytes of a request arrived,
//     followed by Close with no write in between, is net/http dropping a
//     request whose headers (or body) came too slowly: logged as 408.
//
// A connection whose first read starts with the HTTP/2 preface is not
// watched. net/http
// reads a connection from one goroutine at a time and writes it from one,
// but reads and writes may run at once: the fields they share are atomic.
type watchConn struct {
	net.Conn
	log *slog.Logger
	// pending counts bytes read since the last write (the start of a
	// request not answered yet); -1 once the connection speaks HTTP/2.
	pending  atomic.Int64
	timedOut atomic.Bool // a read timed out while pending > 0
	closed   atomic.Bool
	// last is what the last read returned, in net/http's own buffer (no
	// copy), with the reads just before it that filled the same buffer
	// contiguously: the raw bytes of the request being served, when its
	// request line and headers arrived together (see sentContentLength).
	last []byte
	// lead is the byte of a one-byte read just before last, if any: net/http
	// reads the first byte of the next request on a keep-alive connection
	// on its own when it arrives while the previous handler still runs.
	lead    byte
	hasLead bool

	// The request link (see link). ctx is what Serve's ConnContext
	// returned for this connection; connCtx is net/http's connection
	// context derived from it, found at the first request, and linked to
	// connDone. Both are used by the connection's serving goroutine only
	// (connCtx is written before the AfterFunc that reads it is set).
	ctx, connCtx context.Context
	linked       bool                    // link tried: connCtx is set if it worked
	active       atomic.Pointer[request] // the request being served, if linked
}

// connKey is the context key under which Serve's ConnContext stores the
// *watchConn of a connection.
type connKey struct{}

// connOf returns the connection Serve stored in ctx, or nil.
func connOf(ctx context.Context) *watchConn {
	wc, _ := ctx.Value(connKey{}).(*watchConn)
	return wc
}

// The dynamic types of context.WithCancel's and context.WithValue's
// contexts, to recognize the contexts net/http derives for a connection; nil
// when such a type does not have the layout parentOf reads.
var (
	cancelCtxType = embedsParentFirst(func() reflect.Type {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return reflect.TypeOf(ctx)
	}())
	valueCtxType = embedsParentFirst(reflect.TypeOf(context.WithValue(context.Background(), connKey{}, nil)))
)

// embedsParentFirst returns typ if it is a pointer to a struct whose first
// field, at offset 0, is an embedded context.Context (the parent), and nil
// otherwise.
func embedsParentFirst(typ reflect.Type) reflect.Type {
	if typ.Kind() != reflect.Pointer || typ.Elem().Kind() != reflect.Struct || typ.Elem().NumField() == 0 {
		return nil
	}
	f := typ.Elem().Field(0)
	if !f.Anonymous || f.Offset != 0 || f.Type != reflect.TypeFor[context.Context]() {
		return nil
	}
	return typ
}

// parentOf returns the parent of ctx if its dynamic type is typ, a type
// embedsParentFirst accepted: the embedded Context field, read through the
// interface's data word (the struct's address). reflect.Value.Field would
// read the same field at three times the cost, on every request. The field
// is set when the context is made and never written after.
func parentOf(ctx context.Context, typ reflect.Type) (context.Context, bool) {
	if typ == nil || reflect.TypeOf(ctx) != typ {
		return nil, false
	}
	data := (*[2]unsafe.Pointer)(unsafe.Pointer(&ctx))[1]
	return *(*context.Context)(data), true
}

// link links rq, an HTTP/1 request on c, through c instead of registering
// on its context, and reports whether it did. It does when rq.parent is
// exactly the request context net/http made (context.WithCancel of the
// connection context, itself context.WithCancel of a context.WithValue of
// c.ctx), so that no other layer can cancel it: the request context is then
// canceled, while the handler runs, only when the connection context is
// (the client went away, a write failed, or the base context was
// canceled), and one context.AfterFunc on the connection context, set at
// the first request and kept for the connection's life, serves every
// request of the connection. HTTP/1 serves one request of a connection at
// a time, from the goroutine that calls link and unlink. Any other shape
// (a middleware outside Handler that replaced the context, a newer
// net/http that nests differently, HTTP/2) reports false: the caller then
// uses AfterFunc on rq.parent.
func (c *watchConn) link(rq *request) bool {
	conn, ok := parentOf(rq.parent, cancelCtxType)
	if !ok {
		return false
	}
	if !c.linked {
		c.linked = true
		v, ok := parentOf(conn, cancelCtxType)
		if !ok {
			return false
		}
		if v, ok = parentOf(v, valueCtxType); !ok || v != c.ctx {
			return false
		}
		c.connCtx = conn
		context.AfterFunc(conn, c.connDone) // kept: the connection ends with it
	}
	if c.connCtx == nil || conn != c.connCtx {
		return false
	}
	rq.conn = c
	c.active.Store(rq)
	if conn.Err() != nil {
		// Canceled before the request was linked: connDone may have run
		// already.
		rq.canceledBy(conn)
	}
	return true
}

// unlink ends what link began, when the handler returns.
func (c *watchConn) unlink(rq *request) { c.active.CompareAndSwap(rq, nil) }

// connDone runs (in a goroutine of context.AfterFunc) when net/http's
// connection context is done: it cancels the request being served, if any.
func (c *watchConn) connDone() {
	if rq := c.active.Load(); rq != nil {
		rq.canceledBy(c.connCtx)
	}
}

var h2Preface = []byte("PRI * HTTP/2.0\r\n")

func (c *watchConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if l := len(c.last); l > 0 && cap(c.last) > l && &c.last[:l+1][l] == &p[0] {
			// Read into the buffer right after the last read (net/http
			// peeks at a connection's first bytes for the HTTP/2 preface
			// in a read of their own): keep both.
			c.last = c.last[:l+n]
		} else {
			c.lead, c.hasLead = 0, false
			if len(c.last) == 1 {
				c.lead, c.hasLead = c.last[0], true
			}
			c.last = p[:n]
		}
	}
	pending := c.pending.Load()
	if pending < 0 {
		return n, err
	}
	if pending == 0 && bytes.HasPrefix(p[:n], h2Preface) {
		c.pending.Store(-1)
		return n, err
	}
	pending = c.pending.Add(int64(n))
	if err != nil && pending > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	return n, err
}

// sentContentLength reports whether the raw header block of r, an HTTP/1
// request net/http has just parsed (with a Transfer-Encoding, so it removed
// any Content-Length), had a Content-Length line. It finds the block in the
// bytes of the last read, which is where it is when the request line and
// headers arrived together, as clients and proxies send them; when they did
// not, it reports false. Call it from the handler's goroutine before the
// body is read: net/http reads nothing else then.
func (c *watchConn) sentContentLength(r *http.Request) bool {
	line := r.Method + " " + r.RequestURI + " " + r.Proto + "\r\n"
	var hdr []byte
	if i := bytes.Index(c.last, []byte(line)); i >= 0 {
		hdr = c.last[i+len(line):]
	} else if c.hasLead && c.lead == line[0] && bytes.HasPrefix(c.last, []byte(line[1:])) {
		hdr = c.last[len(line)-1:]
	} else {
		return false
	}
	end := bytes.Index(hdr, []byte("\r\n\r\n"))
	if end < 0 {
		return false
	}
	for hdr = hdr[:end+2]; len(hdr) > 0; {
		l, rest, _ := bytes.Cut(hdr, []byte("\n"))
		hdr = rest
		if name, _, ok := bytes.Cut(l, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Length")) {
			return true
		}
	}
	return false
}

// errorHeaders is what net/http writes between the status line and the body
// of the answers it sends itself.
const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *watchConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.pending.Load() < 0 {
		return n, err
	}
	c.pending.Store(0)
	c.timedOut.Store(false)
	if len(p) > 13 && string(p[:9]) == "HTTP/1.1 " {
		// Only the status line is searched, not the whole answer.
		if i := bytes.IndexByte(p[:min(len(p), 512)], '\r'); i > 0 && bytes.HasPrefix(p[i:], []byte(errorHeaders)) {
			c.logRejected(p[9:i], p[i+len(errorHeaders):], n)
		}
	}
	return n, err
}

// ReadFrom keeps net/http's sendfile path: io.Copy uses the wrapped
// connection's ReadFrom when it has one.
func (c *watchConn) ReadFrom(r io.Reader) (int64, error) {
	if c.pending.Load() >= 0 {
		c.pending.Store(0)
		c.timedOut.Store(false)
	}
	return io.Copy(c.Conn, r)
}

// CloseWrite keeps the half-close net/http does after refusing a request
// (so the client sees the answer and then EOF).
func (c *watchConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *watchConn) Close() error {
	if !c.closed.Swap(true) && c.timedOut.Load() && c.pending.Load() > 0 {
		c.log.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.Int("status", 408),
			slog.Int("bytes", 0),
			slog.String("rejected_by", "net/http"),
			slog.String("error", "timeout reading the request (ReadHeaderTimeout or ReadTimeout); connection closed without an answer"),
			slog.Int64("bytes_received", c.pending.Load()),
			slog.String("remote_addr", c.RemoteAddr().String()))
	}
	return c.Conn.Close()
}

// logRejected logs an answer net/http wrote itself: status is its status
// line after "HTTP/1.1 " ("400 Bad Request: missing required Host header"),
// body its body.
func (c *watchConn) logRejected(status, body []byte, written int) {
	code, _ := strconv.Atoi(string(status[:min(3, len(status))]))
	c.log.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.Int("status", code),
		slog.Int("bytes", max(0, written-(len(status)+9+len(errorHeaders)))),
		slog.String("rejected_by", "net/http"),
		slog.String("error", truncate(string(body))),
		slog.String("remote_addr", c.RemoteAddr().String()))
}

// Package httpbench measures package cancelhttp end to end over loopback
// TCP, with net/http on both sides, in one process:
//
//   - in-flight cost: heap, stacks and goroutines per in-flight HTTP/1.1
//     request, cancelhttp against plain net/http (MeasureInFlight);
//   - stop latency: the time from a client closing its connection (after a
//     request with or without a body, chunked, with Expect: 100-continue or
//     pipelined) or resetting its HTTP/2 stream to the return of a handler
//     blocked in cancellation.Sleep on the request token;
//   - middleware overhead: requests per second through cancelhttp.Serve and
//     cancelhttp.Handler against the same handler served by plain net/http,
//     with the same Go load generator, in alternating rounds.
//
// bench/http.sh runs them at full size and prints the tables; the benchmarks
// in this package run them at smoke size (go test -bench . -benchtime 1x).
package httpbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelhttp"
)

// server is an http.Server on 127.0.0.1:0 run by cancelhttp.Serve, or by
// its own Serve method (plain net/http).
type server struct {
	addr string
	stop context.CancelFunc
	done chan error
}

func startServer(h http.Handler) (*server, error) { return startServerWith(h, false) }

func startServerWith(h http.Handler, plain bool) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{addr: ln.Addr().String(), stop: cancel, done: make(chan error, 1)}
	if plain {
		s.stop = func() { cancel(); srv.Close() }
		go func() {
			if err := srv.Serve(ln); err != http.ErrServerClosed {
				s.done <- err
				return
			}
			s.done <- nil
		}()
		return s, nil
	}
	go func() {
		s.done <- cancelhttp.Serve(ctx, srv, ln,
			cancelhttp.WithGracePeriod(0), cancelhttp.WithServeLogger(slog.New(slog.DiscardHandler)))
	}()
	return s, nil
}

func (s *server) close() error {
	s.stop()
	return <-s.done
}

// Percentile returns the p-th percentile (0..100, nearest rank) of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Mode says how a client abandons its request.
type Mode string

const (
	// CloseTCP closes the client's HTTP/1.1 connection.
	CloseTCP Mode = "http1-close"
	// ResetStream cancels an HTTP/2 (h2c) request: the client resets the
	// stream and keeps the connection.
	ResetStream Mode = "h2-reset"
	// CloseWithBody closes an HTTP/1.1 connection whose GET carried a
	// 5-byte body (Content-Length) that the handler does not read.
	CloseWithBody Mode = "http1-body"
	// CloseChunked is CloseWithBody with a chunked body.
	CloseChunked Mode = "http1-chunked"
	// CloseExpect sends Expect: 100-continue, the body after the server's
	// 100 Continue, then closes.
	CloseExpect Mode = "http1-expect"
	// ClosePipelined sends a second request in the same write as the first,
	// then closes.
	ClosePipelined Mode = "http1-pipelined"
)

// Modes lists every Mode.
var Modes = []Mode{CloseTCP, CloseWithBody, CloseChunked, CloseExpect, ClosePipelined, ResetStream}

// rawRequest returns what a mode's HTTP/1.1 client sends first, and what it
// sends after reading "100 Continue" ("" for none).
func rawRequest(mode Mode, id string) (first, afterContinue string, ok bool) {
	get := "GET / HTTP/1.1\r\nHost: bench\r\nX-Request-Id: " + id + "\r\n"
	switch mode {
	case CloseTCP:
		return get + "\r\n", "", true
	case CloseWithBody:
		return get + "Content-Length: 5\r\n\r\nhello", "", true
	case CloseChunked:
		return get + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "", true
	case CloseExpect:
		return get + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n", "hello", true
	case ClosePipelined:
		return get + "\r\nGET /next HTTP/1.1\r\nHost: bench\r\n\r\n", "", true
	}
	return "", "", false
}

// sleeper is the handler of the stop-latency runs: it announces itself,
// sleeps on the request token like the taskd step, and reports the time it
// returns, keyed by request id.
type sleeper struct {
	started  chan string
	returned chan stopped
}

type stopped struct {
	id    string
	at    time.Time
	cause error
}

func (s *sleeper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/next" {
		return // the pipelined second request of ClosePipelined
	}
	id := cancelhttp.RequestID(r.Context())
	s.started <- id
	err := cancellation.Sleep(r.Context(), time.Hour)
	at := time.Now()
	s.returned <- stopped{id: id, at: at, cause: context.Cause(r.Context())}
	if err == nil {
		io.WriteString(w, "slept an hour")
	}
}

// StopLatency abandons n requests one at a time and returns, sorted, the
// time from each client's abandoning (just before conn.Close or the context
// cancel) to the handler's return. burst > 1 abandons that many in-flight
// requests at once per batch instead. The handler is behind
// cancelhttp.Handler and cancelhttp.IgnoreBody.
func StopLatency(mode Mode, n, burst int) ([]time.Duration, error) {
	burst = max(burst, 1)
	sl := &sleeper{started: make(chan string, burst), returned: make(chan stopped, burst)}
	srv, err := startServer(cancelhttp.Handler(cancelhttp.IgnoreBody(sl, 64<<10),
		cancelhttp.WithLogger(slog.New(slog.DiscardHandler))))
	if err != nil {
		return nil, err
	}
	defer srv.close()

	var h2 *http.Client
	if mode == ResetStream {
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protocols}
		defer tr.CloseIdleConnections()
		h2 = &http.Client{Transport: tr}
	}

	var lat []time.Duration
	for done := 0; done < n; {
		b := min(burst, n-done)
		abandon := make(map[string]func(), b)
		var wg sync.WaitGroup
		for i := range b {
			id := fmt.Sprintf("r%d", done+i)
			first, afterContinue, raw := rawRequest(mode, id)
			switch {
			case raw:
				c, err := net.Dial("tcp", srv.addr)
				if err != nil {
					return nil, err
				}
				if _, err := io.WriteString(c, first); err != nil {
					return nil, err
				}
				if afterContinue != "" {
					line, err := bufio.NewReader(c).ReadString('\n')
					if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
						return nil, fmt.Errorf("%s: read %q, %v; want 100 Continue", mode, line, err)
					}
					if _, err := io.WriteString(c, afterContinue); err != nil {
						return nil, err
					}
				}
				abandon[id] = func() { c.Close() }
			case mode == ResetStream:
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+srv.addr+"/", nil)
				req.Header.Set("X-Request-Id", id)
				wg.Go(func() {
					if resp, err := h2.Do(req); err == nil {
						resp.Body.Close()
					}
				})
				abandon[id] = cancel
			default:
				return nil, fmt.Errorf("unknown mode %q", mode)
			}
		}
		for range b {
			<-sl.started
		}
		t0 := make(map[string]time.Time, b)
		for id, f := range abandon {
			t0[id] = time.Now()
			f()
		}
		for range b {
			s := <-sl.returned
			if !errors.Is(s.cause, cancelhttp.ErrClientDisconnected) {
				return nil, fmt.Errorf("request %s stopped with cause %v, want client disconnected", s.id, s.cause)
			}
			lat = append(lat, s.at.Sub(t0[s.id]))
		}
		wg.Wait()
		done += b
	}
	slices.Sort(lat)
	return lat, nil
}

// Hello is the worst case for the overhead runs: the smallest useful
// answer, so that the middleware's share is as large as it gets.
var Hello http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "ok")
})

// JSON is a small API answer: a struct of a dozen fields encoded with
// encoding/json (about 400 bytes).
var JSON http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	type item struct {
		ID    int      `json:"id"`
		Name  string   `json:"name"`
		Tags  []string `json:"tags"`
		Price float64  `json:"price"`
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		Path    string    `json:"path"`
		Query   string    `json:"query"`
		Time    time.Time `json:"time"`
		Items   []item    `json:"items"`
		Total   float64   `json:"total"`
		Page    int       `json:"page"`
		PerPage int       `json:"per_page"`
	}{
		Path: r.URL.Path, Query: r.URL.RawQuery, Time: time.Now(),
		Items: []item{
			{1, "alpha", []string{"a", "b"}, 1.5},
			{2, "beta", []string{"c"}, 22.25},
			{3, "gamma", nil, 333},
			{4, "delta", []string{"d", "e", "f"}, 0.125},
		},
		Total: 357, Page: 1, PerPage: 4,
	})
})

// Variant is a way to serve hello.
type Variant struct {
	Name    string
	Handler http.Handler
	// Plain serves Handler with http.Server.Serve instead of
	// cancelhttp.Serve.
	Plain bool
}

// Variants returns h served bare by plain net/http (http.Server.Serve); the
// same handler served by cancelhttp.Serve, to show what Serve alone costs;
// with cancelhttp.Serve and through the middleware with the
// access log disabled (the load generator sends no X-Request-Id, so the
// response carries none); the same with cancelhttp.WithResponseRequestID,
// which puts the generated id in every response, to show what that header
// costs; through the middleware with its access log formatted by slog's
// TextHandler (written to io.Discard); and, for reference, bare behind a
// minimal access-log wrapper that logs the same attributes the same way,
// without any cancellation, to show what the logging alone costs (plain
// net/http too).
func Variants(h http.Handler) []Variant {
	text := func() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
	return []Variant{
		{"bare", h, true},
		{"bare+serve", h, false},
		{"middleware", cancelhttp.Handler(h, cancelhttp.WithLogger(slog.New(slog.DiscardHandler))), false},
		{"middleware+responseid", cancelhttp.Handler(h, cancelhttp.WithLogger(slog.New(slog.DiscardHandler)),
			cancelhttp.WithResponseRequestID()), false},
		{"middleware+accesslog", cancelhttp.Handler(h, cancelhttp.WithLogger(text())), false},
		{"bare+accesslog", plainAccessLog(h, text()), true},
	}
}

// plainAccessLog logs what cancelhttp's access log does, with none of its
// cancellation work.
func plainAccessLog(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", sw.status),
			slog.Int64("bytes", sw.bytes), slog.Duration("duration", time.Since(start)), slog.String("request_id", "0123456789abcdef"))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// PairedRatio returns the median over rounds of xs[r]/base[r]: rounds of
// two variants run back to back, so their ratio cancels the drift of the
// machine's load that the ratio of medians would keep.
func PairedRatio(xs, base []float64) float64 {
	r := make([]float64, min(len(xs), len(base)))
	for i := range r {
		r[i] = xs[i] / base[i]
	}
	return Median(r)
}

// Load runs conns keep-alive HTTP/1.1 clients against each variant for d
// per round, rounds times, rotating the order of the variants every round
// so that none always runs first. It returns, per variant and round,
// requests per second and the process's CPU time (user+system, load
// generator included) per request in microseconds. CPU per request is the
// steadier of the two when other processes compete for the machine.
func Load(variants []Variant, conns, rounds int, d time.Duration) (rps, cpuPerReq [][]float64, err error) {
	servers := make([]*server, len(variants))
	for i, v := range variants {
		s, err := startServerWith(v.Handler, v.Plain)
		if err != nil {
			return nil, nil, err
		}
		defer s.close()
		servers[i] = s
	}
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	// Warm up every server's connections.
	for _, s := range servers {
		if _, err := drive(client, "http://"+s.addr+"/", conns, 100*time.Millisecond); err != nil {
			return nil, nil, err
		}
	}
	rps = make([][]float64, len(variants))
	cpuPerReq = make([][]float64, len(variants))
	for r := range rounds {
		for k := range variants {
			i := (k + r) % len(variants)
			runtime.GC() // start every round with the same heap
			cpu0 := cpuTime()
			n, err := drive(client, "http://"+servers[i].addr+"/", conns, d)
			if err != nil {
				return nil, nil, err
			}
			cpu := cpuTime() - cpu0
			rps[i] = append(rps[i], float64(n)/d.Seconds())
			cpuPerReq[i] = append(cpuPerReq[i], float64(cpu)/float64(time.Microsecond)/float64(max(n, 1)))
		}
	}
	return rps, cpuPerReq, nil
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// drive runs conns goroutines issuing GETs to url for d and returns how
// many completed.
func drive(client *http.Client, url string, conns int, d time.Duration) (int64, error) {
	var n atomic.Int64
	var firstErr atomic.Pointer[error]
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				resp, err := client.Get(url)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return n.Load(), nil
}

// Median returns the median of xs.
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// InFlight is what n in-flight HTTP/1.1 requests cost a server, measured
// in process, per request: the growth of the live Go heap
// (runtime.MemStats.HeapAlloc) and of the goroutine stacks (StackInuse),
// after GCs that empty the sync.Pools (so every round pays for fresh bufio
// buffers, as a burst of new connections does), client connections
// included (the same for every server); and the growth of
// runtime.NumGoroutine per connection.
type InFlight struct {
	HeapPerRequest    float64 // bytes
	StackPerRequest   float64 // bytes
	GoroutinesPerConn float64
}

// InFlightServer is the server MeasureInFlight measures.
type InFlightServer int

const (
	// Plain is a bare http.Server.Serve.
	Plain InFlightServer = iota
	// PlainWrapped is a bare http.Server.Serve with the handler behind the
	// smallest middleware a service usually has: one that records the
	// status and the duration of each request (statusWriter, a clock read
	// before and after). It is the control for the rounding of Go's
	// adaptive initial stack size, which a middleware's few dozen bytes of
	// stack frame can tip over a power of two.
	PlainWrapped
	// Cancelhttp is cancelhttp.Serve with the handler behind
	// cancelhttp.Handler (access log off).
	Cancelhttp
)

func (s InFlightServer) String() string {
	switch s {
	case Plain:
		return "plain net/http (Server.Serve)"
	case PlainWrapped:
		return "plain + status/duration middleware"
	}
	return "cancelhttp.Serve + Handler"
}

// InFlightHandler is what the handlers of MeasureInFlight do while they
// are in flight.
type InFlightHandler int

const (
	// WaitContext waits for the request context to be done: the smallest
	// stack a waiting handler can have.
	WaitContext InFlightHandler = iota
	// SeedSteps runs the longrunningtask loop of taskd's seed endpoint: 20
	// steps, each a timer (here one hour long) raced against the request
	// context in a select.
	SeedSteps
)

func (h InFlightHandler) String() string {
	if h == SeedSteps {
		return "seed steps (timer or context, in a select)"
	}
	return "waits on its context"
}

// recorder is the PlainWrapped middleware: it counts requests by status
// and adds up their durations.
type recorder struct {
	next     http.Handler
	requests *[600]atomic.Int64 // by status
	nanos    *atomic.Int64
}

func (m recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	m.next.ServeHTTP(sw, r)
	m.requests[min(max(sw.status, 0), len(m.requests)-1)].Add(1)
	m.nanos.Add(int64(time.Since(start)))
}

// seedSteps is the SeedSteps handler's loop, reporting on started once it
// waits.
//
//go:noinline
func seedSteps(ctx context.Context, started chan<- struct{}) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	started <- struct{}{}
	for range 20 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			t.Reset(time.Hour)
		}
	}
	return nil
}

// MeasureInFlight opens n HTTP/1.1 connections to srv, each with a GET
// whose handler does hk until its context is done, and measures them once
// every handler runs.
func MeasureInFlight(srvKind InFlightServer, hk InFlightHandler, n int) (InFlight, error) {
	started := make(chan struct{}, n)
	returned := make(chan struct{}, n)
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hk == SeedSteps {
			seedSteps(r.Context(), started)
		} else {
			started <- struct{}{}
			<-r.Context().Done()
		}
		returned <- struct{}{}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return InFlight{}, err
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	switch srvKind {
	case Plain, PlainWrapped:
		if srvKind == PlainWrapped {
			h = recorder{next: h, requests: new([600]atomic.Int64), nanos: new(atomic.Int64)}
		}
		srv := &http.Server{Handler: h}
		go func() { done <- srv.Serve(ln) }()
		defer func() { srv.Close(); <-done }()
	default:
		srv := &http.Server{Handler: cancelhttp.Handler(h, cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))}
		go func() {
			done <- cancelhttp.Serve(ctx, srv, ln, cancelhttp.WithGracePeriod(0),
				cancelhttp.WithServeLogger(slog.New(slog.DiscardHandler)))
		}()
		defer func() { cancel(); <-done }()
	}
	defer cancel()
	measure := func() (heap, stack uint64, goroutines int) {
		// Twice: the second GC empties the sync.Pools (net/http keeps its
		// connections' bufio buffers in them), so every round pays for
		// fresh buffers, as a burst of new connections does.
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
	}
	heap0, stack0, g0 := measure()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return InFlight{}, err
		}
		conns = append(conns, c)
		if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: bench\r\nX-Request-Id: m%d\r\n\r\n", i); err != nil {
			return InFlight{}, err
		}
	}
	for range n {
		<-started
	}
	heap1, stack1, g1 := measure()
	for _, c := range conns {
		c.Close()
	}
	conns = conns[:0]
	for range n {
		<-returned
	}
	return InFlight{
		HeapPerRequest:    float64(int64(heap1)-int64(heap0)) / float64(n),
		StackPerRequest:   float64(int64(stack1)-int64(stack0)) / float64(n),
		GoroutinesPerConn: float64(g1-g0) / float64(n),
	}, nil
}

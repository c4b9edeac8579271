// Package httpbench measures package cancelhttp end to end over loopback
// TCP, with net/http on both sides, in one process:
//
//   - stop latency: the time from a client closing its connection (or
//     resetting its HTTP/2 stream) to the return of a handler blocked in
//     cancellation.Sleep on the request token;
//   - middleware overhead: requests per second through cancelhttp.Handler
//     against the same handler served bare, with the same Go load generator,
//     in alternating rounds.
//
// bench/http.sh runs both at full size and prints the table; the benchmarks
// in this package run them at smoke size (go test -bench . -benchtime 1x).
package httpbench

import (
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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelhttp"
)

// server is an http.Server on 127.0.0.1:0 run by cancelhttp.Serve.
type server struct {
	addr string
	stop context.CancelFunc
	done chan error
}

func startServer(h http.Handler) (*server, error) {
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
)

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
// requests at once per batch instead.
func StopLatency(mode Mode, n, burst int) ([]time.Duration, error) {
	burst = max(burst, 1)
	sl := &sleeper{started: make(chan string, burst), returned: make(chan stopped, burst)}
	srv, err := startServer(cancelhttp.Handler(sl, cancelhttp.WithLogger(slog.New(slog.DiscardHandler))))
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
			switch mode {
			case CloseTCP:
				c, err := net.Dial("tcp", srv.addr)
				if err != nil {
					return nil, err
				}
				if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: bench\r\nX-Request-Id: %s\r\n\r\n", id); err != nil {
					return nil, err
				}
				abandon[id] = func() { c.Close() }
			case ResetStream:
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
}

// Variants returns h served bare; through the middleware with the
// access log disabled (the load generator sends no X-Request-Id, so the
// response carries none); the same with cancelhttp.WithResponseRequestID,
// which puts the generated id in every response, to show what that header
// costs; through the middleware with its access log formatted by slog's
// TextHandler (written to io.Discard); and, for reference, bare behind a
// minimal access-log wrapper that logs the same attributes the same way,
// without any cancellation, to show what the logging alone costs.
func Variants(h http.Handler) []Variant {
	text := func() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
	return []Variant{
		{"bare", h},
		{"middleware", cancelhttp.Handler(h, cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))},
		{"middleware+responseid", cancelhttp.Handler(h, cancelhttp.WithLogger(slog.New(slog.DiscardHandler)),
			cancelhttp.WithResponseRequestID())},
		{"middleware+accesslog", cancelhttp.Handler(h, cancelhttp.WithLogger(text()))},
		{"bare+accesslog", plainAccessLog(h, text())},
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
		s, err := startServer(v.Handler)
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

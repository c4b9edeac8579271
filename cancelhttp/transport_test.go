package cancelhttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/cancelhttp"
	"github.com/go-cancellation/cancellation/internal/testlog"
)

// echoServer answers with the Connect-Timeout-Ms header it received ("-"
// when absent) and counts requests.
func echoServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		v, ok := r.Header["Connect-Timeout-Ms"]
		if !ok {
			v = []string{"-"}
		}
		io.WriteString(w, strings.Join(v, ","))
	}))
	t.Cleanup(ts.Close)
	return ts, &n
}

func TestTransportSendsDeadline(t *testing.T) {
	t.Parallel()
	ts, _ := echoServer(t)
	client := &http.Client{Transport: &cancelhttp.Transport{Base: ts.Client().Transport}}
	tests := []struct {
		name     string
		timeout  time.Duration // 0: no deadline
		preset   string        // Connect-Timeout-Ms set by the caller
		min, max int64         // accepted range of the value sent; -1: no header
	}{
		{name: "no deadline", min: -1, max: -1},
		{name: "deadline", timeout: 10 * time.Second, min: 1, max: 10000},
		{name: "sub-millisecond remaining rounds up to 1", timeout: 900 * time.Microsecond, min: 1, max: 1},
		{name: "shorter preset kept", timeout: 10 * time.Second, preset: "500", min: 500, max: 500},
		{name: "longer preset replaced", timeout: 10 * time.Second, preset: "99999999", min: 1, max: 10000},
		{name: "malformed preset replaced", timeout: 10 * time.Second, preset: "abc", min: 1, max: 10000},
		{name: "beyond ten digits not sent", timeout: 200 * 24 * time.Hour, min: -1, max: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL, nil)
			if tt.preset != "" {
				req.Header.Set("Connect-Timeout-Ms", tt.preset)
			}
			resp, err := client.Do(req)
			if tt.timeout > 0 && tt.timeout < time.Millisecond {
				// The deadline may pass before the request is sent.
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("Do = %v, want success or DeadlineExceeded", err)
					}
					return
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := int64(-1)
			if string(b) != "-" {
				if got, err = strconv.ParseInt(string(b), 10, 64); err != nil {
					t.Fatalf("server received Connect-Timeout-Ms %q", b)
				}
			}
			if got < tt.min || got > tt.max {
				t.Errorf("server received %d, want %d..%d (-1: none)", got, tt.min, tt.max)
			}
			if v := req.Header.Get("Connect-Timeout-Ms"); v != tt.preset {
				t.Errorf("the caller's request was modified: header %q, want %q", v, tt.preset)
			}
		})
	}
}

// trackedBody records whether it was closed.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

// expiredCtx has a deadline in the past but is not (yet) done, as a
// context is between its deadline and its timer firing.
type expiredCtx struct{ context.Context }

func (expiredCtx) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

func TestTransportDoneContextSendsNothing(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	past, cancelPast := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelPast()
	tests := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"canceled", canceled, context.Canceled},
		{"deadline exceeded", past, context.DeadlineExceeded},
		{"deadline passed, timer not yet fired", expiredCtx{context.Background()}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts, hits := echoServer(t)
			body := &trackedBody{Reader: strings.NewReader("payload")}
			req, _ := http.NewRequestWithContext(tt.ctx, "POST", ts.URL, body)
			// Through an http.Client, which wraps the error in *url.Error.
			client := &http.Client{Transport: &cancelhttp.Transport{Base: ts.Client().Transport}}
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Do = %v, want errors.Is %v", err, tt.want)
			}
			// Directly: the error is exactly the context's.
			req2, _ := http.NewRequestWithContext(tt.ctx, "GET", ts.URL, nil)
			if _, err := (&cancelhttp.Transport{}).RoundTrip(req2); err != tt.want {
				t.Errorf("RoundTrip = %v, want exactly %v", err, tt.want)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("the server received %d requests, want none", n)
			}
			if !body.closed.Load() {
				t.Error("the request body was not closed")
			}
		})
	}
}

func TestTransportPropagatesDeadline(t *testing.T) {
	t.Parallel()
	// client --Grpc-Timeout: 300m--> front --Transport--> back. The back
	// answers at once with what it saw; the front then waits for its own
	// deadline.
	type backSeen struct {
		header   string
		deadline time.Time
		ok       bool
	}
	backc := make(chan backSeen, 1)
	back := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dl, ok := r.Context().Deadline()
		backc <- backSeen{header: r.Header.Get("Connect-Timeout-Ms"), deadline: dl, ok: ok}
	}), serverConfig{})

	frontDeadline := make(chan time.Time, 1)
	backTransport := &http.Transport{}
	t.Cleanup(backTransport.CloseIdleConnections)
	outbound := &http.Client{Transport: &cancelhttp.Transport{Base: backTransport}}
	front := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		dl, _ := ctx.Deadline()
		frontDeadline <- dl
		req, _ := http.NewRequestWithContext(ctx, "GET", back.URL+"/work", nil)
		resp, err := outbound.Do(req)
		if err != nil {
			t.Errorf("front -> back: %v", err)
			return
		}
		resp.Body.Close()
		<-ctx.Done()
		w.WriteHeader(http.StatusGatewayTimeout)
		fmt.Fprintf(w, "%v; cause: %v", ctx.Err(), context.Cause(ctx))
	}), serverConfig{})

	req, _ := http.NewRequest("GET", front.URL+"/", nil)
	req.Header.Set("Grpc-Timeout", "300m")
	resp, err := h1Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	fdl := testlog.Recv(t, "front deadline", frontDeadline)
	b := testlog.Recv(t, "back result", backc)
	if ms, err := strconv.Atoi(b.header); err != nil || ms < 1 || ms > 300 {
		t.Errorf("back received Connect-Timeout-Ms %q, want 1..300", b.header)
	}
	// The back's deadline is the front's, give or take the time in transit
	// and the rounding to milliseconds.
	if d := b.deadline.Sub(fdl).Abs(); !b.ok || d > 20*time.Millisecond {
		t.Errorf("back deadline %v (%v), front deadline %v: %v apart", b.deadline, b.ok, fdl, d)
	}
	want := `context deadline exceeded; cause: deadline exceeded: Grpc-Timeout "300m" (300ms)`
	if resp.StatusCode != http.StatusGatewayTimeout || string(body) != want {
		t.Errorf("front answered %d %q, want 504 %q", resp.StatusCode, body, want)
	}
}

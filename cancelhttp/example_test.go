package cancelhttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelhttp"
)

func ExampleParseGrpcTimeout() {
	for _, v := range []string{"250m", "5S", "1H", "5s"} {
		d, err := cancelhttp.ParseGrpcTimeout(v)
		fmt.Println(d, err)
	}
	// Output:
	// 250ms <nil>
	// 5s <nil>
	// 1h0m0s <nil>
	// 0s malformed Grpc-Timeout header "5s": want 1 to 8 digits followed by a unit H, M, S, m, u or n (for example 500m or 10S)
}

func ExampleParseConnectTimeout() {
	d, err := cancelhttp.ParseConnectTimeout("1500")
	fmt.Println(d, err)
	_, err = cancelhttp.ParseConnectTimeout("1.5")
	var he *cancelhttp.HeaderError
	fmt.Println(errors.As(err, &he), he.Header)
	// Output:
	// 1.5s <nil>
	// true Connect-Timeout-Ms
}

// The handler stops as soon as the client's deadline passes, and the cause
// says which header set it.
func ExampleHandler() {
	h := cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context() // the request's cancellation.Token
		if err := cancellation.Sleep(ctx, time.Hour); err != nil {
			fmt.Println(err)
			fmt.Println(context.Cause(ctx))
			var de *cancelhttp.DeadlineError
			fmt.Println(errors.As(context.Cause(ctx), &de), de.Header)
			return
		}
		io.WriteString(w, "done")
	}), cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))

	req := httptest.NewRequest("GET", "/work", nil)
	req.Header.Set("Grpc-Timeout", "10m")
	h.ServeHTTP(httptest.NewRecorder(), req)
	// Output:
	// context deadline exceeded
	// deadline exceeded: Grpc-Timeout "10m" (10ms)
	// true Grpc-Timeout
}

// A client whose requests carry the remaining time of their context, and
// which sends nothing once the context is done.
func ExampleTransport() {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("server: timeout header sent:", r.Header.Get("Connect-Timeout-Ms") != "")
	}))
	defer ts.Close()
	client := &http.Client{Transport: &cancelhttp.Transport{Base: ts.Client().Transport}}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL, nil)
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
	}

	cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", ts.URL, nil)
	_, err := client.Do(req)
	fmt.Println("client:", errors.Is(err, context.Canceled))
	// Output:
	// server: timeout header sent: true
	// client: true
}

// Serve runs a server until its context is done, then shuts it down
// gracefully.
func ExampleServe() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: cancelhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}), cancelhttp.WithLogger(slog.New(slog.DiscardHandler)))}

	ctx, stop := context.WithCancel(context.Background()) // signal.NotifyContext in a program
	done := make(chan error, 1)
	go func() {
		done <- cancelhttp.Serve(ctx, srv, ln,
			cancelhttp.WithGracePeriod(5*time.Second),
			cancelhttp.WithServeLogger(slog.New(slog.DiscardHandler)))
	}()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String())
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	stop()
	fmt.Println("Serve:", <-done)
	// Output:
	// hello
	// Serve: <nil>
}

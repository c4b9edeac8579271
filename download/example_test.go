package download_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/download"
	"github.com/go-cancellation/cancellation/download/downloadtest"
)

func ExampleClient_Get() {
	// A server with a 1 MiB file (any HTTP server will do).
	h := downloadtest.New(downloadtest.Pattern{}, 1<<20, `"v1"`)
	srv := httptest.NewServer(h)
	defer srv.Close()

	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	c := &download.Client{HTTPClient: srv.Client(), IdleTimeout: 10 * time.Second}
	res, err := c.Get(context.Background(), srv.URL+"/file.bin", filepath.Join(dir, "file.bin"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(filepath.Base(res.Path), res.Size, "bytes")
	// Output: file.bin 1048576 bytes
}

// A download canceled with a cause keeps its .part; the same call later
// resumes it with Range and If-Range.
func ExampleClient_Do_resume() {
	data := downloadtest.Pattern{}.Bytes(1 << 20)
	h := downloadtest.New(bytes.NewReader(data), int64(len(data)), `"v1"`)
	h.Plan(downloadtest.Step{Stall: true, After: 300_000}) // the first response stops after 300000 bytes
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()

	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "file.bin")

	c := &download.Client{HTTPClient: srv.Client()}
	interrupted := errors.New("interrupted")
	src := cancellation.New(context.Background())
	_, err := c.Do(src.Token(), &download.Request{URL: srv.URL + "/file.bin", Path: path,
		Progress: func(e download.Event) {
			if e.Written == 300_000 {
				src.CancelCause(interrupted) // the user gave up
			}
		}})
	var de *download.Error
	if errors.As(err, &de) && errors.Is(err, context.Canceled) {
		fmt.Println("canceled:", de.Err, "- kept", de.Kept, "bytes")
	}

	res, err := c.Get(context.Background(), srv.URL+"/file.bin", path)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("resumed from", res.Resumed, "of", res.Size)
	fmt.Println("last request:", h.Requests()[1].Range, "If-Range:", h.Requests()[1].IfRange)
	// Output:
	// canceled: interrupted - kept 300000 bytes
	// resumed from 300000 of 1048576
	// last request: bytes=300000- If-Range: "v1"
}

func ExampleHTTPError() {
	h := downloadtest.New(downloadtest.Pattern{}, 10, `"v1"`)
	h.Plan(downloadtest.Step{Status: 404})
	srv := httptest.NewServer(h)
	defer srv.Close()

	c := &download.Client{HTTPClient: srv.Client()}
	_, err := c.Get(context.Background(), srv.URL+"/missing", filepath.Join(os.TempDir(), "missing"))
	var he *download.HTTPError
	if errors.As(err, &he) {
		fmt.Println(he.StatusCode, he)
	}
	// Output: 404 HTTP 404 Not Found
}

// A file fetched over four connections at once (Client.Split), each
// writing its own ranges of the one .part.
func ExampleClient_Do_split() {
	h := downloadtest.New(downloadtest.Pattern{}, 4<<20, `"v1"`)
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	c := &download.Client{HTTPClient: srv.Client(), Split: 4}
	var conns int
	res, err := c.Do(context.Background(), &download.Request{
		URL: srv.URL + "/big.bin", Dir: dir,
		Progress: func(e download.Event) {
			if e.Kind == download.Started {
				conns = e.Segments
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(filepath.Base(res.Path), res.Size, "bytes over", conns, "connections")
	// Output: big.bin 4194304 bytes over 4 connections
}

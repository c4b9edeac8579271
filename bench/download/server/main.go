// Command server serves one generated file of any size over HTTP, with
// Range, If-Range and a strong ETag, for bench/download.sh. The content is
// computed, not stored: a 1 GiB file costs no memory.
//
//	server -size 1073741824 [-rate BYTES_PER_SECOND] [-addr 127.0.0.1:0]
//
// It prints its base URL on stdout once it is listening, then serves until
// stdin is closed or it gets SIGINT/SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-cancellation/cancellation/download/downloadtest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	size := flag.Int64("size", 1<<30, "file size in bytes")
	rate := flag.Int64("rate", 0, "bytes per second per response (0: unlimited)")
	flag.Parse()

	h := downloadtest.New(downloadtest.Pattern{Seed: 7}, *size, `"bench-v1"`)
	h.SetRate(*rate)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	fmt.Printf("http://%s\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		io.Copy(io.Discard, os.Stdin) // the script closes stdin to stop us
		stop()
	}()
	go func() {
		<-ctx.Done()
		h.Close()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

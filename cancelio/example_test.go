package cancelio_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelio"
)

// Copy from a pipe until the context is canceled: the blocked Read returns
// at once with ctx.Err(), not at the next byte.
func ExampleCopy() {
	r, w, _ := os.Pipe() // its writer stays open: a Read of r blocks
	defer r.Close()
	defer w.Close()
	out, in := io.Pipe() // where Copy writes; read below
	src := cancellation.New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := cancelio.Copy(src.Token(), in, r)
		fmt.Printf("copied %d bytes: %v (cause: %v)\n", n, err, context.Cause(src.Token()))
	}()
	w.WriteString("hello\n")
	line, _ := bufio.NewReader(out).ReadString('\n')
	fmt.Print("read: ", line)
	src.CancelCause(errors.New("user pressed stop")) // Copy waits in r.Read (or is about to)
	<-done
	// Output:
	// read: hello
	// copied 6 bytes: context canceled (cause: user pressed stop)
}

// A connection bound to a token: the Read waiting for a peer that sends
// nothing returns when the token's timer fires, with exactly ctx.Err() and
// the reason in the cause.
func ExampleConn() {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	src := cancellation.New()
	src.CancelAfterCause(10*time.Millisecond, errors.New("no request within 10ms"))

	conn := cancelio.Conn(src.Token(), server)
	_, err := conn.Read(make([]byte, 1)) // the client sends nothing
	fmt.Println(err, "/", context.Cause(src.Token()))
	// Output: context deadline exceeded / no request within 10ms
}

// Echo standard input until Ctrl-C, which ends the blocked Read at once.
// os.Stdin is usually in blocking mode, where Go offers no deadlines:
// opening /dev/stdin gives a fresh descriptor of the same terminal or pipe
// that supports them (elsewhere, fall back to os.Stdin, which is then only
// checked between reads).
func ExampleReader_stdin() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	in := os.Stdin
	if f, err := os.Open("/dev/stdin"); err == nil {
		defer f.Close()
		in = f
	}
	n, err := cancelio.Copy(ctx, os.Stdout, in)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "interrupted after %d bytes\n", n)
	}
}

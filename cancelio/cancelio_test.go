package cancelio_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelio"
	"github.com/go-cancellation/cancellation/internal/doccheck"
	"github.com/go-cancellation/cancellation/internal/testlog"
)

func TestDocumented(t *testing.T) {
	t.Parallel()
	doccheck.Check(t, ".")
}

// pipe returns an os.Pipe closed at the end of the test.
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// entering wraps a stream and signals on reading/writing just before each
// call goes into the stream: a cancellation after that signal must
// interrupt a call that is blocked (or about to block) in the stream.
type entering struct {
	*os.File
	reading, writing chan struct{}
}

func (e entering) Read(p []byte) (int, error) {
	e.reading <- struct{}{}
	return e.File.Read(p)
}

func (e entering) Write(p []byte) (int, error) {
	select {
	case e.writing <- struct{}{}:
	default:
	}
	return e.File.Write(p)
}

func enter(f *os.File) entering {
	return entering{File: f, reading: make(chan struct{}, 1), writing: make(chan struct{}, 1)}
}

// cancelers are the ways a context can end: a Token (Register path) and a
// stdlib context (context.AfterFunc path), with a cause.
var cancelers = []struct {
	name string
	make func() (context.Context, func(error))
}{
	{"token", func() (context.Context, func(error)) {
		s := cancellation.New()
		return s.Token(), func(c error) { s.CancelCause(c) }
	}},
	{"context", func() (context.Context, func(error)) {
		ctx, cancel := context.WithCancelCause(context.Background())
		return ctx, cancel
	}},
}

func TestReaderBlockedReadEndsWithCtxErr(t *testing.T) {
	t.Parallel()
	for _, tc := range cancelers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, w := pipe(t)
			ctx, cancel := tc.make()
			e := enter(r)
			cr := cancelio.Reader(ctx, e)
			type result struct {
				n   int
				err error
			}
			res := make(chan result, 1)
			go func() {
				n, err := cr.Read(make([]byte, 10))
				res <- result{n, err}
			}()
			<-e.reading
			reason := errors.New("user pressed stop")
			cancel(reason)
			got := testlog.Recv(t, "the blocked Read to return", res)
			if got.n != 0 || got.err != context.Canceled {
				t.Fatalf("Read = %d, %#v; want 0, exactly context.Canceled", got.n, got.err)
			}
			if c := context.Cause(ctx); c != reason {
				t.Errorf("cause = %v", c)
			}
			// Later reads return the same error without touching the pipe.
			w.WriteString("x")
			if n, err := cr.Read(make([]byte, 10)); n != 0 || err != context.Canceled {
				t.Errorf("later Read = %d, %v", n, err)
			}
			// The pipe's deadline was restored: it is usable directly.
			b := make([]byte, 10)
			if n, err := r.Read(b); err != nil || string(b[:n]) != "x" {
				t.Errorf("pipe after the interruption: Read = %q, %v", b[:n], err)
			}
		})
	}
}

func TestReaderDeadlineExceeded(t *testing.T) {
	t.Parallel()
	r, _ := pipe(t)
	src := cancellation.New()
	src.CancelAfter(5 * time.Millisecond)
	if _, err := cancelio.Reader(src.Token(), r).Read(make([]byte, 1)); err != context.DeadlineExceeded {
		t.Fatalf("Read = %#v, want exactly context.DeadlineExceeded", err)
	}
}

func TestReaderPassesDataThrough(t *testing.T) {
	t.Parallel()
	r, w := pipe(t)
	src := cancellation.New()
	defer src.Cancel()
	go func() {
		w.WriteString("hello, world")
		w.Close()
	}()
	got, err := io.ReadAll(cancelio.Reader(src.Token(), r))
	if err != nil || string(got) != "hello, world" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
}

// countingReader counts its calls; it has no deadlines.
type countingReader struct {
	calls int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.calls++
	return copy(p, "data"), nil
}

func TestUninterruptibleReaderCheckedBetweenReads(t *testing.T) {
	t.Parallel()
	src := cancellation.New()
	cr := &countingReader{}
	r := cancelio.Reader(src.Token(), cr)
	if n, err := r.Read(make([]byte, 4)); n != 4 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	src.Cancel()
	if _, err := r.Read(make([]byte, 4)); err != context.Canceled {
		t.Fatalf("Read after cancel = %v", err)
	}
	if cr.calls != 1 {
		t.Errorf("the reader was called %d times, want 1 (not after the cancel)", cr.calls)
	}
	// Copy checks between reads too.
	n, err := cancelio.Copy(src.Token(), io.Discard, cr)
	if n != 0 || err != context.Canceled || cr.calls != 1 {
		t.Errorf("Copy on a canceled ctx = %d, %v, calls %d", n, err, cr.calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var calls int
	stopAfter3 := readerFunc(func(p []byte) (int, error) {
		if calls++; calls == 3 {
			cancel()
		}
		return copy(p, "abc"), nil
	})
	if n, err := cancelio.Copy(ctx, io.Discard, stopAfter3); err != context.Canceled || n != 6 {
		t.Errorf("Copy = %d, %v; want 6 bytes (the third read is not written) and context.Canceled", n, err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestCopyBlockedReadAndWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range cancelers {
		t.Run(tc.name+"/read", func(t *testing.T) {
			t.Parallel()
			r, w := pipe(t)
			ctx, cancel := tc.make()
			e := enter(r)
			var out bytes.Buffer
			w.WriteString("abc")
			res := make(chan error, 1)
			var n int64
			go func() {
				var err error
				n, err = cancelio.Copy(ctx, &out, e)
				res <- err
			}()
			<-e.reading // first read: data
			<-e.reading // second read: blocks
			cancel(nil)
			if err := testlog.Recv(t, "Copy to return", res); err != context.Canceled || n != 3 || out.String() != "abc" {
				t.Fatalf("Copy = %d, %v, copied %q", n, err, out.String())
			}
		})
		t.Run(tc.name+"/write", func(t *testing.T) {
			t.Parallel()
			_, w := pipe(t) // nobody reads
			fill(t, w)
			ctx, cancel := tc.make()
			e := enter(w)
			res := make(chan error, 1)
			go func() {
				_, err := cancelio.Copy(ctx, e, zeros{})
				res <- err
			}()
			<-e.writing // the pipe is full: this Write blocks
			cancel(nil)
			if err := testlog.Recv(t, "Copy to return", res); err != context.Canceled {
				t.Fatalf("Copy = %#v, want exactly context.Canceled", err)
			}
		})
	}
}

// fill writes to the pipe w until it is full.
func fill(t *testing.T, w *os.File) {
	t.Helper()
	b := make([]byte, 4096)
	w.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	for {
		if _, err := w.Write(b); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
	}
	w.SetWriteDeadline(time.Time{})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestCopyEOF(t *testing.T) {
	t.Parallel()
	r, w := pipe(t)
	go func() { w.WriteString("to the end"); w.Close() }()
	var out bytes.Buffer
	n, err := cancelio.Copy(context.Background(), &out, r)
	if err != nil || n != 10 || out.String() != "to the end" {
		t.Fatalf("Copy = %d, %v, %q", n, err, out.String())
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = testlog.Recv(t, "Accept", accepted)
	if server == nil {
		t.Fatal("Accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestConnReadAndWriteEndWithCtxErr(t *testing.T) {
	t.Parallel()
	for _, tc := range cancelers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, server := tcpPair(t)
			ctx, cancel := tc.make()
			c := cancelio.Conn(ctx, client)
			// A deadline set through the wrapper survives the interruption.
			if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			readErr, writeErr := make(chan error, 1), make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 1))
				readErr <- err
			}()
			go func() {
				buf := make([]byte, 1<<20)
				for {
					if _, err := c.Write(buf); err != nil {
						writeErr <- err
						return
					}
				}
			}()
			// Nothing proves the calls are blocked yet; whether they are or
			// are about to be, both must end with ctx.Err().
			runtime.Gosched()
			cancel(errors.New("done"))
			if err := testlog.Recv(t, "Read to return", readErr); err != context.Canceled {
				t.Errorf("Read = %#v, want exactly context.Canceled", err)
			}
			if err := testlog.Recv(t, "Write to return", writeErr); err != context.Canceled {
				t.Errorf("Write = %#v, want exactly context.Canceled", err)
			}
			if _, err := c.Read(nil); err != context.Canceled {
				t.Errorf("later Read = %v", err)
			}
			// The underlying connection is usable again (deadline restored).
			if _, err := server.Write([]byte("y")); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 1)
			if _, err := client.Read(b); err != nil || b[0] != 'y' {
				t.Errorf("conn after the interruption: %q, %v", b, err)
			}
		})
	}
}

// A Conn read that is surely blocked (the peer sent nothing and the reader
// announced the call) ends with ctx.Err() well before the test's deadline.
func TestConnBlockedRead(t *testing.T) {
	t.Parallel()
	client, _ := tcpPair(t)
	src := cancellation.New()
	c := cancelio.Conn(src.Token(), client)
	res := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		res <- err
	}()
	// Wait until the reader is parked in the network poller.
	waitIOWait(t)
	start := time.Now()
	src.Cancel()
	err := testlog.Recv(t, "Read to return", res)
	if err != context.Canceled {
		t.Fatalf("Read = %#v", err)
	}
	t.Logf("cancel to return: %v", time.Since(start))
}

// waitIOWait waits until some goroutine of the test binary is blocked in
// the network poller ("IO wait").
func waitIOWait(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(testlog.TimeLeft(t))
	buf := make([]byte, 1<<20)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		if bytes.Contains(buf[:n], []byte("[IO wait")) {
			return
		}
		runtime.Gosched()
	}
	t.Fatal("no goroutine blocked in I/O")
}

// No goroutine per call: blocked reads through cancelio add none.
func TestNoGoroutinePerCall(t *testing.T) {
	r, _ := pipe(t)
	src := cancellation.New()
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	const readers = 8
	entered := make(chan struct{}, readers)
	cr := cancelio.Reader(src.Token(), readerSignal{r, entered})
	for range readers {
		wg.Go(func() { cr.Read(make([]byte, 1)) })
	}
	for range readers {
		<-entered
	}
	if n := runtime.NumGoroutine() - before; n != readers {
		t.Errorf("%d goroutines while %d reads block, want %d", n, readers, readers)
	}
	src.Cancel()
	wg.Wait()
}

type readerSignal struct {
	*os.File
	entered chan struct{}
}

func (r readerSignal) Read(p []byte) (int, error) {
	r.entered <- struct{}{}
	return r.File.Read(p)
}

// Race: cancel while data flows; every Read returns data or exactly
// ctx.Err(), and afterwards the pipe has no stale past deadline.
func TestRaceCancelWhileReading(t *testing.T) {
	t.Parallel()
	r, w := pipe(t)
	stopWriter := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		b := make([]byte, 512)
		for {
			select {
			case <-stopWriter:
				return
			default:
			}
			w.Write(b)
		}
	})
	for range 300 {
		src := cancellation.New()
		cr := cancelio.Reader(src.Token(), r)
		done := make(chan struct{})
		go func() {
			defer close(done)
			b := make([]byte, 100)
			for {
				if _, err := cr.Read(b); err != nil {
					if err != context.Canceled {
						t.Errorf("Read = %v", err)
					}
					return
				}
			}
		}()
		runtime.Gosched()
		src.Cancel()
		<-done
	}
	// No past deadline left behind: a direct read gets data.
	if _, err := r.Read(make([]byte, 1)); err != nil {
		t.Errorf("pipe after the races: %v", err)
	}
	close(stopWriter)
	w.SetWriteDeadline(time.Unix(1, 0)) // unblock a writer waiting on a full pipe
	wg.Wait()
}

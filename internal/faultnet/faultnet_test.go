package faultnet_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/internal/faultnet"
	"github.com/go-cancellation/cancellation/internal/testlog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo starts a line echo server on TCP, closed when the test ends.
func echo(t *testing.T) string {
	t.Helper()
	return echoOn(t, "tcp", "127.0.0.1:0")
}

// echoOn starts a line echo server listening on network and address,
// closed when the test ends, and returns its address.
func echoOn(t *testing.T, network, address string) string {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 16)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go io.Copy(c, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader, line string, wait time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := r.ReadString('\n')
	return strings.TrimSpace(got), err
}

func dial(t *testing.T, p *faultnet.Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func TestProxyModes(t *testing.T) {
	p, err := faultnet.Listen(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	long := testlog.TimeLeft(t)
	c, r := dial(t, p)
	if got, err := roundTrip(c, r, "one", long); err != nil || got != "one" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}

	// Blackhole: the connection stays open, nothing comes back.
	p.Set(faultnet.Blackhole)
	if _, err := roundTrip(c, r, "lost", 100*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blackholed round trip: %v, want a timeout", err)
	}
	// Back to Pass: the blackholed connection is closed (it lost bytes);
	// a new one works.
	p.Set(faultnet.Pass)
	if _, err := roundTrip(c, r, "after", long); err == nil {
		t.Fatal("a blackholed connection survived the restore")
	}
	c, r = dial(t, p)
	if got, err := roundTrip(c, r, "two", long); err != nil || got != "two" {
		t.Fatalf("after the restore: %q, %v", got, err)
	}

	cutAndRestore(t, p, c, r)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestProxyUnixTarget: a proxy in front of a Unix socket forwards, cuts
// (live connections closed, new ones closed at once) and restores.
func TestProxyUnixTarget(t *testing.T) {
	dir, err := os.MkdirTemp("", "faultnet") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p, err := faultnet.ListenNetwork("unix", echoOn(t, "unix", dir+"/echo.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, r := dial(t, p)
	if got, err := roundTrip(c, r, "one", testlog.TimeLeft(t)); err != nil || got != "one" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}
	cutAndRestore(t, p, c, r)
}

// cutAndRestore checks Cut and the way back to Pass on p, given c, a live
// connection through it: c is closed, a new connection is closed at once,
// and after Pass a new one works.
func cutAndRestore(t *testing.T, p *faultnet.Proxy, c net.Conn, r *bufio.Reader) {
	t.Helper()
	long := testlog.TimeLeft(t)
	p.Set(faultnet.Cut)
	if _, err := roundTrip(c, r, "cut", long); err == nil {
		t.Fatal("a connection survived the cut")
	}
	c2, r2 := dial(t, p)
	if _, err := roundTrip(c2, r2, "refused", long); err == nil {
		t.Fatal("a new connection worked while cut")
	}
	p.Set(faultnet.Pass)
	c, r = dial(t, p)
	if got, err := roundTrip(c, r, "three", long); err != nil || got != "three" {
		t.Fatalf("after the cut: %q, %v", got, err)
	}
}

func rec(at, task, node string, attempt int, msg string) testlog.Record {
	return testlog.Record{"time": "2026-01-01T00:00:" + at + "Z", "task": task, "node": node, "attempt": float64(attempt), "msg": msg}
}

func TestOverlaps(t *testing.T) {
	sequential := []testlog.Record{
		rec("01.000", "t1", "a", 1, "task started"),
		rec("02.000", "t1", "a", 1, "Iteration 1 of 9 completed."),
		rec("03.000", "t1", "b", 2, "task started"),
		rec("04.000", "t1", "b", 2, "Iteration 1 of 9 completed."),
		rec("05.000", "t1", "a", 1, "task stopped"), // not a step: a late stop line is fine
		rec("03.500", "t2", "a", 1, "Iteration 1 of 9 completed."),
		rec("03.600", "", "a", 1, "Iteration 1 of 9 completed."),
	}
	runs := faultnet.Runs(sequential)
	if len(runs["t1"]) != 2 || runs["t1"][0].Node != "a" || runs["t1"][1].Steps != 1 {
		t.Fatalf("runs %v", runs)
	}
	if o := faultnet.Overlaps(runs); len(o) != 0 {
		t.Fatalf("sequential runs reported as overlapping: %v", o)
	}
	late := append(sequential, rec("03.100", "t1", "a", 1, "Iteration 2 of 9 completed."))
	if o := faultnet.Overlaps(faultnet.Runs(late)); len(o) != 1 || !strings.Contains(o[0], "t1 attempt 1 on a") {
		t.Fatalf("a step of node a after node b started: %v", o)
	}
}

// Package testlog is test support shared by the tests of package cancelhttp,
// the task packages and command taskd: a [Sink] that collects the JSON
// records a slog.JSONHandler writes and lets a test wait for one, and
// helpers that wait no longer than the test may ([TimeLeft], [Recv],
// [DeadlineContext]) or play clients ([Do] sends and reads the whole
// answer, [RawGet] goes away by closing its
// connection, [DoAsync] sends in the background, [ReadResponse] reads the
// answer to a raw request).
//
// Everything here is safe for concurrent use. The functions that take a
// *testing.T fail the test with t.Fatalf or t.Fatal, so call them from the
// goroutine running the test, as the testing package requires.
package testlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Record is one log record: a JSON line decoded into a map (numbers are
// float64), or, for a line that is not JSON, {"msg": the line without
// surrounding space, "text": true}.
//
// A Record is never changed after the [Sink] stored it; reading it from
// several goroutines is safe.
type Record map[string]any

// Str returns the string value of key, or "" when key is missing or not a
// string.
func (r Record) Str(key string) string {
	v, _ := r[key].(string)
	return v
}

// Num returns the numeric value of key, or 0 when key is missing or not a
// number. slog.JSONHandler writes a time.Duration as its nanoseconds.
func (r Record) Num(key string) float64 {
	v, _ := r[key].(float64)
	return v
}

// Sink is an io.Writer that collects log records, one per line: give it to
// slog.NewJSONHandler (or use [Sink.Logger]), or as a process's standard
// error. A line is decoded when its newline arrives; a line split over
// several writes is kept until then. The zero Sink is not usable: make one
// with [NewSink].
//
// A Sink is safe for concurrent use: any number of goroutines may write to
// it while tests read it and wait on it.
type Sink struct {
	mu      sync.Mutex
	records []Record
	changed chan struct{} // closed and replaced on every write
	partial bytes.Buffer
}

// NewSink returns an empty Sink.
func NewSink() *Sink { return &Sink{changed: make(chan struct{})} }

// Write stores the complete lines of p as records and keeps an incomplete
// last line for the next write. It never fails and does not block beyond
// the Sink's short internal lock. It is safe for concurrent use.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial.Write(p)
	for {
		line, err := s.partial.ReadBytes('\n')
		if err != nil {
			// Keep the incomplete line for the next write.
			rest := append([]byte(nil), line...)
			s.partial.Reset()
			s.partial.Write(rest)
			break
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			r = Record{"msg": strings.TrimSpace(string(line)), "text": true}
		}
		s.records = append(s.records, r)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

// Logger returns a logger that writes JSON records of every level, Debug
// included, to s. It is safe for concurrent use, like every slog.Logger.
func (s *Sink) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// All returns a copy of the records so far, in the order they were
// written. It does not block beyond the Sink's lock.
func (s *Sink) All() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// Count returns how many of the records so far match. It does not wait.
func (s *Sink) Count(match func(Record) bool) int {
	n := 0
	for _, r := range s.All() {
		if match(r) {
			n++
		}
	}
	return n
}

// Wait returns the first record that matches, in the order they were
// written. It blocks until one is written or [TimeLeft] has passed; then it
// fails the test (t.Fatalf) with what (a description of the record) and
// every record so far. Call it from the test's goroutine; match is called
// with the Sink's lock held, so it must not use the Sink.
func (s *Sink) Wait(t *testing.T, what string, match func(Record) bool) Record {
	t.Helper()
	return s.WaitN(t, what, 1, match)[0]
}

// WaitN returns the first n (n >= 1) records that match, or more if more
// match by then. It blocks until that many are written or [TimeLeft] has
// passed, and fails the test like [Sink.Wait].
func (s *Sink) WaitN(t *testing.T, what string, n int, match func(Record) bool) []Record {
	t.Helper()
	timeout := time.NewTimer(TimeLeft(t))
	defer timeout.Stop()
	for {
		s.mu.Lock()
		var found []Record
		for _, r := range s.records {
			if match(r) {
				found = append(found, r)
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if len(found) >= max(n, 1) {
			return found
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %d log record(s): %s (have %d); log:\n%s", n, what, len(found), s.Dump())
		}
	}
}

// Dump returns the records so far, one a line, for a failure message.
func (s *Sink) Dump() string {
	var b strings.Builder
	for _, r := range s.All() {
		fmt.Fprintln(&b, r)
	}
	return b.String()
}

// TimeLeft is how long a test may still wait for something that must
// happen: until 5s before the test binary's deadline (-timeout), at most
// 30s and at least 1s. It does not block.
func TimeLeft(t *testing.T) time.Duration {
	t.Helper()
	left := 30 * time.Second
	if dl, ok := t.Deadline(); ok {
		if d := time.Until(dl) - 5*time.Second; d < left {
			left = max(d, time.Second)
		}
	}
	return left
}

// DeadlineContext returns t.Context(), canceled also 2s before the test
// binary's deadline (-timeout) when it has one, so that a request or wait
// bounded by it fails the test with its own message first. It does not
// block.
func DeadlineContext(t *testing.T) context.Context {
	ctx := t.Context()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-2*time.Second))
		t.Cleanup(cancel)
	}
	return ctx
}

// Recv receives a value from c. It blocks until one arrives or [TimeLeft]
// has passed; then it fails the test (t.Fatalf) naming what. Call it from
// the test's goroutine.
func Recv[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	timeout := time.NewTimer(TimeLeft(t))
	defer timeout.Stop()
	select {
	case v := <-c:
		return v
	case <-timeout.C:
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// RawGet opens a TCP connection to addr and sends an HTTP/1.1 GET for path
// with X-Request-Id: id, without reading the answer, and returns the
// connection: closing it is a client going away mid-request. The connection
// is also closed at the end of the test. It fails the test (t.Fatal) when
// it cannot connect or send; call it from the test's goroutine.
func RawGet(t *testing.T, addr, path, id string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\nX-Request-Id: %s\r\n\r\n", path, id); err != nil {
		t.Fatal(err)
	}
	return c
}

// Do sends req with client and reads the whole response body, and returns
// the response (its body closed) and the body. It fails the test (t.Fatal)
// when the request or the read fails; call it from the test's goroutine.
// It blocks until the body is read.
func Do(t *testing.T, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// DoAsync sends req with client on a new goroutine, reads nothing and
// closes the response body, and returns a channel that receives the error
// of client.Do (nil when a response arrived). The channel has room for the
// error, so the goroutine ends even if nobody receives it. Cancel req's
// context to abandon the request (over HTTP/2 that resets the stream).
// DoAsync does not block and is safe for concurrent use.
func DoAsync(client *http.Client, req *http.Request) <-chan error {
	errc := make(chan error, 1)
	go func() {
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	return errc
}

// ReadResponse reads one HTTP/1.1 response from c, waiting no longer than
// [TimeLeft], and returns it with its body read and closed. It fails the
// test (t.Fatal) when no response can be read; call it from the test's
// goroutine. It is for tests that write raw requests on c and wait for
// each answer before the next request (it reads with a buffer of its own).
func ReadResponse(t *testing.T, c net.Conn) *http.Response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(TimeLeft(t)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

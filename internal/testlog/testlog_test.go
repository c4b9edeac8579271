package testlog_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/internal/doccheck"
	"github.com/go-cancellation/cancellation/internal/testlog"
)

func TestDocumented(t *testing.T) {
	t.Parallel()
	doccheck.Check(t, ".")
}

func TestSinkLines(t *testing.T) {
	t.Parallel()
	s := testlog.NewSink()
	// A JSON line split over writes, two lines in one write, a text line.
	for _, p := range []string{`{"msg":"one","n":`, "1.5}\n", `{"msg":"two"}` + "\n" + `{"msg":"three"}` + "\n", "  plain text \n", `{"msg":"unfinished"`} {
		if n, err := s.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	all := s.All()
	if len(all) != 4 {
		t.Fatalf("%d records, want 4 (the unfinished line is kept back): %v", len(all), all)
	}
	if all[0].Str("msg") != "one" || all[0].Num("n") != 1.5 || all[1].Str("msg") != "two" || all[2].Str("msg") != "three" {
		t.Errorf("records = %v", all)
	}
	if all[3].Str("msg") != "plain text" || all[3]["text"] != true {
		t.Errorf("text line = %v, want msg \"plain text\" and text=true", all[3])
	}
	if all[0].Str("n") != "" || all[0].Num("msg") != 0 || all[0].Str("missing") != "" {
		t.Error("Str/Num of a value of another type or a missing key is not the zero value")
	}
	if n := s.Count(func(r testlog.Record) bool { return r["text"] == nil }); n != 3 {
		t.Errorf("Count = %d, want 3", n)
	}
	if d := s.Dump(); strings.Count(d, "\n") != 4 || !strings.Contains(d, "three") {
		t.Errorf("Dump = %q", d)
	}
	s.Write([]byte("}\n"))
	if r := s.All(); len(r) != 5 || r[4].Str("msg") != "unfinished" {
		t.Errorf("after the rest of the line: %v", r)
	}
}

func TestSinkLogger(t *testing.T) {
	t.Parallel()
	s := testlog.NewSink()
	s.Logger().Debug("hello", "request_id", "a1", "took", 2*time.Millisecond)
	r := s.Wait(t, "hello", func(r testlog.Record) bool { return r.Str("msg") == "hello" })
	if r.Str("level") != "DEBUG" || r.Str("request_id") != "a1" || r.Num("took") != float64(2*time.Millisecond) {
		t.Errorf("record = %v", r)
	}
}

func TestSinkWaitConcurrent(t *testing.T) {
	t.Parallel()
	s := testlog.NewSink()
	log := s.Logger()
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				log.Info("step", "w", w, "i", i)
			}
		})
	}
	last := s.Wait(t, "last step of writer 3", func(r testlog.Record) bool { return r.Num("w") == 3 && r.Num("i") == each-1 })
	if last.Str("msg") != "step" {
		t.Errorf("Wait returned %v", last)
	}
	all := s.WaitN(t, "every step", writers*each, func(r testlog.Record) bool { return r.Str("msg") == "step" })
	wg.Wait()
	if len(all) != writers*each || s.Count(func(testlog.Record) bool { return true }) != writers*each {
		t.Errorf("WaitN returned %d records, Count %d; want %d", len(all), len(s.All()), writers*each)
	}
}

func TestRecv(t *testing.T) {
	t.Parallel()
	c := make(chan int)
	go func() { c <- 7 }()
	if v := testlog.Recv(t, "seven", c); v != 7 {
		t.Errorf("Recv = %d", v)
	}
}

func TestTimeLeft(t *testing.T) {
	t.Parallel()
	left := testlog.TimeLeft(t)
	if left < time.Second || left > 30*time.Second {
		t.Errorf("TimeLeft = %v, want within [1s, 30s]", left)
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) > 6*time.Second && left > time.Until(dl)-5*time.Second {
		t.Errorf("TimeLeft = %v, more than 5s before the deadline %v", left, dl)
	}
}

// TestWaitTimesOut runs this test binary again with a 6s timeout, so that
// TimeLeft is 1s, and a Wait that nothing satisfies: it must fail the test
// with the description and the records, not hang.
func TestWaitTimesOut(t *testing.T) {
	if os.Getenv("TESTLOG_WAIT_CHILD") == "1" {
		s := testlog.NewSink()
		s.Logger().Info("unrelated")
		s.Wait(t, "a record that never comes", func(r testlog.Record) bool { return r.Str("msg") == "never" })
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWaitTimesOut$", "-test.timeout=6s")
	cmd.Env = append(os.Environ(), "TESTLOG_WAIT_CHILD=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("the waiting test passed; output:\n%s", out)
	}
	for _, want := range []string{"timed out waiting for 1 log record(s): a record that never comes (have 0)", "unrelated"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "panic: test timed out") {
		t.Errorf("Wait ran into the binary's timeout instead of failing before it:\n%s", out)
	}
	if took < time.Second {
		t.Errorf("Wait gave up after %v, want at least TimeLeft's 1s", took)
	}
}

func TestRawGet(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type got struct {
		req *http.Request
		err error
	}
	c := make(chan got, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			c <- got{err: err}
			return
		}
		defer conn.Close()
		req, err := http.ReadRequest(bufio.NewReader(conn))
		c <- got{req, err}
	}()
	testlog.RawGet(t, ln.Addr().String(), "/p?x=1", "raw-1")
	g := testlog.Recv(t, "the request", c)
	if g.err != nil {
		t.Fatal(g.err)
	}
	if g.req.Method != "GET" || g.req.URL.String() != "/p?x=1" || g.req.Header.Get("X-Request-Id") != "raw-1" {
		t.Errorf("request = %s %s, X-Request-Id %q", g.req.Method, g.req.URL, g.req.Header.Get("X-Request-Id"))
	}
}

func ExampleSink() {
	logs := testlog.NewSink()
	logs.Logger().Info("request", "status", 200, "request_id", "r1")
	for _, r := range logs.All() {
		fmt.Println(r.Str("msg"), r.Num("status"), r.Str("request_id"))
	}
	// Output:
	// request 200 r1
}

package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-cancellation/cancellation/internal/testlog"
)

// unfinishedConns is how many connections with unfinished headers
// TestBinaryUnfinishedHeadersMemory opens per phase, and maxUnfinishedRSS
// the bound on the growth of taskd's resident memory they may cause: taskd
// measured 24 to 88 MiB depending on the phase (RSS also holds garbage not
// collected yet, hence the margin); with net/http's defaults the phases
// that send more than the limit took 437 MiB (HTTP/1.1) and 249 MiB (h2c).
const (
	unfinishedConns  = 1000
	maxUnfinishedRSS = 150 << 20
)

// TestBinaryUnfinishedHeadersMemory: a thousand connections that send
// headers and never finish them pin little memory in taskd, over HTTP/1.1
// and h2c: headers over the 32 KiB limit are refused at once (431, or
// GOAWAY for HTTP/2), and those under it stay small.
func TestBinaryUnfinishedHeadersMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 3,000 connections")
	}
	t.Parallel()
	// Each phase on a fresh taskd: a process does not give freed memory
	// back at once, so a phase would reuse the previous one's.
	phase := func(name string, payload []byte, wantClosed bool, wantAnswer string) {
		t.Helper()
		cmd, _, url := runBinary(t)
		addr := strings.TrimPrefix(url, "http://")
		_, port, _ := net.SplitHostPort(addr)
		base := rss(t, cmd.Process.Pid)
		conns := make([]net.Conn, unfinishedConns)
		for i := range conns {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns[i] = c
			c.SetWriteDeadline(time.Now().Add(testlog.TimeLeft(t)))
			c.Write(payload) // fails once taskd refused and closed: fine
		}
		waitDrained(t, port)
		grew := rss(t, cmd.Process.Pid) - base
		t.Logf("%s: %d connections, taskd RSS +%.1f MiB (%.1f KiB per connection)", name, unfinishedConns,
			float64(grew)/(1<<20), float64(grew)/1024/unfinishedConns)
		if grew > maxUnfinishedRSS {
			t.Errorf("%s: taskd RSS grew by %d MiB, want at most %d MiB", name, grew>>20, maxUnfinishedRSS>>20)
		}
		for _, c := range conns {
			if wantClosed {
				// taskd refused the headers and closed the connection.
				c.SetReadDeadline(time.Now().Add(testlog.TimeLeft(t)))
				b, _ := io.ReadAll(bufio.NewReader(c))
				if !strings.Contains(string(b), wantAnswer) {
					t.Fatalf("%s: answer %.80q, want %q", name, b, wantAnswer)
				}
			}
			c.Close()
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	head := "GET /longrunningtask HTTP/1.1\r\nHost: t\r\nX-Pad: "
	phase("HTTP/1.1, 256 KiB of headers", []byte(head+strings.Repeat("a", 256<<10)), true, "HTTP/1.1 431 ")
	phase("HTTP/1.1, 30 KiB of headers", []byte(head+strings.Repeat("a", 30<<10)), false, "")
	// The header of a GOAWAY frame (type 7).
	goaway := string([]byte{0, 0, 8, 7, 0, 0, 0, 0, 0})
	phase("h2c, a 256 KiB header value", h2UnfinishedHeaders(256<<10, 128<<10), true, goaway)
	phase("h2c, a 30 KiB header value", h2UnfinishedHeaders(30<<10, 30<<10-100), false, "")
}

// h2UnfinishedHeaders returns an HTTP/2 connection preface, SETTINGS, and
// a header block that starts a header value of valueLen bytes and sends
// sent bytes of it, without END_HEADERS.
func h2UnfinishedHeaders(valueLen, sent int) []byte {
	frame := func(typ, flags byte, stream uint32, payload []byte) []byte {
		h := make([]byte, 9, 9+len(payload))
		h[0], h[1], h[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
		h[3], h[4] = typ, flags
		binary.BigEndian.PutUint32(h[5:], stream)
		return append(h, payload...)
	}
	// HPACK: literal without indexing, new name "x-pad", value length
	// valueLen (7-bit prefix integer), then the first bytes of the value.
	block := []byte{0x00, 5, 'x', '-', 'p', 'a', 'd'}
	if valueLen < 127 {
		block = append(block, byte(valueLen))
	} else {
		block = appendHPACKRest(append(block, 127), valueLen-127)
	}
	out := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	out = append(out, frame(4, 0, 0, nil)...) // SETTINGS
	value := []byte(strings.Repeat("v", sent))
	out = append(out, frame(1, 0x1, 1, append(block, value[:min(len(value), 8<<10)]...))...) // HEADERS, END_STREAM
	for rest := value[min(len(value), 8<<10):]; len(rest) > 0; {
		n := min(len(rest), 8<<10)
		out = append(out, frame(9, 0, 1, rest[:n])...) // CONTINUATION
		rest = rest[n:]
	}
	return out
}

// appendHPACKRest appends the continuation bytes of an HPACK integer whose
// prefix was full: n in 7-bit groups, least significant first.
func appendHPACKRest(b []byte, n int) []byte {
	for n >= 128 {
		b = append(b, byte(n%128)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}

// rss returns the resident set size of process pid.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// waitDrained waits until taskd has read everything its connections on
// port received: the receive queues of its established sockets, in
// /proc/net/tcp, are empty. It polls the kernel's table, with a short
// pause between reads, for at most the test's time.
func waitDrained(t *testing.T, port string) {
	t.Helper()
	p, _ := strconv.Atoi(port)
	local := fmt.Sprintf(":%04X", p)
	deadline := time.Now().Add(testlog.TimeLeft(t))
	for {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Skipf("no /proc/net/tcp: %v", err)
		}
		queued := 0
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 5 || !strings.HasSuffix(f[1], local) || f[3] != "01" {
				continue
			}
			_, rx, _ := strings.Cut(f[4], ":")
			if n, _ := strconv.ParseInt(rx, 16, 64); n > 0 {
				queued++
			}
		}
		if queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets still have unread bytes", queued)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

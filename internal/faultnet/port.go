package faultnet

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// StablePort returns a free TCP port on 127.0.0.1 below the kernel's
// ephemeral port range. A test that stops a server and starts it again on
// the same port needs one: an ephemeral port, once released, can be taken by
// any outgoing connection of another test before the server listens again.
// It is safe for concurrent use.
func StablePort(t testing.TB) int {
	t.Helper()
	ln := ListenStable(t)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// ListenStable listens on 127.0.0.1 at a random free port below the kernel's
// ephemeral port range (see StablePort). It is safe for concurrent use.
func ListenStable(t testing.TB) net.Listener {
	t.Helper()
	low := 32768 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	const from = 10000
	if low <= from {
		t.Skipf("no ports below the ephemeral range (it starts at %d)", low)
	}
	for range 200 {
		port := from + rand.IntN(low-from)
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			return ln
		}
	}
	t.Fatalf("faultnet: no free port in %d-%d", from, low)
	return nil
}

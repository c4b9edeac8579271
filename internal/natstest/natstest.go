// Package natstest runs one embedded NATS server (JetStream on disk in a
// temporary directory) for a test binary: the tests of packages task,
// task/natsstore and task/taskhttp share it, each on buckets of its own
// ([Store] opens one).
package natstest

import (
	"fmt"
	"os"
	"testing"

	"github.com/go-cancellation/cancellation/task/natsstore"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

var url string

// Main starts the server, runs the tests, stops the server, checks that no
// goroutine leaked (goleak) when the tests passed, and returns the exit
// code: call os.Exit(natstest.Main(m)) from TestMain. It blocks until the
// tests are done.
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "natstest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ns, err := natsstore.RunServer(natsstore.ServerOptions{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	url = ns.ClientURL()
	code := m.Run()
	ns.Shutdown()
	ns.WaitForShutdown()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// URL returns the server's client URL (valid once Main runs the tests). It
// does not block and is safe for concurrent use.
func URL() string { return url }

// Store opens a store with opts over a NATS connection of its own to the
// server; both are closed when t ends. It fails the test (t.Fatal) when
// either cannot be opened: call it from the test's goroutine. It blocks
// until the store is ready.
func Store(t *testing.T, opts natsstore.Options) *natsstore.Store {
	t.Helper()
	nc, err := nats.Connect(URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s, err := natsstore.New(t.Context(), nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

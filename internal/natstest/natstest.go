// Package natstest runs one embedded NATS server (JetStream on disk in a
// temporary directory) for a test binary: the tests of packages task,
// task/natsstore and task/taskhttp share it, each on buckets of its own.
package natstest

import (
	"fmt"
	"os"
	"testing"

	"github.com/go-cancellation/cancellation/task/natsstore"
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

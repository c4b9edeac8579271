// Package testbin serves the end-to-end tests of this module's commands:
// it builds the command under test once per test process, and its Main
// removes the binary after the tests and checks for leaked goroutines.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

var (
	once sync.Once
	dir  string
	path string
	err  error
)

// Main runs the tests of m, removes the binary Build made (if any), then,
// when every test passed, fails the run if goroutines leaked (goleak), and
// exits. Call it from TestMain. It blocks until the tests are done.
func Main(m *testing.M) {
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Build builds the main package in the current directory (the command
// under test: go test runs in its directory) into a temporary directory,
// once per test process, and returns the binary's path, named name. When
// the environment variable envVar is set (and envVar is not ""), it names
// a binary to test instead, say one built from an older commit to see
// which tests fail without a fix. It fails t if the build fails, and skips
// t when there is no go command. It is safe for concurrent use; the first
// call blocks for the build.
func Build(t testing.TB, name, envVar string) string {
	t.Helper()
	if envVar != "" {
		if bin := os.Getenv(envVar); bin != "" {
			return bin
		}
	}
	goTool, lookErr := exec.LookPath("go")
	if lookErr != nil {
		t.Skip("no go command to build", name, "with")
	}
	once.Do(func() {
		if dir, err = os.MkdirTemp("", name+"-test-"); err != nil {
			return
		}
		path = filepath.Join(dir, name)
		if out, buildErr := exec.Command(goTool, "build", "-o", path, ".").CombinedOutput(); buildErr != nil {
			err = fmt.Errorf("go build: %v\n%s", buildErr, out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

package cancelio_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(stdinChildEnv) != "" {
		// The child of TestStdinEndsOnInterrupt: run the example for real.
		ExampleReader_stdin()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

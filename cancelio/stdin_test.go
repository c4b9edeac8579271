//go:build linux

package cancelio_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-cancellation/cancellation/internal/testlog"
)

const stdinChildEnv = "CANCELIO_TEST_STDIN_CHILD"

// TestStdinEndsOnInterrupt runs ExampleReader_stdin in a child process whose
// standard input is a blocking pipe (as a shell gives it) or a terminal, and
// interrupts it while it waits for input: with SIGINT, and with a real
// Ctrl-C typed on the terminal.
func TestStdinEndsOnInterrupt(t *testing.T) {
	t.Parallel()
	t.Run("pipe", func(t *testing.T) {
		t.Parallel()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		cmd, out, stderr := child(t, r)
		r.Close()
		w.WriteString("hello\n")
		expectLine(t, out, "hello")
		start := time.Now()
		cmd.Process.Signal(os.Interrupt)
		finish(t, cmd, stderr, start)
	})
	t.Run("terminal", func(t *testing.T) {
		t.Parallel()
		master, tty := openPTY(t)
		cmd, out, stderr := child(t, tty, func(c *exec.Cmd) {
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		})
		tty.Close()
		go io.Copy(io.Discard, master) // the terminal's echo
		master.WriteString("hello\n")
		expectLine(t, out, "hello")
		start := time.Now()
		master.Write([]byte{3}) // Ctrl-C: the terminal sends SIGINT
		finish(t, cmd, stderr, start)
	})
}

// child starts the test binary as ExampleReader_stdin with stdin; it
// returns its stdout, line by line, and a buffer for its stderr.
func child(t *testing.T, stdin *os.File, opts ...func(*exec.Cmd)) (*exec.Cmd, *bufio.Reader, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// GORACE: a -race binary otherwise sleeps 1s at exit.
	cmd.Env = append(os.Environ(), stdinChildEnv+"=1", "GORACE=atexit_sleep_ms=0")
	cmd.Stdin = stdin
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(cmd)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewReader(out), stderr
}

func expectLine(t *testing.T, out *bufio.Reader, want string) {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		s, _ := out.ReadString('\n')
		line <- strings.TrimRight(s, "\r\n")
	}()
	if got := testlog.Recv(t, "the child's echo", line); got != want {
		t.Fatalf("child echoed %q, want %q", got, want)
	}
}

func finish(t *testing.T, cmd *exec.Cmd, stderr *strings.Builder, start time.Time) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := testlog.Recv(t, "the child to exit after the interrupt", done); err != nil {
		t.Fatalf("child: %v; stderr: %s", err, stderr)
	}
	t.Logf("interrupt to exit: %v", time.Since(start))
	if !strings.Contains(stderr.String(), "interrupted after 6 bytes") {
		t.Errorf("child's stderr %q, want the interruption reported", stderr)
	}
}

// openPTY opens a pseudo-terminal: its master side and the terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, tty
}

// Command taskd is an HTTP service whose long-running handler stops within
// milliseconds when nobody wants its result any more, and says why.
//
// Usage:
//
//	taskd [-addr 127.0.0.1:8080] [-shutdown-grace 10s] [-max-request-timeout 0] [-log-format text|json]
//
// It serves GET /longrunningtask?iterations=20&interval=1s (HTTP/1.1 and
// unencrypted HTTP/2 with prior knowledge) and logs with log/slog to
// standard error. SIGINT or SIGTERM shuts it down gracefully: in-flight
// requests run for the grace period, then their tokens are canceled with
// the cause "server shutting down" and they answer "Long-running task
// cancelled successfully."; taskd exits 0 once they have returned. A second
// signal exits at once with status 128+signal. See docs/taskd.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/cancelhttp"
)

func main() {
	ctx := notifyContext(os.Stderr)
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr}
	os.Exit(exitCode(m.Run(ctx, os.Args[1:])))
}

// notifyContext returns a context canceled by the first SIGINT or SIGTERM,
// with the signal as the cause; a second one exits the process at once with
// status 128+signal. The goroutine it starts lives as long as the process.
func notifyContext(stderr io.Writer) context.Context {
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	src := cancellation.New()
	go func() {
		sig := <-sigc
		src.CancelCause(fmt.Errorf("received %s", signalName(sig)))
		sig = <-sigc
		fmt.Fprintf(stderr, "taskd: received %s again, exiting at once\n", signalName(sig))
		code := 1
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		os.Exit(code)
	}()
	return src.Token()
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// usageError is an error in the command line: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var u usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		return 2
	default:
		fmt.Fprintln(os.Stderr, "taskd:", err)
		return 1
	}
}

// Config is taskd's configuration, set from flags by [Main.Run].
type Config struct {
	Addr              string        // -addr: where to listen
	ShutdownGrace     time.Duration // -shutdown-grace: how long in-flight requests may run after a signal
	MaxRequestTimeout time.Duration // -max-request-timeout: cap on inbound timeout headers; 0: none
	LogFormat         string        // -log-format: "text" or "json"
}

// DefaultConfig returns the defaults of the flags.
func DefaultConfig() Config {
	return Config{
		Addr:          "127.0.0.1:8080",
		ShutdownGrace: cancelhttp.DefaultGracePeriod,
		LogFormat:     "text",
	}
}

// stopTimeout bounds the wait for handlers after their tokens were canceled.
const stopTimeout = 5 * time.Second

// Main is the program, testable: main only adds the signals and the exit
// status.
type Main struct {
	Stdout io.Writer // usage text for -h
	Stderr io.Writer // logs and flag errors

	// Listener, if set, is served instead of listening on Config.Addr
	// (tests bind 127.0.0.1:0 themselves). Run closes it.
	Listener net.Listener

	// Config is filled in by Run from the defaults and the flags.
	Config Config
}

// ParseFlags sets m.Config from the defaults and args. Errors are
// usageErrors (flag.ErrHelp for -h).
func (m *Main) ParseFlags(args []string) error {
	m.Config = DefaultConfig()
	fs := flag.NewFlagSet("taskd", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(m.Stdout, "Usage: taskd [flags]\n\nServes GET /longrunningtask?iterations=20&interval=1s.\n\nFlags:\n")
		fs.SetOutput(m.Stdout)
		fs.PrintDefaults()
		fs.SetOutput(m.Stderr)
	}
	fs.StringVar(&m.Config.Addr, "addr", m.Config.Addr, "`address` to listen on")
	fs.DurationVar(&m.Config.ShutdownGrace, "shutdown-grace", m.Config.ShutdownGrace, "how long in-flight requests may run after SIGINT/SIGTERM before they are canceled")
	fs.DurationVar(&m.Config.MaxRequestTimeout, "max-request-timeout", m.Config.MaxRequestTimeout, "cap on the Connect-Timeout-Ms and Grpc-Timeout a client may ask for (0: no cap)")
	fs.StringVar(&m.Config.LogFormat, "log-format", m.Config.LogFormat, "log format on standard error: `text` or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	case m.Config.LogFormat != "text" && m.Config.LogFormat != "json":
		return usageError{fmt.Errorf("invalid -log-format %q: want text or json", m.Config.LogFormat)}
	case m.Config.ShutdownGrace < 0:
		return usageError{fmt.Errorf("invalid -shutdown-grace %v: must not be negative", m.Config.ShutdownGrace)}
	case m.Config.MaxRequestTimeout < 0:
		return usageError{fmt.Errorf("invalid -max-request-timeout %v: must not be negative", m.Config.MaxRequestTimeout)}
	}
	return nil
}

// Run parses args, listens, and serves until ctx is done; then it shuts
// down gracefully and returns nil once every handler has returned. Errors
// in the flags, or from listening, are returned before anything is
// served. Run blocks until the server has stopped.
func (m *Main) Run(ctx context.Context, args []string) error {
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	if m.Stderr == nil {
		m.Stderr = io.Discard
	}
	if err := m.ParseFlags(args); err != nil {
		if m.Listener != nil {
			m.Listener.Close()
		}
		return err
	}
	logger := newLogger(m.Stderr, m.Config.LogFormat)

	ln := m.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", m.Config.Addr); err != nil {
			return err
		}
	}
	srv := newServer(logger, m.Config)
	logger.Info("listening", "addr", ln.Addr().String(), "shutdown_grace", m.Config.ShutdownGrace,
		"max_request_timeout", m.Config.MaxRequestTimeout)
	return cancelhttp.Serve(ctx, srv, ln,
		cancelhttp.WithGracePeriod(m.Config.ShutdownGrace),
		cancelhttp.WithStopTimeout(stopTimeout),
		cancelhttp.WithServeLogger(logger))
}

func newLogger(w io.Writer, format string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// newServer returns the configured, not yet started, server.
func newServer(logger *slog.Logger, cfg Config) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/longrunningtask", &taskHandler{logger: logger})
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler: cancelhttp.Handler(mux,
			cancelhttp.WithLogger(logger),
			cancelhttp.WithMaxTimeout(cfg.MaxRequestTimeout)),
		Protocols: &protocols,
		// No ReadTimeout or WriteTimeout: requests are long on purpose, and
		// a ReadTimeout would cancel request contexts mid-task.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

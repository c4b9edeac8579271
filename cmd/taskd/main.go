// Command taskd is an HTTP service whose long-running handler stops within
// milliseconds when nobody wants its result any more, and says why.
//
// Usage:
//
//	taskd [-addr 127.0.0.1:8080] [-shutdown-grace 10s] [-max-request-timeout 0]
//	      [-max-task-duration 1h] [-max-inflight 10000] [-log-format text|json]
//	      [-data ./taskd-data] [-nats URL] [-node NAME] [-concurrency 8]
//	      [-lease 10s] [-retention 24h] [-replicas 1 (with -nats-cluster: 3)]
//	      [-nats-cluster HOST:PORT -nats-routes nats-route://HOST:PORT,...
//	       [-nats-cluster-name taskd] [-nats-cluster-wait 1m]]
//
// It also serves the task API (POST /tasks, GET /tasks, GET /tasks/{id},
// POST /tasks/{id}/cancel, event streams on GET /tasks/{id}/events and GET
// /events), GET /metrics, GET /healthz, GET /readyz and the dashboard at /,
// with tasks kept in NATS JetStream: an embedded server storing under -data
// unless -nats names one. With -nats-cluster and -nats-routes the embedded
// servers of several taskd nodes form one NATS cluster (docs/cluster.md).
// Each GET /longrunningtask is also a task of kind longrunning, listed and
// cancelable through the API. See docs/tasks.md.
//
// It serves GET (and HEAD) /longrunningtask?iterations=20&interval=1s
// (HTTP/1.1 and unencrypted HTTP/2 with prior knowledge) and logs with
// log/slog to standard error. SIGINT or SIGTERM shuts it down gracefully:
// in-flight requests run for the grace period, then their tokens are
// canceled with the cause "server shutting down" and they answer
// "Long-running task cancelled successfully."; taskd exits 0 once they have
// returned. A second signal exits at once with status 128+signal, within
// 100 ms even when standard error blocks. See docs/taskd.md.
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
	os.Exit(exitCode(m.Run(ctx, os.Args[1:]), os.Stderr))
}

// exitMessageBudget bounds how long the second signal waits for its message
// to reach standard error before exiting anyway.
const exitMessageBudget = 50 * time.Millisecond

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
		exitAtOnce(stderr, <-sigc)
	}()
	return src.Token()
}

// exitAtOnce exits with status 128+sig after trying to say so on stderr.
// The message is written on its own goroutine: stderr may be a pipe nobody
// reads (then the write, and every log call, blocks), and the exit must not
// wait for it longer than exitMessageBudget.
func exitAtOnce(stderr io.Writer, sig os.Signal) {
	written := make(chan struct{})
	go func() {
		fmt.Fprintf(stderr, "taskd: received %s again, exiting at once\n", signalName(sig))
		close(written)
	}()
	timer := time.NewTimer(exitMessageBudget)
	select {
	case <-written:
	case <-timer.C:
	}
	code := 1
	if s, ok := sig.(syscall.Signal); ok {
		code = 128 + int(s)
	}
	os.Exit(code)
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

// usageError is an error in the command line: exit status 2. ParseFlags has
// already printed it, with a hint, to standard error.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitCode maps Run's error to the exit status, printing errors that were
// not printed yet to stderr.
func exitCode(err error, stderr io.Writer) int {
	var u usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		return 2
	default:
		fmt.Fprintln(stderr, "taskd:", err)
		return 1
	}
}

// Config is taskd's configuration, set from flags by [Main.Run]. The
// server limits that have no flag are the constants below it.
type Config struct {
	Addr              string        // -addr: where to listen
	ShutdownGrace     time.Duration // -shutdown-grace: how long in-flight requests may run after a signal
	MaxRequestTimeout time.Duration // -max-request-timeout: cap on inbound timeout headers; 0: none
	MaxTaskDuration   time.Duration // -max-task-duration: cap on one task's total time; 0: none
	MaxInflight       int           // -max-inflight: requests served at once; more get 503; 0: no cap
	LogFormat         string        // -log-format: "text" or "json"
	Tasks             TaskConfig    // -data, -nats, -node, -concurrency, -lease, -retention, -replicas
}

// DefaultConfig returns the defaults of the flags.
func DefaultConfig() Config {
	return Config{
		Addr:            "127.0.0.1:8080",
		ShutdownGrace:   cancelhttp.DefaultGracePeriod,
		MaxTaskDuration: time.Hour,
		MaxInflight:     10000,
		LogFormat:       "text",
		Tasks:           defaultTaskConfig(),
	}
}

// Server limits without flags.
const (
	// stopTimeout bounds the wait for handlers after their tokens were
	// canceled.
	stopTimeout = 5 * time.Second
	// maxHeaderBytes bounds the request line and headers (and an HTTP/2
	// header list): enough for any client of this service, small enough that
	// thousands of connections with unfinished headers pin little memory.
	maxHeaderBytes = 32 << 10
	// readHeaderTimeout bounds the wait for a request's headers.
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds the wait for a whole request, body included, so a
	// body sent slowly cannot hold a connection forever. It does not cancel
	// handlers: net/http clears the read deadline once the body has been
	// read (to watch for the client leaving).
	readTimeout = 30 * time.Second
	// idleTimeout closes keep-alive connections with no request.
	idleTimeout = 2 * time.Minute
	// maxIgnoredBody is the largest request body the seed endpoint, which
	// reads none, drains (so that a client leaving is noticed); a larger one
	// is answered 413.
	maxIgnoredBody = 64 << 10
	// retryAfter is the Retry-After of a 503 when -max-inflight is reached.
	retryAfter = "1"
)

// Main is the program, testable: main only adds the signals and the exit
// status. A Main is used for one Run.
type Main struct {
	Stdout io.Writer // usage text for -h
	Stderr io.Writer // logs, flag errors and usage after a flag error

	// Listener, if set, is served instead of listening on Config.Addr
	// (tests bind 127.0.0.1:0 themselves). Run closes it.
	Listener net.Listener

	// Config is filled in by Run from the defaults and the flags.
	Config Config
}

const usageText = `Usage: taskd [flags]

Serves GET /longrunningtask?iterations=20&interval=1s, the task API
(/tasks, /events), /metrics and the dashboard at /.

Flags:
`

// ParseFlags sets m.Config from the defaults and args. It prints the usage
// to m.Stdout for -h (and returns flag.ErrHelp), and an error, with a hint,
// to m.Stderr for a bad command line (and returns a usageError). It does
// not block.
func (m *Main) ParseFlags(args []string) error {
	m.Config = DefaultConfig()
	fs := flag.NewFlagSet("taskd", flag.ContinueOnError)
	// The flag package would print errors and the usage itself, the usage
	// to the same writer as errors; ParseFlags prints both instead.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&m.Config.Addr, "addr", m.Config.Addr, "`address` to listen on")
	fs.DurationVar(&m.Config.ShutdownGrace, "shutdown-grace", m.Config.ShutdownGrace, "how long in-flight requests may run after SIGINT/SIGTERM before they are canceled")
	fs.DurationVar(&m.Config.MaxRequestTimeout, "max-request-timeout", m.Config.MaxRequestTimeout, "cap on the Connect-Timeout-Ms and Grpc-Timeout a client may ask for (0: no cap)")
	fs.DurationVar(&m.Config.MaxTaskDuration, "max-task-duration", m.Config.MaxTaskDuration, "cap on one task's total time: longer tasks are refused with 400, and a task still running then is canceled (0: no cap)")
	fs.IntVar(&m.Config.MaxInflight, "max-inflight", m.Config.MaxInflight, "requests served at once; more are answered 503 with Retry-After (0: no cap)")
	fs.StringVar(&m.Config.LogFormat, "log-format", m.Config.LogFormat, "log format on standard error: `text` or json")
	m.Config.Tasks.addFlags(fs)
	usage := func(w io.Writer) {
		fmt.Fprint(w, usageText)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(m.Stdout)
		return err
	case err != nil:
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case m.Config.LogFormat != "text" && m.Config.LogFormat != "json":
		err = fmt.Errorf("invalid -log-format %q: want text or json", m.Config.LogFormat)
	case m.Config.ShutdownGrace < 0:
		err = fmt.Errorf("invalid -shutdown-grace %v: must not be negative", m.Config.ShutdownGrace)
	case m.Config.MaxRequestTimeout < 0:
		err = fmt.Errorf("invalid -max-request-timeout %v: must not be negative", m.Config.MaxRequestTimeout)
	case m.Config.MaxTaskDuration < 0:
		err = fmt.Errorf("invalid -max-task-duration %v: must not be negative", m.Config.MaxTaskDuration)
	case m.Config.MaxInflight < 0:
		err = fmt.Errorf("invalid -max-inflight %d: must not be negative", m.Config.MaxInflight)
	default:
		fs.Visit(func(f *flag.Flag) { m.Config.Tasks.replicasSet = m.Config.Tasks.replicasSet || f.Name == "replicas" })
		err = m.Config.Tasks.validate() // -data, -concurrency, -lease, -retention, -replicas, -nats-cluster…
	}
	if err != nil {
		fmt.Fprintf(m.Stderr, "taskd: %v\n", err)
		usage(m.Stderr)
		return usageError{err}
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
	tasks, err := startTasks(ctx, m.Config, logger, ln.Addr())
	if err != nil {
		ln.Close()
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing was served
		}
		return err
	}
	defer tasks.close()
	srv := newServer(logger, m.Config, tasks)
	logger.Info("listening", "addr", ln.Addr().String(),
		"shutdown_grace", m.Config.ShutdownGrace.String(),
		"max_request_timeout", m.Config.MaxRequestTimeout.String(),
		"max_task_duration", m.Config.MaxTaskDuration.String(),
		"max_inflight", m.Config.MaxInflight)
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

// newMux registers taskd's routes. Every route is behind the middleware
// (request tokens, access log) and the in-flight limit that newServer adds.
func newMux(logger *slog.Logger, cfg Config, tasks *tasks) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/longrunningtask", cancelhttp.IgnoreBody(
		&taskHandler{logger: logger, maxDuration: cfg.MaxTaskDuration, tasks: tasks.runner}, maxIgnoredBody))
	tasks.register(mux)
	return mux
}

// newServer returns the configured, not yet started, server.
func newServer(logger *slog.Logger, cfg Config, tasks *tasks) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler: cancelhttp.Handler(limitInflight(newMux(logger, cfg, tasks), cfg.MaxInflight),
			cancelhttp.WithLogger(logger),
			cancelhttp.WithMaxTimeout(cfg.MaxRequestTimeout)),
		Protocols:         &protocols,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 250,
			// Frames no larger than the protocol's default, and bounded
			// flow-control windows: what one connection can make the
			// server buffer (header blocks, unread bodies) stays small.
			MaxReadFrameSize:              16 << 10,
			MaxReceiveBufferPerConnection: 256 << 10,
			MaxReceiveBufferPerStream:     64 << 10,
		},
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

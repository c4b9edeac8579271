package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-cancellation/cancellation"
	"github.com/go-cancellation/cancellation/download"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1 // at least one download failed; the others completed
	exitUsage       = 2
	exitInterrupted = 130 // 128 + SIGINT, as shells report it
)

// Main is the fetch command with its environment, so that it can be run
// and tested in-process. The zero value writes nowhere; set the writers.
// Run may be called once at a time.
type Main struct {
	Name     string    // how to run the command again, for the resume hint; "" means "fetch"
	Stdin    io.Reader // -i -
	Stdout   io.Writer // -h output, and the file with -o -
	Stderr   io.Writer // progress, errors, summary
	Terminal bool      // Stderr is a terminal: draw live progress bars
	// TermSize, when not nil, reports the terminal's size (columns,
	// rows); nil or zeros mean 80×24.
	TermSize func() (width, height int)

	// Transport, when not nil, sends the requests (tests); otherwise a
	// clone of http.DefaultTransport that Run closes when it returns.
	Transport http.RoundTripper
	// Progress is how often plain progress lines are printed for running
	// downloads when not on a terminal; 0 means every 5 seconds.
	Progress time.Duration
}

// name is the command's name in messages.
func (m *Main) name() string {
	if m.Name == "" {
		return "fetch"
	}
	if strings.HasPrefix(m.Name, "go run ") {
		return "fetch"
	}
	return filepath.Base(m.Name)
}

// command is how to run the command again, for the resume hint.
func (m *Main) command() string {
	if m.Name == "" {
		return "fetch"
	}
	return m.Name
}

// file is one URL's download, shared by its worker and the display.
type file struct {
	url   string                 // as given
	shown string                 // url with any password masked
	name  atomic.Pointer[string] // display name: the final file's base name once known
	path  string                 // final path once known (set by the worker)

	written, total atomic.Int64 // total -1: unknown
	offset         atomic.Int64 // bytes resumed at the last start
	got            atomic.Int64 // bytes received in this run
	started        atomic.Bool  // a response was accepted
	retrying       atomic.Bool  // waiting to retry

	begin time.Time
	took  time.Duration
	res   *download.Result
	err   error
	ran   bool // the worker picked it up
}

func (f *file) displayName() string {
	if p := f.name.Load(); p != nil {
		return *p
	}
	return f.shown
}

func (f *file) setName(s string) { f.name.Store(&s) }

// Run runs fetch with args (without the program name) until every download
// finished or ctx is done, and returns the exit code. When ctx is done it
// cancels every download, keeps their .part files, prints how to resume
// and returns 130. It blocks; it leaves no goroutine behind.
func (m *Main) Run(ctx context.Context, args []string) int {
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	if m.Stderr == nil {
		m.Stderr = io.Discard
	}
	cfg, err := m.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(m.Stderr, "%s: %v\nRun '%s -h' for usage.\n", m.name(), err, m.name())
		return exitUsage
	}
	if !cfg.stdout {
		if err := os.MkdirAll(cfg.dir, 0o777); err != nil {
			fmt.Fprintf(m.Stderr, "%s: %v\n", m.name(), err)
			return exitFailed
		}
	}

	tr := m.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.parallel * cfg.split
		if cfg.insecure || cfg.roots != nil {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: cfg.insecure, RootCAs: cfg.roots}
		}
		defer t.CloseIdleConnections()
		tr = t
	}
	client := &download.Client{
		HTTPClient:  &http.Client{Transport: tr},
		Timeout:     cfg.timeout,
		IdleTimeout: cfg.idle,
		Retries:     cfg.retries,
		UserAgent:   "fetch (github.com/go-cancellation/cancellation)",
		RateLimit:   cfg.rate,
		Split:       cfg.split,
	}
	if cfg.idle == 0 {
		client.IdleTimeout = -1
	}
	if cfg.retries == 0 {
		client.Retries = -1
	}

	files := make([]*file, len(cfg.urls))
	for i, u := range cfg.urls {
		f := &file{url: u, shown: download.RedactURL(u)}
		f.total.Store(-1)
		switch {
		case cfg.stdout:
			f.setName("-")
		case cfg.output != "":
			f.setName(filepath.Base(cfg.target))
		default:
			if pu, err := url.Parse(u); err == nil && path.Base(pu.Path) != "/" && path.Base(pu.Path) != "." {
				f.setName(path.Base(pu.Path))
			}
		}
		files[i] = f
	}

	ui := newDisplay(m, cfg)
	start := time.Now()
	names := &download.Names{}
	// The downloads run in a Scope: at most -parallel at once, all over
	// when Wait returns, a panic re-raised here rather than on a worker.
	// Failures are per file (f.err), never a reason to stop the others.
	s := cancellation.NewScope(ctx)
	s.SetLimit(cfg.parallel)
	for _, f := range files {
		if ctx.Err() != nil {
			break
		}
		s.Go(func(tok cancellation.Token) error {
			m.fetch(tok, client, cfg, names, f, ui)
			return nil
		})
	}
	_ = s.Wait()
	ui.close()
	return m.summarize(ctx, cfg, files, time.Since(start))
}

// fetch downloads one file; it runs on a worker goroutine.
func (m *Main) fetch(ctx context.Context, client *download.Client, cfg *config, names *download.Names, f *file, ui display) {
	if ctx.Err() != nil {
		return // interrupted before it started: reported as not started
	}
	f.ran = true
	f.begin = time.Now()
	req := &download.Request{URL: f.url, Dir: cfg.dir, SHA256: cfg.digest, Names: names,
		NoClobber: cfg.noClobber, Header: cfg.headers, Path: cfg.target}
	if cfg.stdout {
		req.Output, req.Path = m.Stdout, ""
	}
	ui.start(f)
	req.Progress = func(e download.Event) {
		switch e.Kind {
		case download.Received:
			if prev := f.written.Swap(e.Written); e.Written > prev {
				f.got.Add(e.Written - prev)
			}
		case download.Started:
			if !cfg.stdout {
				f.setName(filepath.Base(e.Path))
			}
			f.offset.Store(e.Offset)
			f.written.Store(e.Written)
			f.total.Store(e.Total)
			f.started.Store(true)
			f.retrying.Store(false)
			ui.started(f, e)
		case download.Retrying:
			f.written.Store(e.Written)
			f.retrying.Store(true)
			ui.retrying(f, e)
		}
	}
	f.res, f.err = client.Do(ctx, req)
	f.took = time.Since(f.begin)
	if f.res != nil {
		f.path = f.res.Path
	} else {
		var de *download.Error
		if errors.As(f.err, &de) {
			f.path = de.Path
		}
	}
	ui.finish(f)
}

// summarize prints the summary (and the resume hint) and returns the exit
// code.
func (m *Main) summarize(ctx context.Context, cfg *config, files []*file, took time.Duration) int {
	var saved, skipped, failed, incomplete, kept int
	var bytes int64
	var resume []string
	for _, f := range files {
		bytes += f.got.Load()
		var de *download.Error
		switch {
		case f.res != nil:
			saved++
		case errors.Is(f.err, download.ErrExists):
			skipped++
		case !f.ran || errors.Is(f.err, context.Canceled) && ctx.Err() != nil:
			incomplete++
			resume = append(resume, f.shown)
			if errors.As(f.err, &de) && de.Kept > 0 {
				kept++
			}
		default:
			failed++
		}
	}
	w := m.Stderr
	var parts []string
	if saved > 0 {
		parts = append(parts, fmt.Sprintf("%d saved", saved))
	}
	if skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped (exist)", skipped))
	}
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", failed))
	}
	if incomplete > 0 {
		parts = append(parts, fmt.Sprintf("%d incomplete", incomplete))
	}
	summary := fmt.Sprintf("%s, %s downloaded in %s (%s)", strings.Join(parts, ", "),
		formatBytes(bytes), took.Round(time.Millisecond), formatRate(bytes, took))
	if ctx.Err() != nil {
		fmt.Fprintf(w, "%s: %s: %s\n", m.name(), causeText(ctx), summary)
		if incomplete > 0 {
			again := m.command() + " " + shellJoin(append(maskFlags(cfg.flags), resume...))
			switch {
			case cfg.stdout:
				fmt.Fprintf(w, "%s: standard output cannot be resumed; to start again, run:\n  %s\n", m.name(), again)
			case kept > 0:
				fmt.Fprintf(w, "%s: partial files are kept; to resume, run the same command again:\n  %s\n", m.name(), again)
			default:
				fmt.Fprintf(w, "%s: nothing was kept to resume; to start again, run:\n  %s\n", m.name(), again)
			}
		}
		return exitInterrupted
	}
	if failed > 0 || !cfg.quiet {
		fmt.Fprintf(w, "%s: %s\n", m.name(), summary)
	}
	if failed > 0 {
		return exitFailed
	}
	return exitOK
}

// maskFlags masks the values of -H headers that carry credentials.
func maskFlags(flags []string) []string {
	out := make([]string, len(flags))
	for i, a := range flags {
		out[i] = a
		var value string
		if v, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), "H="); ok && strings.HasPrefix(a, "-") {
			value = v
		} else if i > 0 && (flags[i-1] == "-H" || flags[i-1] == "--H") {
			value = a
		} else {
			continue
		}
		name, _, ok := strings.Cut(value, ":")
		if !ok {
			continue
		}
		switch http.CanonicalHeaderKey(strings.TrimSpace(name)) {
		case "Authorization", "Proxy-Authorization", "Cookie":
			out[i] = strings.TrimSuffix(a, value) + strings.TrimSpace(name) + ": xxxxx"
		}
	}
	return out
}

func causeText(ctx context.Context) string {
	if c := context.Cause(ctx); c != nil {
		return c.Error()
	}
	return ctx.Err().Error()
}

// shellJoin quotes args for a POSIX shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// formatBytes formats n with binary units: 512 B, 1.5 KiB, 20.0 MiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit && exp < 5; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func formatRate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return formatBytes(int64(float64(n)/d.Seconds())) + "/s"
}

package main

import (
	"context"
	"encoding/hex"
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
	"sync"
	"sync/atomic"
	"time"

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
type Main struct {
	Name     string    // how the command was invoked, for the resume hint; "" means "fetch"
	Stdout   io.Writer // -h output
	Stderr   io.Writer // progress, errors, summary
	Terminal bool      // Stderr is a terminal: draw live progress bars

	// Transport, when not nil, sends the requests (tests); otherwise a
	// clone of http.DefaultTransport that Run closes when it returns.
	Transport http.RoundTripper
	// Progress is how often plain progress lines are printed for running
	// downloads when not on a terminal; 0 means every 5 seconds.
	Progress time.Duration
}

type config struct {
	output, dir, sha string
	timeout, idle    time.Duration
	retries          int
	parallel         int
	quiet            bool
	urls             []string
	flags            []string // the flag arguments as given, for the resume hint
	digest           []byte
}

const usageText = `usage: %[1]s [flags] URL...

Downloads each URL into a file, resumably: data goes to NAME.part and is
renamed to NAME only when complete (and verified). Ctrl-C keeps the .part
files; run the same command again to resume them.

Flags:
`

func (m *Main) parse(args []string) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet(m.name(), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.output, "o", "", "save to `FILE` (one URL only); relative to -dir")
	fs.StringVar(&cfg.dir, "dir", ".", "save into `DIR` (created if missing)")
	fs.DurationVar(&cfg.timeout, "timeout", 0, "give up on a file not done within `D`, retries included (0: never)")
	fs.DurationVar(&cfg.idle, "idle-timeout", download.DefaultIdleTimeout, "retry a download that received no bytes for `D` (0: never)")
	fs.IntVar(&cfg.retries, "retries", download.DefaultRetries, "retry a failing download `N` times (the count restarts whenever it gets further)")
	fs.IntVar(&cfg.parallel, "parallel", 4, "download `N` files at once")
	fs.StringVar(&cfg.sha, "sha256", "", "expected SHA-256 of the file, in `HEX` (one URL only)")
	fs.BoolVar(&cfg.quiet, "quiet", false, "print only errors and the summary")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(m.Stdout, usageText, m.name())
			fs.SetOutput(m.Stdout)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, err
	}
	cfg.urls = fs.Args()
	cfg.flags = args[:len(args)-len(cfg.urls)]
	switch {
	case len(cfg.urls) == 0:
		return nil, errors.New("no URL given")
	case cfg.output != "" && len(cfg.urls) > 1:
		return nil, errors.New("-o takes exactly one URL")
	case cfg.sha != "" && len(cfg.urls) > 1:
		return nil, errors.New("-sha256 takes exactly one URL")
	case cfg.parallel < 1:
		return nil, errors.New("-parallel must be at least 1")
	case cfg.retries < 0:
		return nil, errors.New("-retries must not be negative")
	case cfg.timeout < 0 || cfg.idle < 0:
		return nil, errors.New("timeouts must not be negative")
	case cfg.dir == "":
		return nil, errors.New("-dir must not be empty")
	}
	if cfg.sha != "" {
		d, err := hex.DecodeString(cfg.sha)
		if err != nil || len(d) != 32 {
			return nil, fmt.Errorf("-sha256: want 64 hex digits, got %q", cfg.sha)
		}
		cfg.digest = d
	}
	seen := map[string]bool{}
	names := map[string]string{}
	var urls []string
	for _, raw := range cfg.urls {
		if strings.HasPrefix(raw, "-") {
			return nil, fmt.Errorf("%s: flags go before the URLs", raw)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s: not an http or https URL", raw)
		}
		if seen[raw] {
			continue
		}
		seen[raw] = true
		urls = append(urls, raw)
		if cfg.output == "" {
			// Two URLs named alike would overwrite each other.
			name := path.Base(u.Path)
			if strings.HasSuffix(u.Path, "/") || name == "." || name == "/" {
				name = "index.html"
			}
			if other, ok := names[name]; ok {
				return nil, fmt.Errorf("%s and %s would both be saved as %s: fetch them with -o in separate runs", other, raw, name)
			}
			names[name] = raw
		}
	}
	cfg.urls = urls
	return cfg, nil
}

// name is the command's name in messages.
func (m *Main) name() string {
	if m.Name == "" {
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
	url  string
	name atomic.Pointer[string] // display name: the final file's base name once known
	path string                 // final path once known (set by the worker)

	written, total atomic.Int64 // total -1: unknown
	offset         atomic.Int64 // bytes resumed at the last start
	got            atomic.Int64 // bytes received in this run
	started        atomic.Bool  // a response was accepted

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
	return f.url
}

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
	if err := os.MkdirAll(cfg.dir, 0o777); err != nil {
		fmt.Fprintf(m.Stderr, "%s: %v\n", m.name(), err)
		return exitFailed
	}

	tr := m.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.parallel
		defer t.CloseIdleConnections()
		tr = t
	}
	client := &download.Client{
		HTTPClient:  &http.Client{Transport: tr},
		Timeout:     cfg.timeout,
		IdleTimeout: cfg.idle,
		Retries:     cfg.retries,
		UserAgent:   "fetch (github.com/go-cancellation/cancellation)",
	}
	if cfg.idle == 0 {
		client.IdleTimeout = -1
	}
	if cfg.retries == 0 {
		client.Retries = -1
	}

	files := make([]*file, len(cfg.urls))
	for i, u := range cfg.urls {
		files[i] = &file{url: u}
		files[i].total.Store(-1)
		if cfg.output != "" {
			name := filepath.Base(cfg.output)
			files[i].name.Store(&name)
		} else if pu, err := url.Parse(u); err == nil && path.Base(pu.Path) != "/" && path.Base(pu.Path) != "." {
			name := path.Base(pu.Path)
			files[i].name.Store(&name)
		}
	}

	ui := newDisplay(m, cfg)
	start := time.Now()
	jobs := make(chan *file)
	var wg sync.WaitGroup
	for range min(cfg.parallel, len(files)) {
		wg.Go(func() {
			for f := range jobs {
				m.fetch(ctx, client, cfg, f, ui)
			}
		})
	}
	for _, f := range files {
		if ctx.Err() != nil {
			break
		}
		select {
		case jobs <- f:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	ui.close()
	return m.summarize(ctx, cfg, files, time.Since(start))
}

// fetch downloads one file; it runs on a worker goroutine.
func (m *Main) fetch(ctx context.Context, client *download.Client, cfg *config, f *file, ui display) {
	if ctx.Err() != nil {
		return // interrupted before it started: reported as not started
	}
	f.ran = true
	f.begin = time.Now()
	req := &download.Request{URL: f.url, Dir: cfg.dir, SHA256: cfg.digest}
	if cfg.output != "" {
		req.Path = cfg.output
		if !filepath.IsAbs(req.Path) {
			req.Path = filepath.Join(cfg.dir, req.Path)
		}
	}
	ui.start(f)
	req.Progress = func(e download.Event) {
		switch e.Kind {
		case download.Received:
			if prev := f.written.Swap(e.Written); e.Written > prev {
				f.got.Add(e.Written - prev)
			}
		case download.Started:
			name := filepath.Base(e.Path)
			f.name.Store(&name)
			f.offset.Store(e.Offset)
			f.written.Store(e.Written)
			f.total.Store(e.Total)
			f.started.Store(true)
			ui.started(f, e)
		case download.Retrying:
			f.written.Store(e.Written)
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
	var saved, failed, incomplete int
	var bytes int64
	var resume []string
	for _, f := range files {
		bytes += f.got.Load()
		switch {
		case f.res != nil:
			saved++
		case !f.ran || errors.Is(f.err, context.Canceled) && ctx.Err() != nil:
			incomplete++
			resume = append(resume, f.url)
		default:
			failed++
		}
	}
	w := m.Stderr
	var parts []string
	if saved > 0 {
		parts = append(parts, fmt.Sprintf("%d saved", saved))
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
			kept := ""
			if anyKept(files) {
				kept = "partial files are kept; "
			}
			fmt.Fprintf(w, "%s: %sto resume, run the same command again:\n  %s\n",
				m.name(), kept, shellJoin(append(append([]string{m.command()}, cfg.flags...), resume...)))
		}
		return exitInterrupted
	}
	fmt.Fprintf(w, "%s: %s\n", m.name(), summary)
	if failed > 0 {
		return exitFailed
	}
	return exitOK
}

func anyKept(files []*file) bool {
	for _, f := range files {
		var de *download.Error
		if errors.As(f.err, &de) && de.Kept > 0 {
			return true
		}
	}
	return false
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

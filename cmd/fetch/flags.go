package main

import (
	"bufio"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-cancellation/cancellation/download"
)

type config struct {
	output, dir, sha string
	timeout, idle    time.Duration
	retries          int
	parallel, split  int
	quiet, noClobber bool
	insecure         bool
	cacert           string
	rate             int64
	headers          http.Header
	urls             []string // as given (with a scheme added), deduplicated
	flags            []string // the flag arguments as given, for the resume hint
	digest           []byte
	roots            *x509.CertPool
	stdout           bool // -o -
	target           string
}

const usageText = `usage: %[1]s [flags] URL...

Downloads each URL into a file, resumably: data goes to NAME.part and is
renamed to NAME only when complete (and verified). Ctrl-C keeps the .part
files; run the same command again to resume them. A URL without a scheme
is taken as http://. Flags may come before or after the URLs; "--" ends
them.

Flags:
`

// headerFlag collects repeated -H values.
type headerFlag struct{ h http.Header }

func (f *headerFlag) String() string { return "" }

func (f *headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
		return errors.New(`want "Name: value"`)
	}
	value = strings.TrimSpace(value)
	if strings.ContainsAny(value, "\r\n") {
		return errors.New("the value must be on one line")
	}
	switch http.CanonicalHeaderKey(name) {
	case "Range", "If-Range", "Accept-Encoding":
		return fmt.Errorf("%s is set by fetch", name)
	}
	f.h.Add(name, value)
	return nil
}

// rateFlag is a byte rate: 500k, 2M, 1.5M, 1G (1024-based, as wget and
// curl), or bytes.
type rateFlag struct{ n *int64 }

func (f rateFlag) String() string {
	if f.n == nil || *f.n == 0 {
		return ""
	}
	return strconv.FormatInt(*f.n, 10)
}

func (f rateFlag) Set(v string) error {
	n, err := parseRate(v)
	if err != nil {
		return err
	}
	*f.n = n
	return nil
}

func parseRate(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := 1.0
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x < 0 || x*mult > 1<<50 {
		return 0, errors.New("want a rate like 500k, 2M or 1G (bytes per second)")
	}
	return int64(x * mult), nil
}

func (m *Main) flagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet(m.name(), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.output, "o", "", "save to `FILE` (one URL only), relative to -dir; - writes to standard output")
	fs.StringVar(&cfg.dir, "dir", ".", "save into `DIR` (created if missing)")
	fs.DurationVar(&cfg.timeout, "timeout", 0, "give up on a file not done within `D`, retries included (0: never)")
	fs.DurationVar(&cfg.idle, "idle-timeout", download.DefaultIdleTimeout, "retry a download that received no bytes for `D` (0: never)")
	fs.IntVar(&cfg.retries, "retries", download.DefaultRetries, "retry a failing download `N` times (the count restarts whenever it gets further)")
	fs.IntVar(&cfg.parallel, "parallel", 4, "download `N` files at once")
	fs.IntVar(&cfg.split, "split", 1, "fetch each file over up to `N` connections at once (ranges of one .part)")
	fs.StringVar(&cfg.sha, "sha256", "", "expected SHA-256 of the file, in `HEX` (one URL only)")
	fs.BoolVar(&cfg.quiet, "quiet", false, "print only errors (and the summary when something failed)")
	fs.Var(&headerFlag{cfg.headers}, "H", "send the request header `HEADER`, \"Name: value\" (repeatable)")
	fs.Func("i", "read URLs from `FILE`, one a line (- for standard input; # starts a comment)", func(v string) error {
		return m.readURLs(v, cfg)
	})
	fs.Var(rateFlag{&cfg.rate}, "limit-rate", "limit each file to `RATE` bytes per second (500k, 2M, 1G)")
	fs.BoolVar(&cfg.insecure, "insecure", false, "do not verify TLS certificates")
	fs.StringVar(&cfg.cacert, "cacert", "", "verify TLS certificates with the PEM certificates in `FILE`")
	fs.BoolVar(&cfg.noClobber, "no-clobber", false, "skip a file that exists already")
	return fs
}

// readURLs adds the URLs of a file (or standard input) to cfg.urls.
func (m *Main) readURLs(name string, cfg *config) error {
	var r io.Reader
	if name == "-" {
		if m.Stdin == nil {
			return errors.New("no standard input")
		}
		r = m.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cfg.urls = append(cfg.urls, line)
	}
	return sc.Err()
}

// parse parses the command line: flags anywhere, URLs, then checks.
func (m *Main) parse(args []string) (*config, error) {
	cfg := &config{headers: http.Header{}}
	fs := m.flagSet(cfg)
	var urls []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(m.Stdout, usageText, m.name())
				fs.SetOutput(m.Stdout)
				fs.PrintDefaults()
			}
			return nil, err
		}
		used := len(rest) - len(fs.Args())
		for _, a := range rest[:used] {
			if a != "--" {
				cfg.flags = append(cfg.flags, a)
			}
		}
		if used > 0 && rest[used-1] == "--" {
			urls = append(urls, fs.Args()...)
			break
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		urls, rest = append(urls, rest[0]), rest[1:]
	}
	// URLs from -i come first, as read; then those on the command line.
	cfg.urls = append(cfg.urls, urls...)
	cfg.flags = dropFlag(cfg.flags, "i")
	if err := cfg.check(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, raw := range cfg.urls {
		u, err := withScheme(raw)
		if err != nil {
			return nil, err
		}
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	cfg.urls = out
	return cfg, nil
}

func (cfg *config) check() error {
	switch {
	case len(cfg.urls) == 0:
		return errors.New("no URL given")
	case cfg.output != "" && len(cfg.urls) > 1:
		return errors.New("-o takes exactly one URL")
	case cfg.sha != "" && len(cfg.urls) > 1:
		return errors.New("-sha256 takes exactly one URL")
	case cfg.parallel < 1:
		return errors.New("-parallel must be at least 1")
	case cfg.split < 1 || cfg.split > 16:
		return errors.New("-split must be from 1 to 16")
	case cfg.retries < 0:
		return errors.New("-retries must not be negative")
	case cfg.timeout < 0 || cfg.idle < 0:
		return errors.New("timeouts must not be negative")
	case cfg.dir == "":
		return errors.New("-dir must not be empty")
	case cfg.insecure && cfg.cacert != "":
		return errors.New("-insecure and -cacert exclude each other")
	}
	if cfg.sha != "" {
		d, err := hex.DecodeString(cfg.sha)
		if err != nil || len(d) != 32 {
			return fmt.Errorf("-sha256: want 64 hex digits, got %q", cfg.sha)
		}
		cfg.digest = d
	}
	if cfg.cacert != "" {
		pem, err := os.ReadFile(cfg.cacert)
		if err != nil {
			return fmt.Errorf("-cacert: %w", err)
		}
		cfg.roots = x509.NewCertPool()
		if !cfg.roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-cacert: no PEM certificate in %s", cfg.cacert)
		}
	}
	switch {
	case cfg.output == "-":
		cfg.stdout = true
	case cfg.output != "":
		cfg.target = cfg.output
		if !filepath.IsAbs(cfg.target) {
			cfg.target = filepath.Join(cfg.dir, cfg.target)
		}
		// filepath.Join drops a trailing slash: look at what was given.
		if isDirName(cfg.output) || isDirName(cfg.target) {
			return fmt.Errorf("-o %s is a directory: give a file name, or use -dir", cfg.output)
		}
	}
	return nil
}

// isDirName reports whether p names a directory, or can only be one.
func isDirName(p string) bool {
	if strings.HasSuffix(p, "/") || strings.HasSuffix(p, string(filepath.Separator)) {
		return true
	}
	if b := filepath.Base(p); b == "." || b == ".." {
		return true
	}
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// withScheme checks a URL as fetch takes it: one without a scheme is
// http://, as wget does.
func withScheme(raw string) (string, error) {
	if strings.HasPrefix(raw, "-") {
		return "", fmt.Errorf("%s: not a URL (a flag needs a value? \"--\" ends the flags)", raw)
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	if _, err := download.ParseURL(raw); err != nil {
		return "", err
	}
	return raw, nil
}

// dropFlag removes -name and its value from flags (-i: its URLs are
// listed in the resume hint instead).
func dropFlag(flags []string, name string) []string {
	var out []string
	for i := 0; i < len(flags); i++ {
		a := strings.TrimLeft(flags[i], "-")
		switch {
		case a == name && flags[i] != a:
			i++ // the value follows
		case strings.HasPrefix(a, name+"=") && flags[i] != a:
		default:
			out = append(out, flags[i])
		}
	}
	return out
}

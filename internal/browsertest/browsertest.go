// Package browsertest is a test helper: it runs a real headless Chromium
// through chromedp for tests of web pages, and fails the test on any
// exception or console error of the page.
//
// Chromium is found on PATH ("chromium", then "chromium-browser", then
// "google-chrome"), or at $CHROMIUM. When it is missing, a test fails if the
// CI environment variable is set (CI must run the browser tests; .ci/run
// installs Debian's chromium package) and is skipped otherwise.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path returns the path of the Chromium binary, or "" when there is none.
// It does not block and is safe for concurrent use.
func Path() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// stopMargin is kept back from the test's deadline so that a stuck browser
// fails the test with a message instead of the test binary's panic.
const stopMargin = 15 * time.Second

// New starts a headless Chromium with one tab whose viewport is
// width×height CSS pixels, and
// returns the chromedp context of that tab. The context ends stopMargin
// before the test's deadline; at the end of the test the browser is closed
// and every uncaught exception, unhandled rejection or console.error call of
// the page is reported as a test error (the browser's own errors, such as a
// failed request, are logged). New blocks until the browser runs; it
// is safe to call from parallel tests (each call starts its own browser).
func New(t *testing.T, width, height int) context.Context {
	t.Helper()
	path := Path()
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium not found on PATH: the browser tests need it (apt-get install -y chromium)")
		}
		t.Skip("chromium not found on PATH (apt-get install -y chromium); CI runs this test")
	}
	ctx := context.Background()
	var cancelDeadline context.CancelFunc = func() {}
	if d, ok := t.Deadline(); ok {
		ctx, cancelDeadline = context.WithDeadline(ctx, d.Add(-stopMargin))
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(actx)

	var (
		mu       sync.Mutex
		problems []string // exceptions and console.error calls of the page
		notes    []string // the browser's own errors (a failed request, ...)
	)
	messages := chromedp.Console(tab)
	// Start the browser and the tab now, so that a missing library fails
	// here, with its message.
	if err := chromedp.Do(tab, chromedp.EmulateViewport(int64(width), int64(height)), chromedp.Navigate("about:blank")); err != nil {
		cancelTab()
		cancelAlloc()
		cancelDeadline()
		t.Fatalf("starting chromium (%s): %v", path, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			mu.Lock()
			switch {
			case m.IsException() || m.Type == chromedp.ConsoleError && m.Source == "":
				problems = append(problems, m.String()+" at "+m.URL)
			case m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning:
				notes = append(notes, m.String()+" ("+m.Source+" "+m.URL+")")
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelDeadline()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, n := range notes {
			t.Logf("browser: %s", n)
		}
		for _, p := range problems {
			t.Errorf("browser console: %s", p)
		}
	})
	return tab
}

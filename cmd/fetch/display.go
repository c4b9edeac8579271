package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-cancellation/cancellation/download"
)

// display shows progress. Its methods are called from the workers (start,
// started, retrying, finish: quick, never blocking on the network) and
// close from Run once the workers are done.
type display interface {
	start(f *file)
	started(f *file, e download.Event)
	retrying(f *file, e download.Event)
	finish(f *file)
	close()
}

func newDisplay(m *Main, cfg *config) display {
	if m.Terminal && !cfg.quiet {
		return newBars(m)
	}
	every := m.Progress
	if every <= 0 {
		every = 5 * time.Second
	}
	return newLines(m, cfg.quiet, every)
}

// lines prints plain lines: for logs, pipes and -quiet.
type lines struct {
	m     *Main
	quiet bool
	every time.Duration
	mu    sync.Mutex
	run   map[*file]*meter
	stop  chan struct{}
	done  chan struct{}
}

func newLines(m *Main, quiet bool, every time.Duration) *lines {
	l := &lines{m: m, quiet: quiet, every: every, run: map[*file]*meter{}, stop: make(chan struct{}), done: make(chan struct{})}
	if quiet {
		close(l.done)
		return l
	}
	go l.tick(every)
	return l
}

func (l *lines) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.m.Stderr, l.m.name()+": "+format+"\n", args...)
}

// tick prints the state of the running downloads every so often: the
// rate over the last interval (bytes received in this run only: a resumed
// offset is not speed), the ETA, or how long it has been stalled.
func (l *lines) tick(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var now time.Time
		select {
		case <-l.stop:
			return
		case now = <-t.C:
		}
		l.mu.Lock()
		for f, mt := range l.run {
			if !f.started.Load() || f.retrying.Load() {
				continue
			}
			mt.add(now, f.got.Load())
			w, total := f.written.Load(), f.total.Load()
			if mt.stalled(now) {
				fmt.Fprintf(l.m.Stderr, "%s: %s: %s, stalled for %s\n", l.m.name(), f.displayName(),
					progressText(w, total), shortDuration(now.Sub(mt.changed)))
				continue
			}
			eta := ""
			if e := mt.eta(now, w, total); e != "" {
				eta = ", ETA " + e
			}
			fmt.Fprintf(l.m.Stderr, "%s: %s: %s, %s/s%s\n", l.m.name(), f.displayName(),
				progressText(w, total), formatBytes(int64(mt.rate())), eta)
		}
		l.mu.Unlock()
	}
}

func (l *lines) start(f *file) {
	l.mu.Lock()
	l.run[f] = newMeter(l.every)
	l.mu.Unlock()
}

func (l *lines) started(f *file, e download.Event) {
	l.mu.Lock()
	if mt := l.run[f]; mt != nil {
		mt.add(time.Now(), f.got.Load()) // the interval starts now
	}
	l.mu.Unlock()
	if !l.quiet {
		l.printf("%s", startedText(f, e))
	}
}

// startedText says how a download starts: fresh, resumed, or again from
// zero and why.
func startedText(f *file, e download.Event) string {
	conns := ""
	if e.Segments > 1 {
		conns = fmt.Sprintf(" over %d connections", e.Segments)
	}
	switch {
	case e.Offset > 0:
		return fmt.Sprintf("%s: resuming at %s%s", f.displayName(), progressText(e.Offset, e.Total), conns)
	case e.Err != nil:
		return fmt.Sprintf("%s: starting again from zero (%s): %v", f.displayName(), sizeText(e.Total), e.Err)
	}
	return fmt.Sprintf("%s: downloading %s from %s%s", f.displayName(), sizeText(e.Total), f.shown, conns)
}

func retryText(f *file, e download.Event) string {
	return fmt.Sprintf("%s: %v; retrying in %s", f.displayName(), e.Err, e.Wait.Round(time.Millisecond))
}

func (l *lines) retrying(f *file, e download.Event) {
	if !l.quiet {
		l.printf("%s", retryText(f, e))
	}
}

func (l *lines) finish(f *file) {
	l.mu.Lock()
	delete(l.run, f)
	l.mu.Unlock()
	if msg, isErr := outcome(f); isErr || !l.quiet {
		l.printf("%s", msg)
	}
}

func (l *lines) close() {
	close(l.stop)
	<-l.done
}

// outcome is the line that reports a finished file, and whether it is an
// error (printed even with -quiet). Interruptions are not errors: the
// summary reports them.
func outcome(f *file) (string, bool) {
	if f.res != nil {
		got := f.got.Load()
		where := "saved " + f.res.Path
		if f.res.Path == "" {
			where = "wrote " + f.displayName() + " to standard output"
		}
		msg := fmt.Sprintf("%s (%s in %s, %s)", where, formatBytes(f.res.Size),
			f.took.Round(time.Millisecond), formatRate(got, f.took))
		if f.res.Resumed > 0 {
			msg += fmt.Sprintf(", resumed at %s", formatBytes(f.res.Resumed))
		}
		if f.res.Renamed {
			msg += fmt.Sprintf(" (not %s: another URL of this run is saved there)", filepath.Base(trimSuffixNumber(f.res.Path)))
		}
		return msg, false
	}
	var de *download.Error
	errors.As(f.err, &de)
	switch {
	case errors.Is(f.err, download.ErrExists):
		return fmt.Sprintf("skipped %s: it exists (-no-clobber)", de.Path), false
	case errors.Is(f.err, context.Canceled) && de != nil:
		if de.Kept > 0 {
			return fmt.Sprintf("%s: %v at %s, kept for resuming", f.displayName(), de.Err,
				progressText(de.Kept, f.total.Load())), false
		}
		return fmt.Sprintf("%s: %v, nothing kept", f.displayName(), de.Err), false
	}
	return f.err.Error(), true
}

// trimSuffixNumber removes the ".N" a clash added.
func trimSuffixNumber(p string) string {
	ext := filepath.Ext(p)
	if len(ext) > 1 {
		for _, c := range ext[1:] {
			if c < '0' || c > '9' {
				return p
			}
		}
		return p[:len(p)-len(ext)]
	}
	return p
}

func sizeText(total int64) string {
	if total < 0 {
		return "(size unknown)"
	}
	return formatBytes(total)
}

func progressText(w, total int64) string {
	if total <= 0 {
		return formatBytes(w)
	}
	return fmt.Sprintf("%s of %s (%d%%)", formatBytes(w), formatBytes(total), w*100/total)
}

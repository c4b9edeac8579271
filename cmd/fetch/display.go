package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-cancellation/cancellation/download"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
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
	mu    sync.Mutex
	run   map[*file]bool
	stop  chan struct{}
	done  chan struct{}
}

func newLines(m *Main, quiet bool, every time.Duration) *lines {
	l := &lines{m: m, quiet: quiet, run: map[*file]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
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

// tick prints the state of the running downloads every so often.
func (l *lines) tick(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	last := map[*file]int64{}
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		for f := range l.run {
			w := f.written.Load()
			if !f.started.Load() || w == last[f] {
				continue
			}
			rate := float64(w-last[f]) / every.Seconds()
			last[f] = w
			fmt.Fprintf(l.m.Stderr, "%s: %s: %s, %s/s%s\n", l.m.name(), f.displayName(),
				progressText(w, f.total.Load()), formatBytes(int64(rate)), etaText(w, f.total.Load(), rate))
		}
		l.mu.Unlock()
	}
}

func (l *lines) start(f *file) {
	l.mu.Lock()
	l.run[f] = true
	l.mu.Unlock()
}

func (l *lines) started(f *file, e download.Event) {
	if l.quiet {
		return
	}
	switch {
	case e.Offset > 0:
		l.printf("%s: resuming at %s", f.displayName(), progressText(e.Offset, e.Total))
	case e.Attempt > 1:
		l.printf("%s: starting again from zero (%s)", f.displayName(), sizeText(e.Total))
	default:
		l.printf("%s: downloading %s from %s", f.displayName(), sizeText(e.Total), f.url)
	}
}

func (l *lines) retrying(f *file, e download.Event) {
	if !l.quiet {
		l.printf("%s: %v; retrying in %s", f.displayName(), e.Err, e.Wait.Round(time.Millisecond))
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
		msg := fmt.Sprintf("saved %s (%s in %s, %s)", f.res.Path, formatBytes(f.res.Size),
			f.took.Round(time.Millisecond), formatRate(got, f.took))
		if f.res.Resumed > 0 {
			msg += fmt.Sprintf(", resumed at %s", formatBytes(f.res.Resumed))
		}
		return msg, false
	}
	var de *download.Error
	if errors.Is(f.err, context.Canceled) && errors.As(f.err, &de) {
		if de.Kept > 0 {
			return fmt.Sprintf("%s: %v at %s, kept %s.part", f.displayName(), de.Err,
				progressText(de.Kept, f.total.Load()), de.Path), false
		}
		return fmt.Sprintf("%s: %v", f.displayName(), de.Err), false
	}
	return f.err.Error(), true
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

func etaText(w, total int64, rate float64) string {
	if total < 0 || rate <= 0 {
		return ""
	}
	return ", ETA " + (time.Duration(float64(total-w)/rate) * time.Second).Round(time.Second).String()
}

// bars draws a live progress bar per file with mpb.
type bars struct {
	m    *Main
	p    *mpb.Progress
	mu   sync.Mutex
	live map[*file]*barState
	stop chan struct{}
	done chan struct{}
}

type barState struct {
	bar   *mpb.Bar
	total int64
	cur   int64
	base  bool // the resumed offset has been set (without counting it as speed)
	// state is read by a decorator on mpb's goroutine: atomic, so that
	// it never waits for b.mu (held while calling into mpb).
	state atomic.Pointer[string]
}

func (st *barState) setState(s string) { st.state.Store(&s) }

const barRefresh = 100 * time.Millisecond

func newBars(m *Main) *bars {
	b := &bars{
		m:    m,
		p:    mpb.New(mpb.WithOutput(m.Stderr), mpb.WithAutoRefresh(), mpb.PopCompletedMode(), mpb.WithRefreshRate(barRefresh), mpb.WithWidth(100)),
		live: map[*file]*barState{},
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go b.tick()
	return b
}

func (b *bars) printf(format string, args ...any) {
	fmt.Fprintf(b.p, b.m.name()+": "+format+"\n", args...)
}

func (b *bars) start(f *file) {
	st := &barState{total: -1}
	st.setState(" waiting")
	name := decor.Any(func(decor.Statistics) string { return ellipsis(f.displayName(), 28) }, decor.WCSyncSpaceR)
	status := decor.Any(func(decor.Statistics) string { return *st.state.Load() })
	st.bar = b.p.New(0, mpb.BarStyle().Lbound("[").Rbound("]"),
		mpb.PrependDecorators(name, decor.Counters(decor.SizeB1024(0), "% .1f / % .1f", decor.WCSyncSpace)),
		mpb.AppendDecorators(
			decor.OnAbort(decor.OnComplete(decor.Percentage(decor.WC{W: 5}), ""), ""),
			decor.OnAbort(decor.OnComplete(decor.EwmaSpeed(decor.SizeB1024(0), " % .1f", 30, decor.WCSyncSpace), ""), ""),
			decor.OnAbort(decor.OnComplete(decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WCSyncSpace), ""), ""),
			status,
		))
	b.mu.Lock()
	b.live[f] = st
	b.mu.Unlock()
}

// tick moves the bars from the counters the downloads update.
func (b *bars) tick() {
	defer close(b.done)
	t := time.NewTicker(barRefresh)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.update(now.Sub(last))
			last = now
		}
	}
}

func (b *bars) update(dt time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for f, st := range b.live {
		b.sync(f, st, dt)
	}
}

// sync brings st's bar up to f's counters; b.mu is held.
func (b *bars) sync(f *file, st *barState, dt time.Duration) {
	if !f.started.Load() {
		return
	}
	if total := f.total.Load(); total != st.total {
		st.total = total
		st.bar.SetTotal(max(total, 0), false)
	}
	w := f.written.Load()
	switch {
	case !st.base || w < st.cur:
		st.base = true
		st.bar.SetCurrent(w) // a resumed offset or a restart: not speed
	case w > st.cur:
		st.bar.EwmaSetCurrent(w, dt)
	default:
		return
	}
	st.cur = w
	st.setState("")
}

func (b *bars) started(f *file, e download.Event) {
	b.mu.Lock()
	if st := b.live[f]; st != nil {
		st.base = false
	}
	b.mu.Unlock()
}

func (b *bars) retrying(f *file, e download.Event) {
	b.mu.Lock()
	if st := b.live[f]; st != nil {
		st.setState(" retrying")
	}
	b.mu.Unlock()
	b.printf("%s: %v; retrying in %s", f.displayName(), e.Err, e.Wait.Round(time.Millisecond))
}

func (b *bars) finish(f *file) {
	b.mu.Lock()
	st := b.live[f]
	delete(b.live, f)
	if st != nil {
		b.sync(f, st, barRefresh)
		switch {
		case f.res != nil:
			st.setState(" done")
		case errors.Is(f.err, context.Canceled):
			st.setState(" interrupted")
		default:
			st.setState(" failed")
		}
	}
	b.mu.Unlock()
	msg, isErr := outcome(f)
	if isErr {
		b.printf("%s", msg)
	}
	if st == nil {
		return
	}
	if f.res != nil {
		st.bar.SetTotal(f.res.Size, false)
		st.bar.SetCurrent(f.res.Size)
		st.bar.SetTotal(-1, true)
	} else {
		st.bar.Abort(false)
	}
}

func (b *bars) close() {
	close(b.stop)
	<-b.done
	b.p.Wait()
}

func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

var _ io.Writer = (*mpb.Progress)(nil)

package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-cancellation/cancellation/download"
)

// bars draws a live progress bar per running file on a terminal, below
// the lines that report what happened (starts, retries, finished files),
// which scroll up as usual. Every frame starts with a carriage return
// (the terminal's echo of ^C moves the cursor), redraws the bars in place
// and shows no more of them than the terminal has rows: the rest are
// summed up on one line. The workers only store counters and queue lines;
// a ticker draws, so drawing costs the transfer nothing.
type bars struct {
	m     *Main
	mu    sync.Mutex
	live  []*bar   // running, in start order
	logs  []string // printed above the bars at the next frame
	drawn int      // lines of the bar area now on screen
	stop  chan struct{}
	done  chan struct{}
}

type bar struct {
	f  *file
	mt *meter
}

const barRefresh = 100 * time.Millisecond

func newBars(m *Main) *bars {
	b := &bars{m: m, stop: make(chan struct{}), done: make(chan struct{})}
	go b.tick()
	return b
}

func (b *bars) tick() {
	defer close(b.done)
	t := time.NewTicker(barRefresh)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.draw(now)
		}
	}
}

func (b *bars) log(s string) {
	b.mu.Lock()
	b.logs = append(b.logs, b.m.name()+": "+s)
	b.mu.Unlock()
}

func (b *bars) start(f *file) {
	b.mu.Lock()
	b.live = append(b.live, &bar{f: f, mt: newMeter(5 * time.Second)})
	b.mu.Unlock()
}

func (b *bars) started(f *file, e download.Event) {
	if e.Offset > 0 || e.Err != nil {
		b.log(startedText(f, e))
	}
}

func (b *bars) retrying(f *file, e download.Event) { b.log(retryText(f, e)) }

func (b *bars) finish(f *file) {
	msg, _ := outcome(f)
	b.mu.Lock()
	for i, br := range b.live {
		if br.f == f {
			b.live = append(b.live[:i], b.live[i+1:]...)
			break
		}
	}
	b.logs = append(b.logs, b.m.name()+": "+msg)
	b.mu.Unlock()
}

func (b *bars) close() {
	close(b.stop)
	<-b.done
	b.draw(time.Now()) // the last frame: the lines left, no bars
}

func (b *bars) size() (int, int) {
	w, h := 0, 0
	if b.m.TermSize != nil {
		w, h = b.m.TermSize()
	}
	if w <= 0 {
		w = 80
	}
	if h <= 0 {
		h = 24
	}
	return w, h
}

// draw writes one frame in one Write.
func (b *bars) draw(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w, h := b.size()
	var buf bytes.Buffer
	buf.WriteByte('\r')
	if b.drawn > 0 {
		fmt.Fprintf(&buf, "\x1b[%dA", b.drawn)
	}
	for _, l := range b.logs {
		buf.WriteString("\x1b[2K")
		buf.WriteString(l)
		buf.WriteByte('\n')
	}
	b.logs = b.logs[:0]
	for _, br := range b.live {
		br.mt.add(now, br.f.got.Load())
	}
	rows := max(h-1, 1) // the cursor's line stays free
	shown, hidden := b.live, []*bar(nil)
	if len(b.live) > rows {
		shown, hidden = b.live[:rows-1], b.live[rows-1:]
	}
	lay := newLayout(w)
	for _, br := range shown {
		buf.WriteString("\x1b[2K")
		buf.WriteString(lay.render(br, now))
		buf.WriteByte('\n')
	}
	b.drawn = len(shown)
	if len(hidden) > 0 {
		var rate float64
		for _, br := range hidden {
			rate += br.mt.rate()
		}
		buf.WriteString("\x1b[2K")
		buf.WriteString(truncate(fmt.Sprintf("… and %d more, %s/s", len(hidden), shortBytes(int64(rate))), w-1))
		buf.WriteByte('\n')
		b.drawn++
	}
	buf.WriteString("\x1b[J") // what an earlier, taller frame left below
	b.m.Stderr.Write(buf.Bytes())
}

// layout is the columns of a bar line for a terminal width: a fixed
// width for each, so lines stay aligned as files come and go.
//
//	name              12.3 MiB/45.6 MiB [+++====>      ]  27%  3.1 MiB/s  12m03s
type layout struct {
	width, name, bar int
	total, rate      bool
}

const (
	sizeW  = 8  // shortBytes
	rateW  = 10 // shortBytes + "/s"
	stateW = 8  // "12m03s", "stalled", "retrying"
	minBar = 10
)

func newLayout(width int) layout {
	l := layout{width: width, name: min(max(width/5, 8), 28), total: true, rate: true}
	fixed := func() int {
		n := l.name + 1 + sizeW + 4 + 4 + 1 + stateW // name " " size " [" "] " pct " " state
		if l.total {
			n += 1 + sizeW
		}
		if l.rate {
			n += 1 + rateW
		}
		return n
	}
	l.bar = width - 1 - fixed()
	if l.bar < minBar {
		l.total = false
		l.bar = width - 1 - fixed()
	}
	if l.bar < minBar {
		l.rate = false
		l.bar = width - 1 - fixed()
	}
	l.bar = max(l.bar, 0)
	return l
}

// render is the line of one bar: bytes kept from before are drawn '+',
// bytes of this run '='.
func (l layout) render(br *bar, now time.Time) string {
	f := br.f
	w, total, off := f.written.Load(), f.total.Load(), f.offset.Load()
	var sb strings.Builder
	sb.WriteString(pad(truncate(f.displayName(), l.name), l.name))
	sb.WriteByte(' ')
	fmt.Fprintf(&sb, "%*s", sizeW, shortBytes(w))
	if l.total {
		if total >= 0 {
			fmt.Fprintf(&sb, "/%-*s", sizeW, shortBytes(total))
		} else {
			sb.WriteString(strings.Repeat(" ", 1+sizeW))
		}
	}
	sb.WriteString(" [")
	if total > 0 {
		kept := int(min(off, w) * int64(l.bar) / total)
		done := int(min(w, total) * int64(l.bar) / total)
		sb.WriteString(strings.Repeat("+", kept))
		sb.WriteString(strings.Repeat("=", done-kept))
		if done < l.bar {
			sb.WriteByte('>')
			sb.WriteString(strings.Repeat(" ", l.bar-done-1))
		}
	} else {
		sb.WriteString(strings.Repeat(" ", l.bar))
	}
	sb.WriteString("] ")
	if total > 0 {
		fmt.Fprintf(&sb, "%3d%%", min(w, total)*100/total)
	} else {
		sb.WriteString("    ")
	}
	started := f.started.Load()
	if l.rate {
		r := ""
		if started {
			r = shortBytes(int64(br.mt.rate())) + "/s"
		}
		fmt.Fprintf(&sb, " %*s", rateW, r)
	}
	var state string
	switch {
	case f.retrying.Load():
		state = "retrying"
	case !started:
		state = "waiting"
	default:
		state = br.mt.eta(now, w, total)
	}
	fmt.Fprintf(&sb, " %*s", stateW, state)
	return truncate(sb.String(), l.width-1)
}

// shortBytes formats n in at most 8 characters: 1023 B, 9.5 KiB,
// 99.9 MiB, 1023 MiB.
func shortBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, exp := float64(n)/1024, 0
	for v >= 1024 && exp < 5 {
		v /= 1024
		exp++
	}
	if v < 99.95 {
		return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.0f %ciB", v, "KMGTPE"[exp])
}

// truncate cuts s to n runes, marking the cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func pad(s string, n int) string {
	if k := utf8.RuneCountInString(s); k < n {
		return s + strings.Repeat(" ", n-k)
	}
	return s
}

package main

import (
	"fmt"
	"time"
)

// meter estimates a download's rate from samples of its byte count taken
// at regular ticks, over a sliding window. A tick without new bytes is a
// sample too, so bursty data (a throttled server that sends a burst, then
// nothing) averages out instead of showing the burst's speed. It is used
// by one goroutine.
type meter struct {
	window  time.Duration
	samples []sample // oldest first; the first may be older than window
	changed time.Time
}

type sample struct {
	t time.Time
	n int64 // bytes received in this run so far (never decreases)
}

// stallAfter is how long without a byte makes a download "stalled".
const stallAfter = 3 * time.Second

func newMeter(window time.Duration) *meter { return &meter{window: window} }

// add records that n bytes were received by t.
func (m *meter) add(t time.Time, n int64) {
	if len(m.samples) == 0 || n != m.samples[len(m.samples)-1].n {
		m.changed = t
	}
	m.samples = append(m.samples, sample{t, n})
	// Keep one sample at or before t-window, as the window's start.
	drop := 0
	for drop+1 < len(m.samples) && !m.samples[drop+1].t.After(t.Add(-m.window)) {
		drop++
	}
	if drop > 0 {
		m.samples = append(m.samples[:0], m.samples[drop:]...)
	}
}

// rate is the average rate over the window (bytes per second), 0 before
// two samples.
func (m *meter) rate() float64 {
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	d := last.t.Sub(first.t).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(last.n-first.n) / d
}

// stalled reports whether no byte arrived for stallAfter before t.
func (m *meter) stalled(t time.Time) bool {
	return len(m.samples) > 0 && t.Sub(m.changed) >= stallAfter
}

// eta is the text for the time left: "" when unknown, "stalled" when no
// byte came for a while.
func (m *meter) eta(t time.Time, written, total int64) string {
	if m.stalled(t) {
		return "stalled"
	}
	r := m.rate()
	if total <= 0 || r <= 0 || written > total {
		return ""
	}
	// Rounded up: "0s" only when nothing is left.
	left := time.Duration(float64(total-written) / r * float64(time.Second))
	return shortDuration((left + time.Second - 1) / time.Second * time.Second)
}

// shortDuration formats d for a narrow column: 59s, 12m03s, 3h07m.
func shortDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 100*3600:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return ">99h"
}

package download

import (
	"sync"
	"time"
)

// limiter holds a download (all its connections) to rate bytes per
// second, allowing a burst of a twentieth of a second.
type limiter struct {
	mu   sync.Mutex
	rate int64
	next time.Time // when the bytes taken so far are due
}

const limiterBurst = time.Second / 20

// chunk is the largest read worth making between waits: a twentieth of a
// second's worth, so that the rate is smooth.
func (l *limiter) chunk() int {
	return int(max(l.rate/20, 1024))
}

// take accounts for n bytes received and returns how long to wait before
// reading more (<= 0: no wait).
func (l *limiter) take(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if floor := now.Add(-limiterBurst); l.next.Before(floor) {
		l.next = floor
	}
	l.next = l.next.Add(time.Duration(float64(n) / float64(l.rate) * float64(time.Second)))
	return l.next.Sub(now)
}

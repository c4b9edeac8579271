package cancellation

import "time"

// ListLen returns how many registrations and child links s's list holds.
func ListLen(s *Source) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p := s.head; p != nil; p = p.next {
		n++
	}
	return n
}

// SetWallClockOffset makes the package read the wall clock as time.Now()+d,
// as after a clock step of d, until restore is called. Not for parallel tests.
func SetWallClockOffset(d time.Duration) (restore func()) {
	wallNow = func() time.Time { return time.Now().Add(d) }
	return func() { wallNow = time.Now }
}

// HasBridge reports whether s has built its own context.Cause bridge.
func HasBridge(s *Source) bool {
	m := s.loadMore()
	return m != nil && m.bridge != nil
}

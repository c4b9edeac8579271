package cancellation

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

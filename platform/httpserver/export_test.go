package httpserver

// ReadingBodies counts the requests of s still reading their body.
func ReadingBodies(s *Server) int {
	s.readingMu.Lock()
	defer s.readingMu.Unlock()
	return len(s.reading)
}

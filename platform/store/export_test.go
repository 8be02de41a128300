package store

import "unsafe"

// KeyIsShared reports whether the store keeps key's own bytes as the key
// of its record (not a copy).
func KeyIsShared[T any](s *Store[T], key string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k := range s.data {
		if k == key {
			return unsafe.StringData(k) == unsafe.StringData(key)
		}
	}
	return false
}

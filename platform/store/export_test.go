package store

import "time"

// PruneBatch is how many tombstones Prune writes in one transaction at most.
const PruneBatch = pruneBatch

// RecentSize is how many keys each of a store's two generations in memory
// holds before the older one goes to the DB.
const RecentSize = recentSize

// RecordsRestored is how many changelog records the store's restores read.
func (s *Store[T]) RecordsRestored() int64 { return s.read.Load() }

// Following returns the offset the store's standby reads next in
// partition p, if it follows p.
func (s *Store[T]) Following(p int32) (int64, bool) {
	s.standby.mu.Lock()
	defer s.standby.mu.Unlock()
	next, ok := s.standby.next[p]
	return next, ok
}

// OnPruneScanned calls fn with the expired pointers of each page Prune
// scanned, before it writes their tombstones.
func (s *Store[T]) OnPruneScanned(fn func(expired int)) { s.pruneScanned = fn }

// SetNow sets the clock Prune expires ended records by.
func (s *Store[T]) SetNow(now func() time.Time) { s.now = now }

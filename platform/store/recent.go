package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// recent holds the entries a store wrote lately, in memory, in front of
// its DB: two generations of at most recentSize keys each. Every write
// goes to the young one; once it is full, the old one's changes go to the
// DB in one batch and the young one becomes old. A record that changes
// several times in its short life (a saga, an order) is read from memory
// meanwhile and written to the DB once, at the end.
type recent struct {
	young, old map[string]entry
}

// recentSize bounds each generation: far more than the records in flight
// at once, so that what a saga reads again is still here.
const recentSize = 2048

func newRecent() recent {
	return recent{young: make(map[string]entry, recentSize), old: map[string]entry{}}
}

func (r *recent) get(key string) (entry, bool) {
	if e, ok := r.young[key]; ok {
		return e, true
	}
	e, ok := r.old[key]
	return e, ok
}

// keepLocked puts e, a change not yet in the DB, under key. Called with mu
// held.
func (s *Store[T]) keepLocked(key string, e entry) error {
	s.setRunning(e.partition, key, !e.archived())
	if oldest, ok := s.oldest[e.partition]; ok {
		if at, over := e.due(); over && at < oldest {
			s.oldest[e.partition] = at
		}
	}
	e.dirty = true
	delete(s.recent.old, key)
	s.recent.young[key] = e
	if len(s.recent.young) < recentSize {
		return nil
	}
	if err := s.writeLocked(s.recent.old, func(entry) bool { return true }); err != nil {
		return err
	}
	s.recent.old, s.recent.young = s.recent.young, make(map[string]entry, recentSize)
	return nil
}

// flushLocked writes the changes to partition p's records that recent
// holds to the DB, so that a scan of the DB finds them. Called with mu
// held.
func (s *Store[T]) flushLocked(p int32) error {
	of := func(e entry) bool { return e.partition == p }
	if err := s.writeLocked(s.recent.old, of); err != nil {
		return err
	}
	return s.writeLocked(s.recent.young, of)
}

// writeLocked writes the dirty entries of m that match to the DB in one
// batch and marks them clean.
func (s *Store[T]) writeLocked(m map[string]entry, match func(entry) bool) error {
	batch := s.db.db.NewBatch()
	defer batch.Close()
	var written []string
	for k, e := range m {
		if !e.dirty || !match(e) {
			continue
		}
		key := dbKey(s.prefix, e.partition, k)
		if err := batch.Set(key, encodeEntry(e), nil); err != nil {
			return fmt.Errorf("%s: local state: %w", s.cfg.Topic, err)
		}
		written = append(written, k)
	}
	if len(written) == 0 {
		return nil
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("%s: local state: %w", s.cfg.Topic, err)
	}
	for _, k := range written {
		e := m[k]
		e.dirty = false
		m[k] = e
	}
	return nil
}

// forgetLocked drops what recent holds of partition p.
func (s *Store[T]) forgetLocked(p int32) {
	for _, m := range []map[string]entry{s.recent.young, s.recent.old} {
		for k, e := range m {
			if e.partition == p {
				delete(m, k)
			}
		}
	}
}

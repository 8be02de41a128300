package store

import (
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// A write is visible to the store's readers once it is in its transaction,
// before the commit. If the transaction aborts, the store puts back what
// the key held before (undo), so that it holds only what committed and its
// partitions need not be read again from Kafka.

// undo is what a key held before its first write whose transaction is not
// over yet, and how many of its writes are not over.
type undo struct {
	before    entry
	existed   bool
	partition int32
	writes    int
}

// write is one change of a key, until its transaction is over.
type write struct {
	key        string
	partition  int32
	kept       entry
	archivedAt int64 // of the value pending holds for it, -1 if none
	u          *undo // its key's, once tracked
	over       bool  // its transaction is over: committed or aborted
	committed  bool
}

// trackLocked notes w, the change of key to kept, whose transaction is not
// over: before is what key held. Called with mu held.
func (s *Store[T]) trackLocked(w *write, key string, before undo, kept entry) {
	u := s.undo[key]
	if u == nil {
		before.before.dirty, before.before.pending = false, nil
		before.partition = w.partition
		u = &before
		s.undo[key] = u
	}
	u.writes++
	w.key, w.kept, w.u = key, kept, u
}

// over ends w: committed, its value is what key holds before the writes
// still open; aborted, key holds again what it held before. A write not
// tracked yet is marked, so that the writer keeps a committed one and
// drops an aborted one.
func (s *Store[T]) over(w *write, committed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.over, w.committed = true, committed
	if w.archivedAt >= 0 {
		// The archive topic serves the ended record from now on.
		if e, ok := s.pending[w.key]; ok && e.archivedAt == w.archivedAt {
			delete(s.pending, w.key)
		}
	}
	u := w.u
	if u == nil || s.undo[w.key] != u {
		return // not tracked, or its partition was dropped since
	}
	if u.writes--; u.writes == 0 {
		delete(s.undo, w.key)
	}
	if committed {
		u.before, u.existed = w.kept, true
		return
	}
	if err := s.putBackLocked(w.key, u); err != nil {
		// The key's partition can no longer be trusted: read it again.
		s.logger.Error("put back a key whose write aborted", "topic", s.cfg.Topic, "key", w.key, "error", err)
		delete(s.owned, u.partition)
		_ = s.dropLocked(u.partition)
	}
}

// putBackLocked makes key hold what u says it held before its writes.
// Called with mu held.
func (s *Store[T]) putBackLocked(key string, u *undo) error {
	if u.existed {
		return s.keepLocked(key, u.before)
	}
	s.setRunning(u.partition, key, false)
	delete(s.recent.young, key)
	delete(s.recent.old, key)
	err := s.db.db.Delete(dbKey(s.prefix, u.partition, key), pebble.NoSync)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	return err
}

package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// standby is what a store follows of the partitions it does not own, as
// Kafka Streams' standby replicas: their changelog records, read into the
// DB as they are committed, so that when one of them is assigned to this
// instance (its owner died or left) the restore reads only the tail this
// instance has not followed yet instead of the whole partition.
type standby struct {
	mu     sync.Mutex
	next   map[int32]int64 // the offset to read next, by partition followed
	least  map[int32]int64 // the oldest of each partition followed, where known (see Store.oldest)
	client *kgo.Client     // while Follow runs
	marked map[int32]int64 // the changelog's ends when Mark was called
}

// A fetch of the standby waits for followBytes of records, or followWait:
// it needs no low latency (a takeover reads the tail it missed), and few
// large fetches cost less than many small ones.
const (
	followWait  = 500 * time.Millisecond
	followBytes = 1 << 20
)

// Standby sets the partitions the store follows (Follow): those it does
// not own. A partition it starts following is read from its start; the
// records of one it no longer follows are dropped.
func (s *Store[T]) Standby(partitions []int32) error {
	s.standby.mu.Lock()
	defer s.standby.mu.Unlock()
	if s.standby.next == nil {
		s.standby.next, s.standby.least = map[int32]int64{}, map[int32]int64{}
	}
	var stop []int32
	for p := range s.standby.next {
		if !slices.Contains(partitions, p) {
			stop = append(stop, p)
		}
	}
	start := map[int32]kgo.Offset{}
	for _, p := range partitions {
		if _, ok := s.standby.next[p]; !ok && !s.OwnsPartition(p) {
			start[p] = kgo.NewOffset().AtStart()
		}
	}
	if c := s.standby.client; c != nil {
		c.RemoveConsumePartitions(map[string][]int32{s.cfg.Topic: stop})
		c.AddConsumePartitions(map[string]map[int32]kgo.Offset{s.cfg.Topic: start})
	}
	var errs []error
	for _, p := range stop {
		delete(s.standby.next, p)
		delete(s.standby.least, p)
		errs = append(errs, s.dropFollowed(p))
	}
	for p := range start {
		s.standby.next[p], s.standby.least[p] = 0, math.MaxInt64
		errs = append(errs, s.dropFollowed(p)) // what an owner left: read it again
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("standby %s: %w", s.cfg.Topic, err)
	}
	return nil
}

// dropFollowed deletes the records of partition p, which the store does
// not own. Called with standby.mu held.
func (s *Store[T]) dropFollowed(p int32) error {
	s.forgetRunning(p)
	from, to := partitionRange(s.prefix, p)
	return s.db.db.DeleteRange(from, to, pebble.NoSync)
}

// take stops following the given partitions and returns where each of
// those it followed was read up to: their records before that offset are
// in the DB; and the oldest of those whose oldest is known.
func (s *Store[T]) take(partitions []int32) (taken, least map[int32]int64) {
	s.standby.mu.Lock()
	defer s.standby.mu.Unlock()
	taken, least = map[int32]int64{}, map[int32]int64{}
	for _, p := range partitions {
		if next, ok := s.standby.next[p]; ok {
			taken[p] = next
			delete(s.standby.next, p)
		}
		if l, ok := s.standby.least[p]; ok {
			least[p] = l
			delete(s.standby.least, p)
		}
	}
	if c := s.standby.client; c != nil && len(taken) > 0 {
		c.RemoveConsumePartitions(map[string][]int32{s.cfg.Topic: slices.Collect(maps.Keys(taken))})
	}
	return taken, least
}

// Follow reads the committed records of the partitions Standby set into
// the DB until ctx ends.
func (s *Store[T]) Follow(ctx context.Context) error {
	opts := append(slices.Clone(s.cfg.Kgo), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.FetchMaxWait(followWait), kgo.FetchMinBytes(followBytes))
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("standby %s: connect: %w", s.cfg.Topic, err)
	}
	defer client.Close()
	s.standby.mu.Lock()
	s.standby.client = client
	from := map[int32]kgo.Offset{}
	for p, next := range s.standby.next {
		from[p] = kgo.NewOffset().At(next)
	}
	client.AddConsumePartitions(map[string]map[int32]kgo.Offset{s.cfg.Topic: from})
	s.standby.mu.Unlock()
	defer func() {
		s.standby.mu.Lock()
		s.standby.client = nil
		s.standby.mu.Unlock()
	}()
	batch := s.db.db.NewBatch()
	defer func() { batch.Close() }()
	var kbuf, vbuf []byte
	for {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(_ string, p int32, err error) {
			s.logger.Warn("standby fetch", "topic", s.cfg.Topic, "partition", p, "error", err)
		})
		s.standby.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			next, ok := s.standby.next[r.Partition]
			if !ok || r.Offset < next || err != nil {
				return // taken or stopped meanwhile, or read already
			}
			s.standby.next[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				kbuf, vbuf, err = s.put(batch, kbuf, vbuf, r, s.standby.least)
			}
		})
		if err == nil && !batch.Empty() {
			err = batch.Commit(pebble.NoSync)
			batch.Reset()
		}
		s.standby.mu.Unlock()
		if err != nil {
			return fmt.Errorf("standby %s: local state: %w", s.cfg.Topic, err)
		}
	}
}

// Mark notes where the changelog of each partition ends now. A process
// calls it when a rebalance revokes its partitions, before any other
// instance may write to them, so that Demote can follow them from there.
func (s *Store[T]) Mark(ctx context.Context) error {
	s.standby.mu.Lock()
	defer s.standby.mu.Unlock()
	s.standby.marked = nil
	if s.standby.client == nil {
		return fmt.Errorf("standby %s: not following (Follow)", s.cfg.Topic)
	}
	ends, err := listed(kadm.NewClient(s.standby.client).ListEndOffsets(ctx, s.cfg.Topic))
	if err != nil {
		return fmt.Errorf("standby %s: end offsets: %w", s.cfg.Topic, err)
	}
	s.standby.marked = map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { s.standby.marked[o.Partition] = o.Offset })
	return nil
}

// Demote gives partitions up, as Revoke does, but keeps their records and
// follows them from where Mark saw their changelog end: what they hold is
// what was committed up to there, unless one of their writes is not over
// yet (its transaction still to abort) or the store dropped them already,
// and then they are dropped.
func (s *Store[T]) Demote(partitions []int32) {
	s.standby.mu.Lock()
	marked := s.standby.marked
	s.standby.marked = nil
	s.standby.mu.Unlock()
	kept, least := map[int32]int64{}, map[int32]int64{}
	s.mu.Lock()
	for _, p := range partitions {
		// One the store dropped already (a write it could not put back)
		// holds nothing to follow on from.
		held := s.owned[p]
		delete(s.owned, p)
		end, ok := marked[p]
		if ok && held && !s.writingLocked(p) {
			if err := s.flushLocked(p); err == nil {
				s.forgetLocked(p)
				kept[p] = end
				if l, known := s.oldest[p]; known && s.pruning[p] == 0 {
					least[p] = l
				}
				continue
			}
		}
		if err := s.dropLocked(p); err != nil {
			s.logger.Warn("drop a revoked partition's local state", "topic", s.cfg.Topic, "partition", p, "error", err)
		}
	}
	s.mu.Unlock()
	if len(kept) == 0 {
		return
	}
	s.standby.mu.Lock()
	defer s.standby.mu.Unlock()
	if s.standby.next == nil {
		s.standby.next, s.standby.least = map[int32]int64{}, map[int32]int64{}
	}
	from := map[int32]kgo.Offset{}
	for p, end := range kept {
		s.standby.next[p] = end
		if l, known := least[p]; known {
			s.standby.least[p] = l
		}
		from[p] = kgo.NewOffset().At(end)
	}
	if c := s.standby.client; c != nil {
		c.AddConsumePartitions(map[string]map[int32]kgo.Offset{s.cfg.Topic: from})
	}
}

// writingLocked reports whether a write to partition p is not over yet.
// Called with mu held.
func (s *Store[T]) writingLocked(p int32) bool {
	if s.sending[p] > 0 {
		return true
	}
	for _, u := range s.undo {
		if u.partition == p {
			return true
		}
	}
	for _, e := range s.pending {
		if e.partition == p {
			return true
		}
	}
	return false
}

// StandbyLag is how many records the partitions the store follows hold
// past what it has read of them: what a takeover of all of them would read
// now. An error if it does not follow (Follow) or Kafka does not answer.
func (s *Store[T]) StandbyLag(ctx context.Context) (int64, error) {
	s.standby.mu.Lock()
	client := s.standby.client
	next := maps.Clone(s.standby.next)
	s.standby.mu.Unlock()
	if client == nil {
		return 0, fmt.Errorf("standby %s: not following (Follow)", s.cfg.Topic)
	}
	if len(next) == 0 {
		return 0, nil
	}
	ends, err := listed(kadm.NewClient(client).ListEndOffsets(ctx, s.cfg.Topic))
	if err != nil {
		return 0, fmt.Errorf("standby %s: end offsets: %w", s.cfg.Topic, err)
	}
	var lag int64
	for p, at := range next {
		if end, ok := ends.Lookup(s.cfg.Topic, p); ok && end.Offset > at {
			lag += end.Offset - at
		}
	}
	return lag, nil
}

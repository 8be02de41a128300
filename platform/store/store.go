// Package store keeps a process's state in Kafka: a keyed map whose every
// write goes first to a compacted changelog topic and whose content is
// rebuilt from that topic on start. Kafka is the database; the map is a cache
// of it that can always be thrown away.
package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// Codec turns a state record into the bytes kept on the changelog and back.
type Codec[T any] interface {
	Encode(v *T) ([]byte, error)
	Decode(b []byte) (*T, error)
}

// Sender writes records to Kafka: a process's messaging.Session, or a
// messaging.SyncSender.
type Sender interface {
	// Add writes msgs and returns a function that waits until they are
	// durable and visible (committed), or, for a handler's writes, which
	// commit with its message's offset, returns at once: the store holds
	// no lock while it waits, so the handlers whose records share the
	// commit can go on.
	// over, if not nil, is called once their transaction is committed or
	// aborted.
	Add(ctx context.Context, msgs []*kgo.Record, over func(committed bool)) (wait func() error, err error)
	// AddAcked is Add of acked, once Kafka has acknowledged each (so that
	// its Offset is known), then of what then builds from them, in the
	// same transaction.
	AddAcked(ctx context.Context, acked []*kgo.Record, then func() []*kgo.Record, over func(committed bool)) (wait func() error, err error)
	// Epoch moves when what was read may no longer hold (a transaction
	// with writes aborted, partitions were assigned): Add and AddAcked
	// refuse a write whose context carries an older one
	// (messaging.ReadAt) with messaging.ErrStaleRead.
	Epoch() uint64
}

// ErrTooLate is the error of a write on behalf of a message written longer
// ago than a store's expiry less a tenth (a margin for the clocks) that
// would create a key: the key may be one that was over and expired since
// (Expire), and the message one that was handled then, read again (an
// offset lost, a dead letter replayed late). A message written since
// finds its key, if it was: over later still, it is kept longer than
// that after.
var ErrTooLate = errors.New("written too long ago to create a key that may have expired")

// ErrNotOwned is the error of a read or write of a key whose partition this
// instance does not own now: another instance serves it. (It is
// messaging.ErrNotOwned, which a handler's message that meets it is
// dead-lettered for.)
var ErrNotOwned = messaging.ErrNotOwned

// Config configures New.
type Config[T any] struct {
	Topic string
	// Kgo are the client options of the restore (messaging.KgoOptions): it
	// reads the changelog with franz-go, which shows the transaction markers
	// that tell where a transactional changelog ends.
	Kgo      []kgo.Opt
	Producer Sender
	Codec    Codec[T]
	// PartitionKey returns the key that chooses a record's partition, when
	// it is not the record's key itself: a record co-partitioned with
	// another aggregate (a credit decision with its customer) is keyed by
	// "<aggregate id>/<own id>" and partitioned by the aggregate id.
	PartitionKey func(key string) string
	// Archive, if set, moves the records that are over out of the live
	// state (see Archive).
	Archive *Archive[T]
	// Expire, if set, deletes the records that are over once they are
	// old enough (see Expire). Not with Archive.
	Expire *Expire[T]
	// DB is the local database the store keeps its records in, shared by
	// a process's stores (process.NewStore passes the process's); nil: a
	// DB of the store's own, in memory, for tests.
	DB *DB
}

// Archive moves a record that Ended says is over to Topic, a time-retained
// topic (cleanup.policy=delete, retention.ms), in the same transaction
// that replaces it in the changelog by a small pointer: an empty value
// with a HeaderArchivedAt header holding the archived record's offset. The
// store holds the pointer only, so memory and restores grow with what is
// running, not with what ever ran; Get reads an archived record from Kafka.
// Once Topic's retention has dropped the record, Prune deletes its pointer
// and the key is gone. An ended record is never changed back.
type Archive[T any] struct {
	Topic string
	Ended func(v *T) bool
}

// Expire deletes a record that Ended says is over once After has passed
// since it was written: Prune writes its tombstone, and the key is gone.
// Until then it stays in the changelog as it is, marked (HeaderEnded,
// with the record's time), and Range leaves it out. For small records
// that only answer a message sent again (a participant's decision that
// holds nothing), which an archive would make cost a round trip to Kafka
// each. An ended record written again, ended or not, starts anew. A
// message too old to create a key is refused (ErrTooLate).
type Expire[T any] struct {
	Ended func(v *T) bool
	After time.Duration
}

// Validate reports every missing setting at once.
func (c Config[T]) Validate() error {
	var errs []error
	if c.Topic == "" {
		errs = append(errs, errors.New("store: Topic is required"))
	}
	if len(c.Kgo) == 0 {
		errs = append(errs, errors.New("store: Kgo client options are required"))
	}
	if c.Producer == nil {
		errs = append(errs, errors.New("store: Producer is required"))
	}
	if c.Codec == nil {
		errs = append(errs, errors.New("store: Codec is required"))
	}
	if c.Archive != nil && (c.Archive.Topic == "" || c.Archive.Ended == nil) {
		errs = append(errs, errors.New("store: Archive needs a Topic and an Ended"))
	}
	if c.Expire != nil && (c.Expire.Ended == nil || c.Expire.After <= 0) {
		errs = append(errs, errors.New("store: Expire needs an Ended and a positive After"))
	}
	if c.Archive != nil && c.Expire != nil {
		errs = append(errs, errors.New("store: Archive or Expire, not both"))
	}
	return errors.Join(errs...)
}

// Store is a map of records of type T by key, persisted in a compacted topic.
// It holds the records of the partitions it is assigned, and only those: a
// process running as several instances shares a topic's partitions among
// them, each instance restoring, reading and writing its own.
// It keeps the encoded bytes, in its DB, so a value handed out never
// aliases the stored one and a failed write leaves nothing half-changed.
type Store[T any] struct {
	cfg    Config[T]
	logger *slog.Logger
	db     *DB
	ownDB  bool // db was opened by New, for this store alone: Close closes it
	closed atomic.Bool
	prefix string // of the store's keys in db

	// mu guards owned, partitions, pending, recent, undo and sending, and
	// orders the writes of a partition's records against its drop.
	mu         sync.RWMutex
	pending    map[string]entry // archived records whose transaction is not over, with their value
	recent     recent
	undo       map[string]*undo // keys written in a transaction not over yet
	sending    map[int32]int    // by partition, writes (and Prune's tombstones) sent and not yet kept, tracked or forgotten
	owned      map[int32]bool
	partitions int32           // the topic's partition count, once known
	locks      [256]sync.Mutex // serialize Update per key (striped by hash)
	// pruneScanned, if set (tests), runs after Prune scans a page, with
	// the expired pointers it found.
	pruneScanned func(expired int)
	// now is the time Prune expires ended records by (a test's clock).
	now func() time.Time
	// oldest holds, by partition, an offset of the archive topic that no
	// pointer of the partition points below (in a store that expires, a
	// time no ended record of it is older than), once known: from its
	// records as a restore reads them from the start (or as the standby
	// did), or once Prune has scanned it. While the archive starts at or
	// below it, nothing there is expired, and Prune reads none of the
	// partition's records, which are every saga ended within the
	// retention. A write of a pointer (of an ended record) lowers it
	// (keepLocked).
	oldest map[int32]int64
	// pruning counts, by partition, the Prunes running that scanned it:
	// until their tombstones are written, its oldest says what it will
	// hold after them, not what it holds, and is not handed on (Demote).
	pruning map[int32]int
	// restores numbers each partition's restores (restoredAt, by
	// partition, the latest's): see Owned.
	restores   uint64
	restoredAt map[int32]uint64

	standby standby
	archive archiveReader
	read    atomic.Int64 // changelog records the restores read

	// running holds, in a store that archives, the keys of the live
	// records of each partition it holds or follows: the records not over
	// yet, which Range visits without reading the pointers of the ended
	// ones, however many ran within the retention. Memory grows with what
	// is running only.
	runMu   sync.Mutex
	running map[int32]map[string]struct{}
}

// entry is a record as stored, with its partition; an archived record's
// value is nil and archivedAt its offset in the archive topic. An archived
// record keeps its value in pending until its transaction commits: until
// then a read-committed read of the archive would wait for it.
type entry struct {
	value      []byte
	partition  int32
	archivedAt int64
	pending    []byte
	dirty      bool  // in recent, not yet written to the DB
	endedAt    int64 // when an ended record of a store that expires was written, in Unix ms; 0 if live
}

func (e entry) archived() bool { return e.value == nil }

// over reports whether e is a record that is over: archived, or ended in a
// store that expires. Range leaves it out.
func (e entry) over() bool { return e.archived() || e.endedAt > 0 }

// due returns what Prune deletes e by: the offset of an archived record,
// the time of an ended one; false for a live record.
func (e entry) due() (int64, bool) {
	switch {
	case e.archived():
		return e.archivedAt, true
	case e.endedAt > 0:
		return e.endedAt, true
	}
	return 0, false
}

// sameDue reports whether e is still the record over that scanned was.
func (e entry) sameDue(scanned entry) bool {
	at, ok := e.due()
	was, wasOK := scanned.due()
	return ok && wasOK && at == was && e.archived() == scanned.archived()
}

// New returns an empty store that owns no partition; call Assign (or
// Restore, for all of them) before serving.
func New[T any](cfg Config[T], logger *slog.Logger) (*Store[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PartitionKey == nil {
		cfg.PartitionKey = func(key string) string { return key }
	}
	db := cfg.DB
	if db == nil {
		var err error
		if db, err = OpenDB("", "", true); err != nil {
			return nil, err
		}
	}
	s := &Store[T]{cfg: cfg, logger: logger, db: db, ownDB: cfg.DB == nil, prefix: cfg.Topic + "\x00",
		pending: map[string]entry{}, recent: newRecent(), owned: map[int32]bool{}, undo: map[string]*undo{}, sending: map[int32]int{},
		oldest: map[int32]int64{}, pruning: map[int32]int{}, restoredAt: map[int32]uint64{}, now: time.Now}
	if cfg.Archive != nil {
		s.running = map[int32]map[string]struct{}{}
	}
	return s, nil
}

// setRunning notes whether key, of partition p, is a live record (in a
// store that archives).
func (s *Store[T]) setRunning(p int32, key string, live bool) {
	if s.running == nil {
		return
	}
	s.runMu.Lock()
	defer s.runMu.Unlock()
	keys := s.running[p]
	switch {
	case !live:
		delete(keys, key)
	case keys == nil:
		s.running[p] = map[string]struct{}{key: {}}
	default:
		keys[key] = struct{}{}
	}
}

// forgetRunning drops what running holds of partition p, whose records
// are dropped.
func (s *Store[T]) forgetRunning(p int32) {
	if s.running == nil {
		return
	}
	s.runMu.Lock()
	defer s.runMu.Unlock()
	delete(s.running, p)
}

// Topic is the store's changelog topic.
func (s *Store[T]) Topic() string { return s.cfg.Topic }

// Close closes the client the store reads archived records with, if it
// made one, and the database it opened itself (Config.DB nil); a database
// given is its opener's to close.
func (s *Store[T]) Close() error {
	s.archive.close()
	if s.ownDB && !s.closed.Swap(true) {
		return s.db.Close()
	}
	return nil
}

// Partition returns the partition of the changelog that holds key, as
// Kafka's default partitioner (murmur2) chooses it; false before the
// partition count is known.
func (s *Store[T]) Partition(key string) (int32, bool) {
	s.mu.RLock()
	n := s.partitions
	s.mu.RUnlock()
	if n == 0 {
		return 0, false
	}
	return PartitionOf(s.cfg.PartitionKey(key), n), true
}

// PartitionOf is the partition of key among n, as the Java client's and
// Sarama's murmur2 partitioners choose it: the positive part of the key's
// murmur2 hash, modulo n. It hashes the string in place: a store computes
// it for every read and write.
func PartitionOf(key string, n int32) int32 {
	return int32(murmur2(key)&0x7fffffff) % n
}

// murmur2 is Kafka's (org.apache.kafka.common.utils.Utils.murmur2).
func murmur2(b string) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[3])<<24 | uint32(b[2])<<16 | uint32(b[1])<<8 | uint32(b[0])
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// Owns reports whether key's partition is assigned to this store.
func (s *Store[T]) Owns(key string) bool {
	p, ok := s.Partition(key)
	if !ok {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.owned[p]
}

// Owned returns the partitions the store serves, each with the number of
// the restore that read it: a number that changed means that the
// partition was read again (it moved away and back, or was dropped and
// restored), and that what was derived from it must be derived again.
// An aborted transaction's writes put back change no number.
func (s *Store[T]) Owned() map[int32]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	owned := make(map[int32]uint64, len(s.owned))
	for p := range s.owned {
		owned[p] = s.restoredAt[p]
	}
	return owned
}

// OwnsPartition reports whether the store owns partition p.
func (s *Store[T]) OwnsPartition(p int32) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.owned[p]
}

// Get returns the record stored under key; ErrNotOwned if its partition is
// not this store's.
func (s *Store[T]) Get(key string) (*T, bool, error) { return s.get(key, false) }

// GetCommitted is Get of what the changelog has committed: a key whose
// latest write is in a transaction still open reads as it was before
// that write (absent if it did not exist), since the transaction may
// abort. It is for answers outside handlers (an HTTP GET); a handler
// reads its own transaction's writes with Get or Update.
func (s *Store[T]) GetCommitted(key string) (*T, bool, error) { return s.get(key, true) }

// get reads key as written, or as committed: before its open writes.
func (s *Store[T]) get(key string, committed bool) (*T, bool, error) {
	e, owned, ok, err := s.entryOf(key, committed)
	if !owned {
		return nil, false, fmt.Errorf("%s/%s: %w", s.cfg.Topic, key, ErrNotOwned)
	}
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, nil
	}
	b, ok, err := s.value(context.Background(), key, e)
	if err != nil || !ok {
		return nil, false, err
	}
	v, err := s.cfg.Codec.Decode(b)
	if err != nil {
		return nil, false, fmt.Errorf("decode %s/%s: %w", s.cfg.Topic, key, err)
	}
	return v, true, nil
}

// lookup returns key's partition, whether the store owns it, and its
// entry, under one read lock.
func (s *Store[T]) lookup(key string) (p int32, e entry, owned, ok bool, err error) {
	p, e, owned, ok, _, err = s.lookupOpen(key)
	return p, e, owned, ok, err
}

// entryOf returns key's entry as written, or as committed (what it held
// before its open writes), and whether the store owns it, under one read
// lock: an abort between reading the entry and its open writes would
// leave the aborted entry read as committed.
func (s *Store[T]) entryOf(key string, committed bool) (e entry, owned, ok bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, e, owned, ok, open, err := s.lookupOpenLocked(key)
	if committed && owned && open {
		u := s.undo[key]
		e, ok, err = u.before, u.existed, nil
	}
	return e, owned, ok, err
}

// lookupOpen is lookup that also reports whether the entry is a write
// whose transaction is not over: not committed yet.
func (s *Store[T]) lookupOpen(key string) (p int32, e entry, owned, ok, open bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lookupOpenLocked(key)
}

// lookupOpenLocked is lookupOpen, with mu read-locked by the caller.
func (s *Store[T]) lookupOpenLocked(key string) (p int32, e entry, owned, ok, open bool, err error) {
	_, open = s.undo[key]
	if s.partitions == 0 {
		return 0, e, false, false, false, nil
	}
	p = PartitionOf(s.cfg.PartitionKey(key), s.partitions)
	if !s.owned[p] {
		return p, e, false, false, false, nil
	}
	if e, ok = s.pending[key]; ok {
		return p, e, true, true, open, nil
	}
	if e, ok = s.recent.get(key); ok {
		return p, e, true, true, open, nil
	}
	v, closer, err := s.db.db.Get(dbKey(s.prefix, p, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return p, e, true, false, open, nil
	}
	if err != nil {
		return p, e, true, false, open, fmt.Errorf("%s/%s: local state: %w", s.cfg.Topic, key, err)
	}
	defer closer.Close()
	e, err = decodeEntry(p, v)
	return p, e, true, err == nil, open, err
}

// value returns the encoded record of e: its value, or, archived, the
// record read from the archive topic (false once retention dropped it).
func (s *Store[T]) value(ctx context.Context, key string, e entry) ([]byte, bool, error) {
	if !e.archived() {
		return e.value, true, nil
	}
	if e.pending != nil {
		return e.pending, true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, ok, err := s.archive.read(ctx, s.cfg.Kgo, s.cfg.Archive.Topic, e.partition, e.archivedAt, key)
	if err != nil {
		return nil, false, fmt.Errorf("read %s/%s from %s at %d: %w", s.cfg.Topic, key, s.cfg.Archive.Topic, e.archivedAt, err)
	}
	return b, ok, nil
}

// Update loads the record under key (a zero T if there is none), lets fn
// change it and writes the result to the changelog before it becomes visible.
// An error from fn aborts the update and is returned as it is. Updates of one
// key run one at a time; a record that fn left unchanged is not written again.
func (s *Store[T]) Update(ctx context.Context, key string, fn func(v *T, exists bool) error) error {
	return s.UpdateAndSend(ctx, key, func(v *T, exists bool) ([]*kgo.Record, error) {
		return nil, fn(v, exists)
	})
}

// UpdateAndSend is Update whose fn may also return messages to send with the
// record, in the same produce call. Through a process's transactional
// producer the record and the messages are atomic: a reader sees all of
// them or none. (Messages are sent even when the record is unchanged.)
//
// On behalf of a consumed message (ctx is its handler's) the new value is
// visible to this store's readers once it is in the transaction, before
// the commit. If the transaction aborts, the store puts back what the key
// held before; if whether it committed is not known, the process drops
// every partition's state and restores it.
//
// A write made from a state that changed under it (outside a handler, a
// record an aborted transaction had written, or a key whose partition was
// assigned again) is refused by the producer, and made again from what
// the key holds now: fn may run more than once.
func (s *Store[T]) UpdateAndSend(ctx context.Context, key string, fn func(v *T, exists bool) ([]*kgo.Record, error)) error {
	return s.UpdateAndSendThen(ctx, key, fn, nil)
}

// UpdateAndSendThen is UpdateAndSend, and then, if not nil, learns whether
// the transaction that holds what it wrote committed (if it wrote nothing:
// that of the write it read, if still open, or at once, committed): what
// is counted once done, not each time it is made.
func (s *Store[T]) UpdateAndSendThen(ctx context.Context, key string, fn func(v *T, exists bool) ([]*kgo.Record, error), then func(committed bool)) error {
	wait, err := s.updateAndSend(ctx, key, fn, then)
	for try := 1; errors.Is(err, messaging.ErrStaleRead) && try < staleReadTries; try++ {
		wait, err = s.updateAndSend(ctx, key, fn, then)
	}
	if err != nil {
		return err
	}
	if err := wait(); err != nil {
		return fmt.Errorf("write %s/%s: %w", s.cfg.Topic, key, err)
	}
	return nil
}

func noWait() error { return nil }

// staleReadTries bounds how many times a write is made again because
// what it was made from changed under it; each try needs another abort
// or assignment meanwhile.
const staleReadTries = 3

// updateAndSend makes the change under the key's lock and returns the wait
// for its commit, which is not the lock's: a handler of the same stripe of
// keys must be able to run, as the commit waits for it.
func (s *Store[T]) updateAndSend(ctx context.Context, key string, fn func(v *T, exists bool) ([]*kgo.Record, error), then func(committed bool)) (func() error, error) {
	lock := &s.locks[stripe(key)]
	lock.Lock()
	defer lock.Unlock()

	// The epoch is taken before the key is read: an abort or an
	// assignment after the read refuses the write.
	ctx = messaging.ReadAt(ctx, s.cfg.Producer.Epoch())
	p, old, owned, exists, open, err := s.lookupOpen(key)
	if !owned {
		return nil, fmt.Errorf("%s/%s: %w", s.cfg.Topic, key, ErrNotOwned)
	}
	if err != nil {
		return nil, err
	}
	had := exists
	if !had && s.cfg.Expire != nil {
		if written, old := messaging.WrittenBefore(ctx, s.cfg.Expire.After-s.cfg.Expire.After/10); old {
			return nil, fmt.Errorf("%s/%s, by a message written at %s: %w", s.cfg.Topic, key, written.Format(time.RFC3339), ErrTooLate)
		}
	}
	var oldValue []byte
	if exists {
		var err error
		if oldValue, exists, err = s.value(ctx, key, old); err != nil {
			return nil, err
		}
	}
	var v *T
	if exists {
		var err error
		if v, err = s.cfg.Codec.Decode(oldValue); err != nil {
			return nil, fmt.Errorf("decode %s/%s: %w", s.cfg.Topic, key, err)
		}
	} else {
		v = new(T)
	}
	// Outside a handler, an answer made from a write not committed yet
	// (a create sent again while the first is in flight) waits for that
	// write's transaction: it may abort.
	if open {
		_, handling := messaging.RecordFromCtx(ctx)
		open = !handling
	}
	extra, err := fn(v, exists)
	if err != nil {
		if open {
			return s.after(ctx, err, nil)
		}
		return nil, err
	}
	b, err := s.cfg.Codec.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s/%s: %w", s.cfg.Topic, key, err)
	}
	changed := !exists || string(b) != string(oldValue)
	if !changed && len(extra) == 0 {
		if open {
			return s.after(ctx, nil, then)
		}
		if then != nil {
			then(true)
		}
		return noWait, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e := entry{value: b, partition: p}
	var over func(bool)
	w := &write{partition: p, archivedAt: -1}
	switch {
	case changed && then != nil:
		over = func(committed bool) { s.over(w, committed); then(committed) }
	case changed:
		over = func(committed bool) { s.over(w, committed) }
	default:
		over = then
	}
	var wait func() error
	if changed {
		// From its send until it is kept, the write is in neither undo
		// nor pending: a partition given up meanwhile (Demote) is not
		// followed from a mark that may be past it.
		s.mu.Lock()
		s.sending[p]++
		s.mu.Unlock()
	}
	switch {
	case changed && s.cfg.Archive != nil && s.cfg.Archive.Ended(v):
		// The record first, to learn its offset, then its pointer, in one
		// transaction. Until the pointer lands the changelog holds the
		// record as it was, so the transaction's abort leaves an orphan
		// in the archive, which its retention removes, and the change is
		// made again.
		archived := s.record(s.cfg.Archive.Topic, key, p, b)
		wait, err = s.cfg.Producer.AddAcked(ctx, []*kgo.Record{archived}, func() []*kgo.Record {
			pointer := s.record(s.cfg.Topic, key, p, []byte{})
			pointer.Headers = []kgo.RecordHeader{{Key: contracts.HeaderArchivedAt, Value: []byte(strconv.FormatInt(archived.Offset, 10))}}
			return append([]*kgo.Record{pointer}, extra...)
		}, over)
		if err == nil { // else the record may still be in flight: its offset is franz-go's to write
			e = entry{partition: p, archivedAt: archived.Offset, pending: b}
		}
	case changed && s.cfg.Expire != nil && s.cfg.Expire.Ended(v):
		// Its time, for the restores to read, and its mark.
		now := time.Now()
		r := s.record(s.cfg.Topic, key, p, b)
		r.Timestamp, r.Headers = now, []kgo.RecordHeader{{Key: contracts.HeaderEnded}}
		e.endedAt = max(now.UnixMilli(), 1)
		wait, err = s.cfg.Producer.Add(ctx, append([]*kgo.Record{r}, extra...), over)
	case changed:
		wait, err = s.cfg.Producer.Add(ctx, append([]*kgo.Record{s.record(s.cfg.Topic, key, p, b)}, extra...), over)
	default:
		wait, err = s.cfg.Producer.Add(ctx, extra, over)
	}
	if err != nil {
		if changed {
			s.mu.Lock()
			s.sending[p]--
			s.mu.Unlock()
		}
		return nil, fmt.Errorf("write %s/%s: %w", s.cfg.Topic, key, err)
	}
	if changed {
		s.mu.Lock()
		s.sending[p]--
		if s.owned[p] && (!w.over || w.committed) { // not revoked, nor aborted, meanwhile
			if _, held := s.recent.young[key]; !held {
				// A copy: a decoded key shares the decoder's slab (Avro's
				// 1 KB). A key the map holds already keeps its own.
				key = strings.Clone(key)
			}
			kept := e
			kept.pending = nil // pending holds it, for its transaction only
			err = s.keepLocked(key, kept)
			if e.pending != nil && !w.over {
				s.pending[key] = e
				w.archivedAt = e.archivedAt
			}
			if err == nil && !w.over {
				s.trackLocked(w, key, undo{before: old, existed: had}, kept)
			}
		}
		s.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("%s/%s: local state: %w", s.cfg.Topic, key, err)
		}
	}
	return wait, nil
}

// after joins the open transaction, writing nothing, and returns the wait
// for its commit, then for answer: that of a write whose outcome was read
// from a write of that transaction. If that one aborted meanwhile, the
// join is refused (ErrStaleRead) and the write is made again. over, if
// not nil, learns how that transaction ended.
func (s *Store[T]) after(ctx context.Context, answer error, over func(committed bool)) (func() error, error) {
	wait, err := s.cfg.Producer.Add(ctx, nil, over)
	if err != nil {
		return nil, err
	}
	return func() error {
		if err := wait(); err != nil {
			return err
		}
		return answer
	}, nil
}

// record is a record of key on partition p of topic; a nil value is a
// tombstone.
func (s *Store[T]) record(topic, key string, p int32, value []byte) *kgo.Record {
	return messaging.WithPartition(&kgo.Record{Topic: topic, Key: []byte(key), Value: value}, p)
}

// Range calls fn for every record until fn returns false. A record that can
// never be decoded (serde.ErrUndecodable) is logged and skipped; any other
// failure to decode one, such as an unreachable schema registry, stops Range
// and is returned, as a caller rebuilding what it derives from every record
// must not miss one.
func (s *Store[T]) Range(fn func(key string, v *T) bool) error {
	return s.RangePartitions(nil, fn)
}

// RangePartitions is Range over the records of the given partitions only
// (all of them if partitions is nil). Neither visits archived records:
// they are over, and reading them is a round trip to Kafka each.
func (s *Store[T]) RangePartitions(partitions []int32, fn func(key string, v *T) bool) error {
	if partitions == nil {
		s.mu.RLock()
		for p := range s.owned {
			partitions = append(partitions, p)
		}
		s.mu.RUnlock()
		slices.Sort(partitions)
	}
	for _, p := range partitions {
		var more bool
		var err error
		if s.running != nil {
			more, err = s.rangeRunning(p, fn)
		} else {
			from, to := partitionRange(s.prefix, p)
			more, err = s.rangeOf(p, from, to, fn)
		}
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// rangeRunning is rangeOf over the live records of partition p in a store
// that archives: those running holds, read one by one.
func (s *Store[T]) rangeRunning(p int32, fn func(key string, v *T) bool) (bool, error) {
	s.runMu.Lock()
	keys := slices.Sorted(maps.Keys(s.running[p]))
	s.runMu.Unlock()
	for _, key := range keys {
		_, e, owned, ok, err := s.lookup(key)
		if err != nil || !owned {
			return true, err // not owned: as a scan, nothing of p
		}
		if !ok || e.archived() {
			continue // over meanwhile
		}
		if more, err := s.visit(key, e.value, fn); err != nil || !more {
			return false, err
		}
	}
	return true, nil
}

// visit decodes record b of key and calls fn with it, for Range: a record
// that can never be decoded is logged and skipped.
func (s *Store[T]) visit(key string, b []byte, fn func(key string, v *T) bool) (bool, error) {
	v, err := s.cfg.Codec.Decode(b)
	if errors.Is(err, serde.ErrUndecodable) {
		s.logger.Error("skip undecodable record", "topic", s.cfg.Topic, "key", key, "error", err)
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("decode %s/%s: %w", s.cfg.Topic, key, err)
	}
	return fn(key, v), nil
}

// RangePrefix is Range over the records whose keys begin with prefix, a
// prefix that chooses their partition (PartitionKey): the records of one
// co-partitioned aggregate, "<customer id>/" say. ErrNotOwned if the
// partition is not this store's.
func (s *Store[T]) RangePrefix(prefix string, fn func(key string, v *T) bool) error {
	p, ok := s.Partition(prefix)
	if !ok || !s.Owns(prefix) {
		return fmt.Errorf("%s/%s: %w", s.cfg.Topic, prefix, ErrNotOwned)
	}
	from := dbKey(s.prefix, p, prefix)
	to := slices.Clone(from)
	for i := len(to) - 1; i >= 0; i-- { // the first key past the prefix
		if to[i]++; to[i] != 0 {
			break
		}
		to = to[:i]
	}
	_, err := s.rangeOf(p, from, to, fn)
	return err
}

// rangeOf calls fn for the live records of partition p from key from to
// key to, a page at a time, without the lock while fn runs (fn may write
// to the store); false if fn stopped it.
func (s *Store[T]) rangeOf(p int32, from, to []byte, fn func(key string, v *T) bool) (bool, error) {
	first := true
	for from != nil {
		var page []kv
		var err error
		if page, from, err = s.scan(p, from, to, first, func(e entry) bool { return !e.over() }); err != nil {
			return false, err
		}
		first = false
		for _, r := range page {
			if more, err := s.visit(r.key, r.e.value, fn); err != nil || !more {
				return false, err
			}
		}
	}
	return true, nil
}

// kv is a record as scan finds it.
type kv struct {
	key string
	e   entry
}

// scanPage is how many records scan returns at most.
const scanPage = 1024

// scan returns the entries of partition p from key from (inclusive) to
// to (exclusive) that keep says to, a page at a time, and the key to go
// on from (nil at the end); nothing once p is no longer owned. The first
// page writes what recent holds of p to the DB first: a change made
// while the scan goes on may be missed.
func (s *Store[T]) scan(p int32, from, to []byte, first bool, keep func(entry) bool) (page []kv, next []byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.owned[p] {
		return nil, nil, nil
	}
	if first {
		if err := s.flushLocked(p); err != nil {
			return nil, nil, err
		}
	}
	it, err := s.db.db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: to})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: local state: %w", s.cfg.Topic, err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if n == scanPage {
			return page, slices.Clone(it.Key()), nil
		}
		n++
		e, err := decodeEntry(p, it.Value())
		if err != nil {
			return nil, nil, err
		}
		if keep(e) {
			page = append(page, kv{key: string(it.Key()[len(s.prefix)+4:]), e: e})
		}
	}
	return page, nil, it.Error()
}

// Len returns the number of records, archived ones included.
func (s *Store[T]) Len() int {
	s.mu.RLock()
	var partitions []int32
	for p := range s.owned {
		partitions = append(partitions, p)
	}
	s.mu.RUnlock()
	n := 0
	for _, p := range partitions {
		from, to := partitionRange(s.prefix, p)
		for first := true; from != nil; first = false {
			var page []kv
			page, from, _ = s.scan(p, from, to, first, func(entry) bool { return true })
			n += len(page)
		}
	}
	return n
}

// Restore assigns the store every partition of its topic: it reads the
// whole changelog.
func (s *Store[T]) Restore(ctx context.Context) error {
	return s.Assign(ctx, nil)
}

// Assign restores the given partitions (all of them if nil) from the
// changelog, up to their end, and owns them from then on. A tombstone (nil
// value) deletes a key. Partitions the store owns already are read again.
//
// The end is the high watermark, not the last stable offset: a transaction
// left open by a dead writer holds the last stable offset back, and what
// later writers committed after it would be missed. Reading committed
// records up to the end waits until every transaction in the way is
// committed or aborted.
func (s *Store[T]) Assign(ctx context.Context, partitions []int32) error {
	opts := append(slices.Clone(s.cfg.Kgo), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("restore %s: connect: %w", s.cfg.Topic, err)
	}
	defer client.Close()
	admin := kadm.NewClient(client)
	starts, err := listed(admin.ListStartOffsets(ctx, s.cfg.Topic))
	if err != nil {
		return fmt.Errorf("restore %s: start offsets: %w", s.cfg.Topic, err)
	}
	n := int32(len(starts[s.cfg.Topic]))
	if n == 0 {
		return fmt.Errorf("restore %s: %w", s.cfg.Topic, kerr.UnknownTopicOrPartition)
	}
	if partitions == nil {
		for p := range n {
			partitions = append(partitions, p)
		}
	}
	want := map[int32]int64{} // the last offset to read, by partition
	consume := map[int32]kgo.Offset{}
	for _, p := range partitions {
		if p >= n {
			return fmt.Errorf("restore %s: partition %d of %d", s.cfg.Topic, p, n)
		}
	}
	// A partition followed (Standby) is read on from where the standby
	// is; any other is read again from the start: what was held is
	// dropped, and the partitions are not served until they are read to
	// their end. The ends are listed once the standby has stopped, so
	// that what it read meanwhile (a former owner's last commit) lies
	// before them: a standby past an end is one of another topic.
	followed, followedLeast := s.take(partitions)
	ends, err := listed(admin.ListEndOffsets(ctx, s.cfg.Topic))
	if err != nil {
		return fmt.Errorf("restore %s: end offsets: %w", s.cfg.Topic, err)
	}
	least := map[int32]int64{} // see oldest: known for those read from their start
	s.mu.Lock()
	for _, p := range partitions {
		delete(s.owned, p)
		start, end := starts[s.cfg.Topic][p].Offset, ends[s.cfg.Topic][p].Offset
		if next, ok := followed[p]; ok && next >= start && next <= end {
			start = next
			if l, known := followedLeast[p]; known {
				least[p] = l
			}
		} else if err := s.dropLocked(p); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("restore %s: %w", s.cfg.Topic, err)
		} else {
			least[p] = math.MaxInt64
		}
		if start < end {
			want[p] = end - 1
			consume[p] = kgo.NewOffset().At(start)
		}
	}
	s.mu.Unlock()
	batch := s.db.db.NewBatch()
	defer func() { batch.Close() }()
	restored := 0
	var kbuf, vbuf []byte
	if len(want) > 0 {
		client.AddConsumePartitions(map[string]map[int32]kgo.Offset{s.cfg.Topic: consume})
		for len(want) > 0 {
			fetches := client.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("restore %s: %w", s.cfg.Topic, err)
			}
			var ferr error
			fetches.EachError(func(_ string, p int32, err error) { ferr = fmt.Errorf("partition %d: %w", p, err) })
			if ferr != nil {
				return fmt.Errorf("restore %s: %w", s.cfg.Topic, ferr)
			}
			fetches.EachRecord(func(r *kgo.Record) {
				last, ok := want[r.Partition]
				if !ok || r.Offset > last || ferr != nil {
					return // past the end taken at the start
				}
				if !r.Attrs.IsControl() {
					restored++
					kbuf, vbuf, ferr = s.put(batch, kbuf, vbuf, r, least)
				}
				if r.Offset == last {
					delete(want, r.Partition)
				}
			})
			if ferr == nil && batch.Len() >= dbMemTable/4 {
				ferr = batch.Commit(pebble.NoSync)
				batch.Close()
				batch = s.db.db.NewBatch()
			}
			if ferr != nil {
				return fmt.Errorf("restore %s: local state: %w", s.cfg.Topic, ferr)
			}
			// A partition whose last record compaction removed ends at the
			// first record past it.
			fetches.EachPartition(func(p kgo.FetchTopicPartition) {
				if last, ok := want[p.Partition]; ok && len(p.Records) > 0 && p.Records[len(p.Records)-1].Offset > last {
					delete(want, p.Partition)
				}
			})
		}
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("restore %s: local state: %w", s.cfg.Topic, err)
	}
	s.mu.Lock()
	s.partitions = n
	for _, p := range partitions {
		s.owned[p] = true
		if l, known := least[p]; known {
			s.oldest[p] = l
		} else {
			delete(s.oldest, p)
		}
		s.restores++
		s.restoredAt[p] = s.restores
	}
	s.mu.Unlock()
	s.read.Add(int64(restored))
	s.logger.Info("state restored", "topic", s.cfg.Topic, "partitions", len(partitions), "from standby", len(followed), "records read", restored)
	return nil
}

// put adds changelog record r to batch: the record, the pointer of an
// archived one, or the deletion of a tombstone's key. The batch copies
// what it is given, so kbuf and vbuf are reused. A record that is over
// lowers least's bound of its partition, if least has one (see oldest).
func (s *Store[T]) put(batch *pebble.Batch, kbuf, vbuf []byte, r *kgo.Record, least map[int32]int64) ([]byte, []byte, error) {
	kbuf = appendKey(kbuf[:0], s.prefix, r.Partition, r.Key)
	at, archived := ArchivedAt(r)
	if s.running != nil { // not otherwise: the key's string is a copy, for every record a restore reads
		s.setRunning(r.Partition, string(r.Key), r.Value != nil && !archived)
	}
	if r.Value == nil && !archived {
		return kbuf, vbuf, batch.Delete(kbuf, nil)
	}
	e := entry{value: r.Value}
	switch {
	case archived:
		e = entry{archivedAt: at}
	case s.cfg.Expire != nil && slices.ContainsFunc(r.Headers, func(h kgo.RecordHeader) bool { return h.Key == contracts.HeaderEnded }):
		e.endedAt = max(r.Timestamp.UnixMilli(), 1)
	}
	if due, over := e.due(); over {
		if cur, ok := least[r.Partition]; ok && due < cur {
			least[r.Partition] = due
		}
	}
	vbuf = appendEntry(vbuf[:0], e)
	return kbuf, vbuf, batch.Set(kbuf, vbuf, nil)
}

// Revoke drops the records of the given partitions: another instance owns
// them now.
func (s *Store[T]) Revoke(partitions []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range partitions {
		delete(s.owned, p)
		if err := s.dropLocked(p); err != nil {
			// Not owned, so never read: the next Assign drops it again.
			s.logger.Warn("drop a revoked partition's local state", "topic", s.cfg.Topic, "partition", p, "error", err)
		}
	}
}

// dropLocked deletes partition p's records. Called with mu held.
func (s *Store[T]) dropLocked(p int32) error {
	s.forgetLocked(p)
	s.forgetRunning(p)
	for k, e := range s.pending {
		if e.partition == p {
			delete(s.pending, k)
		}
	}
	for k, u := range s.undo {
		if u.partition == p {
			delete(s.undo, k)
		}
	}
	from, to := partitionRange(s.prefix, p)
	return s.db.db.DeleteRange(from, to, pebble.NoSync)
}

// listed is the offsets kadm listed, with the error of any partition.
func listed(offsets kadm.ListedOffsets, err error) (kadm.ListedOffsets, error) {
	if err == nil {
		err = offsets.Error()
	}
	return offsets, err
}

// ArchivedAt returns the offset a pointer record (HeaderArchivedAt) points
// to in the archive topic, in the partition of the pointer's number.
func ArchivedAt(r *kgo.Record) (int64, bool) {
	for _, h := range r.Headers {
		if h.Key == contracts.HeaderArchivedAt {
			at, err := strconv.ParseInt(string(h.Value), 10, 64)
			return at, err == nil
		}
	}
	return 0, false
}

// Prune deletes the pointers of archived records that the archive topic's
// retention has dropped, or the ended records past their expiry: their
// keys are gone. It writes a tombstone for each, through the store's
// producer, pruneBatch at most a transaction, each batch forgotten
// locally once committed, and returns how many it deleted.
func (s *Store[T]) Prune(ctx context.Context) (pruned int, err error) {
	// cut says, of each partition, below what an entry's due is deleted,
	// and below what the oldest must be for the partition to be read.
	var cut func(p int32) (drop, read int64, ok bool)
	switch {
	case s.cfg.Archive != nil:
		client, err := kgo.NewClient(s.cfg.Kgo...)
		if err != nil {
			return 0, fmt.Errorf("prune %s: connect: %w", s.cfg.Topic, err)
		}
		defer client.Close()
		starts, err := listed(kadm.NewClient(client).ListStartOffsets(ctx, s.cfg.Archive.Topic))
		if err != nil {
			return 0, fmt.Errorf("prune %s: start offsets of %s: %w", s.cfg.Topic, s.cfg.Archive.Topic, err)
		}
		cut = func(p int32) (int64, int64, bool) {
			start, ok := starts.Lookup(s.cfg.Archive.Topic, p)
			return start.Offset, start.Offset, ok
		}
	case s.cfg.Expire != nil:
		// A partition is read once its oldest ended record is past the
		// expiry by as long as an archive's segment lasts, so that it is
		// read about as often as an archive drops a segment, not every
		// time a record expires: a record stays that much longer at most.
		drop := s.now().Add(-s.cfg.Expire.After).UnixMilli()
		read := drop - messaging.Segment(s.cfg.Expire.After).Milliseconds()
		cut = func(int32) (int64, int64, bool) { return drop, read, true }
	default:
		return 0, nil
	}
	s.mu.RLock()
	var partitions []int32
	for p := range s.owned {
		partitions = append(partitions, p)
	}
	s.mu.RUnlock()
	var batch []kv
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		wait, kept, err := s.addTombstones(ctx, batch)
		if err != nil {
			return err
		}
		defer s.sent(kept)
		if err := wait(); err != nil {
			return err
		}
		if err := s.forgetPruned(kept); err != nil {
			return err
		}
		pruned += len(kept)
		batch = nil
		return nil
	}
	// A failed run forgets what it learnt: a pointer it found expired may
	// still be there.
	var scanned []int32
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range scanned {
			if s.pruning[p]--; s.pruning[p] == 0 {
				delete(s.pruning, p)
			}
		}
		if err != nil {
			clear(s.oldest)
		}
	}()
	for _, p := range partitions {
		drop, read, ok := cut(p)
		if !ok {
			continue
		}
		s.mu.Lock()
		if oldest, known := s.oldest[p]; known && read <= oldest {
			s.mu.Unlock()
			continue
		}
		s.oldest[p] = math.MaxInt64 // until the scan is done, lowered by the writes meanwhile
		s.pruning[p]++
		scanned = append(scanned, p)
		s.mu.Unlock()
		least := int64(math.MaxInt64) // of the pointers kept
		gone := func(e entry) bool {
			at, over := e.due()
			if !over {
				return false
			}
			if at < drop {
				return true
			}
			least = min(least, at)
			return false
		}
		from, to := partitionRange(s.prefix, p)
		for first := true; from != nil; first = false {
			var page []kv
			if page, from, err = s.scan(p, from, to, first, gone); err != nil {
				return pruned, fmt.Errorf("prune %s: %w", s.cfg.Topic, err)
			}
			if s.pruneScanned != nil {
				s.pruneScanned(len(page))
			}
			for _, r := range page {
				batch = append(batch, r)
				if len(batch) == pruneBatch {
					if err = flush(); err != nil {
						return pruned, fmt.Errorf("prune %s: %w", s.cfg.Topic, err)
					}
				}
			}
		}
		s.mu.Lock()
		if cur, ok := s.oldest[p]; ok { // not restored meanwhile without a bound
			s.oldest[p] = min(cur, least)
		}
		s.mu.Unlock()
	}
	if err = flush(); err != nil {
		return pruned, fmt.Errorf("prune %s: %w", s.cfg.Topic, err)
	}
	return pruned, nil
}

// pruneBatch bounds the tombstones of one of Prune's transactions.
const pruneBatch = 1000

// addTombstones joins the open transaction with a tombstone for each
// scanned record over that is still as scanned: under the keys' locks,
// and refused if an abort came since they were read, so that a key
// written after the scan (revived, or over again) keeps what it holds
// now. It returns the wait for their commit and the records they delete.
func (s *Store[T]) addTombstones(ctx context.Context, scanned []kv) (func() error, []kv, error) {
	ctx = messaging.ReadAt(ctx, s.cfg.Producer.Epoch())
	var stripes [256]bool
	for _, r := range scanned {
		stripes[stripe(r.key)] = true
	}
	for i := range stripes { // in order: no two Prunes wait for each other
		if stripes[i] {
			s.locks[i].Lock()
			defer s.locks[i].Unlock()
		}
	}
	var kept []kv
	var tombstones []*kgo.Record
	for _, r := range scanned {
		p, e, owned, ok, open, err := s.lookupOpen(r.key)
		if err != nil {
			return nil, nil, err
		}
		if owned && ok && !open && e.sameDue(r.e) {
			kept = append(kept, r)
			tombstones = append(tombstones, s.record(s.cfg.Topic, r.key, p, nil))
		}
	}
	if len(tombstones) == 0 {
		return noWait, nil, nil
	}
	s.mu.Lock()
	for _, r := range kept {
		s.sending[r.e.partition]++
	}
	s.mu.Unlock()
	wait, err := s.cfg.Producer.Add(ctx, tombstones, nil)
	if err != nil {
		s.sent(kept)
		return nil, nil, err
	}
	return wait, kept, nil
}

// sent ends what addTombstones counted as sending.
func (s *Store[T]) sent(kept []kv) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range kept {
		s.sending[r.e.partition]--
	}
}

// forgetPruned deletes locally the records whose tombstones committed,
// unless they changed meanwhile; a write that changed one since puts back,
// should it abort, nothing.
func (s *Store[T]) forgetPruned(pruned []kv) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range pruned {
		key, p := r.key, r.e.partition
		if !s.owned[p] {
			continue
		}
		k := dbKey(s.prefix, p, key)
		e, ok := s.recent.get(key)
		if !ok {
			if v, closer, err := s.db.db.Get(k); err == nil { // else gone already
				e, err = decodeEntry(p, v)
				closer.Close()
				ok = err == nil
			}
		}
		if ok && e.sameDue(r.e) { // not changed meanwhile
			delete(s.recent.young, key)
			delete(s.recent.old, key)
			if err := s.db.db.Delete(k, pebble.NoSync); err != nil {
				return fmt.Errorf("local state: %w", err)
			}
		} else if u := s.undo[key]; u != nil && u.existed && u.before.sameDue(r.e) {
			// Changed by a write that opened after the tombstone committed:
			// should it abort, the key holds nothing.
			u.before, u.existed = entry{}, false
		}
	}
	return nil
}

func stripe(key string) uint8 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return uint8(h.Sum32())
}

// SharesLock reports whether keys a and b share one of a store's lock
// stripes, so that a write of one waits for a write of the other: what a
// test of a repository on the store needs to hold one up with the other.
func SharesLock(a, b string) bool { return stripe(a) == stripe(b) }

package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// DB is the local database in which a process's stores keep the records
// of the partitions they own: Pebble, so that an instance's memory is
// bounded by Pebble's caches, not by the records it holds, which live on
// local disk. It is a cache of the changelogs, as a Kafka Streams state
// store is: emptied when opened, rebuilt from Kafka on every assignment,
// and written without a log of its own (the changelog is that log), so
// losing it loses nothing.
type DB struct {
	db  *pebble.DB
	dir string // removed by Close; "" in memory
}

// Sizes of what a DB holds in memory: its block cache, and up to two
// memtables being written or flushed.
const (
	dbCache    = 16 << 20
	dbMemTable = 4 << 20
)

// OpenDB opens an empty DB in a new directory under parent (the system's
// temporary directory if ""), which Close removes; with inMemory, a DB in
// memory, for tests.
func OpenDB(parent, name string, inMemory bool) (*DB, error) {
	cache := pebble.NewCache(dbCache)
	defer cache.Unref()
	opts := &pebble.Options{Cache: cache, MemTableSize: dbMemTable, DisableWAL: true, Logger: quietPebble{}}
	for i := range opts.Levels {
		// A key absent from a table (a new saga, a new order) is told by
		// its filter, in memory, without reading the table.
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	d := &DB{}
	dir := ""
	if inMemory {
		opts.FS = vfs.NewMem()
	} else {
		removeAbandoned(parent, name)
		var err error
		if dir, err = os.MkdirTemp(parent, name+"-"); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
		d.dir = dir
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		if d.dir != "" {
			os.RemoveAll(d.dir)
		}
		return nil, fmt.Errorf("open the local state in %q: %w", dir, err)
	}
	d.db = db
	return d, nil
}

// abandonedAfter is how old the lock of a directory nobody holds must be
// for removeAbandoned to remove it: a younger one may be that of a DB
// being opened.
const abandonedAfter = time.Minute

// removeAbandoned removes the directories under parent of the DBs called
// name that no process holds: those of instances that were killed before
// they could remove their own. Pebble holds a lock on its directory while
// it is open; one whose lock is free is abandoned.
func removeAbandoned(parent, name string) {
	if parent == "" {
		parent = os.TempDir()
	}
	dirs, _ := filepath.Glob(filepath.Join(parent, name+"-*"))
	for _, dir := range dirs {
		lock := filepath.Join(dir, "LOCK")
		if info, err := os.Stat(lock); err != nil || time.Since(info.ModTime()) < abandonedAfter {
			continue
		}
		held, err := vfs.Default.Lock(lock)
		if err != nil {
			continue // open, by a live process
		}
		held.Close()
		os.RemoveAll(dir)
	}
}

// Dir is the DB's directory; "" in memory.
func (d *DB) Dir() string { return d.dir }

// Close closes the DB and removes its directory; an error names the
// local state and its directory, for the log of a stopping process.
func (d *DB) Close() error {
	err := d.db.Close()
	if d.dir != "" {
		if rerr := os.RemoveAll(d.dir); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("close the local state in %q: %w", d.dir, err)
	}
	return nil
}

// quietPebble drops Pebble's informational logging; its errors surface as
// the errors of the calls that meet them.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)           {}
func (quietPebble) Errorf(string, ...any)          {}
func (quietPebble) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

// A record's key in the DB is its store's prefix (the changelog topic and
// a zero byte), its partition (4 bytes, big-endian), then its own key, so
// that a partition's records are one range, dropped at once. Its value is
// a kind byte, then the encoded record or, archived, the archive offset,
// or, ended in a store that expires, its time (8 bytes) and the record.
const (
	kindValue    byte = 'v'
	kindArchived byte = 'a'
	kindEnded    byte = 'e'
)

func dbKey(prefix string, p int32, key string) []byte {
	return appendKey(make([]byte, 0, len(prefix)+4+len(key)), prefix, p, key)
}

func appendKey[K string | []byte](b []byte, prefix string, p int32, key K) []byte {
	b = append(b, prefix...)
	b = binary.BigEndian.AppendUint32(b, uint32(p))
	return append(b, key...)
}

// partitionRange is the range of partition p's keys: [start, end).
func partitionRange(prefix string, p int32) (start, end []byte) {
	return dbKey(prefix, p, ""), dbKey(prefix, p+1, "")
}

func encodeEntry(e entry) []byte { return appendEntry(nil, e) }

func appendEntry(b []byte, e entry) []byte {
	switch {
	case e.archived():
		return binary.BigEndian.AppendUint64(append(b, kindArchived), uint64(e.archivedAt))
	case e.endedAt > 0:
		return append(binary.BigEndian.AppendUint64(append(b, kindEnded), uint64(e.endedAt)), e.value...)
	}
	return append(append(b, kindValue), e.value...)
}

// decodeEntry reads an entry of partition p from v, which it copies.
func decodeEntry(p int32, v []byte) (entry, error) {
	switch {
	case len(v) >= 1 && v[0] == kindValue:
		return entry{value: append([]byte{}, v[1:]...), partition: p}, nil
	case len(v) == 9 && v[0] == kindArchived:
		return entry{partition: p, archivedAt: int64(binary.BigEndian.Uint64(v[1:]))}, nil
	case len(v) >= 9 && v[0] == kindEnded:
		return entry{value: append([]byte{}, v[9:]...), partition: p, endedAt: int64(binary.BigEndian.Uint64(v[1:9]))}, nil
	}
	return entry{}, fmt.Errorf("local state: an entry of %d bytes, kind %q", len(v), v[:min(len(v), 1)])
}

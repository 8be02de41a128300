package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
)

// BenchmarkRestoreOfEndedSagas: what an instance that takes over a
// partition pays for the sagas that ended within the retention. The
// changelog holds 100,000 pointers (uuid keys, as saga ids are); each
// iteration restores them all into a new store, on disk. It reports the
// restore's time per ended saga, the heap the store then holds (its DB's
// memtable and cache, whatever the number of records), and the time of a
// Range, which visits the running records only (here none), as a saga
// engine's Resume does after every assignment.
func BenchmarkRestoreOfEndedSagas(b *testing.B) {
	const ended = 100_000
	stack := devstack.StartForTest(b)
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL()}
	topic := contracts.TopicSpec{Name: "bench.sagas", Partitions: contracts.Partitions, Compacted: true}
	if err := messaging.EnsureTopics(kafka, []contracts.TopicSpec{topic}); err != nil {
		b.Fatal(err)
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(kafka.Brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	records := make([]*kgo.Record, ended)
	for i := range records {
		records[i] = &kgo.Record{Topic: topic.Name, Key: []byte(uuid.NewString()), Value: []byte{},
			Headers: []kgo.RecordHeader{{Key: contracts.HeaderArchivedAt, Value: []byte(strconv.Itoa(i))}}}
	}
	if err := client.ProduceSync(b.Context(), records...).FirstErr(); err != nil {
		b.Fatal(err)
	}

	var held uint64
	var ranged time.Duration
	for b.Loop() {
		db := diskDB(b)
		s, err := store.New(store.Config[account]{
			Topic: topic.Name, Kgo: []kgo.Opt{kgo.SeedBrokers(kafka.Brokers...)}, Producer: messaging.SyncSender{},
			Codec: nopCodec{}, Archive: &store.Archive[account]{Topic: "bench.sagas.ended", Ended: func(*account) bool { return true }},
			DB: db,
		}, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		before := heap()
		if err := s.Restore(b.Context()); err != nil {
			b.Fatal(err)
		}
		held = heap() - before
		if s.Len() != ended {
			b.Fatalf("restored %d pointers, want %d", s.Len(), ended)
		}
		start := time.Now()
		if err := s.Range(func(string, *account) bool { b.Fatal("Range visited an ended saga"); return false }); err != nil {
			b.Fatal(err)
		}
		ranged += time.Since(start)
		runtime.KeepAlive(s)
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/ended, "ns/ended-saga")
	b.ReportMetric(float64(held)/(1<<20), "MB-held")
	b.ReportMetric(float64(ranged.Microseconds())/float64(b.N), "µs/range")
}

// diskDB is a DB on disk, as a process's, under the test's directory.
func diskDB(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.OpenDB(tb.TempDir(), "bench", false)
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// heap is the live heap after a collection.
func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// nopCodec never runs: the benchmark restores pointers only.
type nopCodec struct{}

func (nopCodec) Encode(*account) ([]byte, error) { return nil, fmt.Errorf("not used") }
func (nopCodec) Decode([]byte) (*account, error) { return nil, fmt.Errorf("not used") }

// discardSender drops what it is sent, so the benchmarks measure the store
// and its codec, not Kafka.
type discardSender struct{}

func (discardSender) Add(_ context.Context, _ []*kgo.Record, over func(bool)) (func() error, error) {
	if over != nil {
		over(true)
	}
	return func() error { return nil }, nil
}
func (discardSender) AddAcked(_ context.Context, _ []*kgo.Record, then func() []*kgo.Record, over func(bool)) (func() error, error) {
	then()
	if over != nil {
		over(true)
	}
	return func() error { return nil }, nil
}
func (discardSender) Epoch() uint64 { return 0 }

// benchStore is a store of accounts, with the real Avro codec, that owns
// every partition of an empty changelog and sends nowhere.
func benchStore(b testing.TB) *customers {
	b.Helper()
	c := newChangelog(b, contracts.Partitions)
	s, err := serde.New(srclient.NewSchemaRegistryClient(c.kafka.SchemaRegistryURL), serde.Config{AutoRegister: true}, &account{})
	if err != nil {
		b.Fatal(err)
	}
	codec, err := store.AvroCodec[account](s, c.topic)
	if err != nil {
		b.Fatal(err)
	}
	db := diskDB(b)
	b.Cleanup(func() { db.Close() })
	st, err := store.New(store.Config[account]{
		Topic: c.topic, Kgo: []kgo.Opt{kgo.SeedBrokers(c.kafka.Brokers...)}, Producer: discardSender{}, Codec: codec, DB: db,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Restore(b.Context()); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkUpdate: a handler changes a record, as a participant does for
// each command: read, decode, change, encode, send, keep.
func BenchmarkUpdate(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		err := s.Update(ctx, "c"+strconv.Itoa(i%1000), func(v *account, _ bool) error {
			v.CreditLimit++
			v.Name = "customer"
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet: a record is read and decoded.
func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	if err := s.Update(context.Background(), "c1", func(v *account, _ bool) error { v.Name = "customer"; return nil }); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := s.Get("c1"); err != nil || !ok {
			b.Fatalf("get c1: %v %v", ok, err)
		}
	}
}

// BenchmarkGetOfAnArchivedRecord: an ended record is read from the
// archive topic, as a GET of an ended saga reads it.
func BenchmarkGetOfAnArchivedRecord(b *testing.B) {
	c := newArchivingChangelog(b)
	s := c.restored(b)
	closed := customer("closed-1", 200)
	closed.Name = "closed"
	update(b, s, "closed-1", set(closed))
	b.ReportAllocs()
	for b.Loop() {
		if got := mustGet(b, s, "closed-1"); got.Name != "closed" {
			b.Fatalf("got %+v", got)
		}
	}
}

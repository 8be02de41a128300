package store_test

import (
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
)

// BenchmarkRestoreOfEndedSagas: what an instance that takes over a
// partition pays for the sagas that ended within the retention. The
// changelog holds 100,000 pointers (uuid keys, as saga ids are); each
// iteration restores them all into a new store. It reports the restore's
// time and the heap the store holds per ended saga.
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
	for b.Loop() {
		s, err := store.New(store.Config[account]{
			Topic: topic.Name, Kgo: []kgo.Opt{kgo.SeedBrokers(kafka.Brokers...)}, Producer: messaging.SyncSender{},
			Codec: nopCodec{}, Archive: &store.Archive[account]{Topic: "bench.sagas.ended", Ended: func(*account) bool { return true }},
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
		runtime.KeepAlive(s)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/ended, "ns/ended-saga")
	b.ReportMetric(float64(held)/ended, "B/ended-saga")
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

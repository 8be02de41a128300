package messaging_test

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
)

// A dead letter, as the router writes it, goes back to the partition of
// the topic it came from, with its key, value, own headers and the time of
// the message it stands for, the dlq_* headers replaced by where it was
// replayed from.
func TestReplayDeadLetter(t *testing.T) {
	t.Parallel()
	const origin = "replay.origin"
	cfg := startKafka(t, contracts.TopicSpec{Name: contracts.TopicDeadLetter, Partitions: 4},
		contracts.TopicSpec{Name: origin, Partitions: 4})
	// The message's: older than the letter, within the topic's retention.
	written := time.Now().Add(-2 * time.Hour).Truncate(time.Millisecond)
	own := []kgo.RecordHeader{{Key: contracts.HeaderPartitionKey, Value: []byte("k1")}, {Key: "saga_id", Value: []byte("s1")}}
	dead := produce(t, cfg, &kgo.Record{Topic: contracts.TopicDeadLetter, Partition: 0, Key: []byte("k1"), Value: []byte("payload"),
		Headers: append(append([]kgo.RecordHeader{}, own...),
			kgo.RecordHeader{Key: contracts.HeaderDeadLetterTopic, Value: []byte(origin)},
			kgo.RecordHeader{Key: contracts.HeaderDeadLetterPartition, Value: []byte("3")}, // not where k1 hashes to
			kgo.RecordHeader{Key: contracts.HeaderDeadLetterOffset, Value: []byte("41")},
			kgo.RecordHeader{Key: contracts.HeaderDeadLetterTimestamp, Value: []byte(strconv.FormatInt(written.UnixMilli(), 10))},
			kgo.RecordHeader{Key: contracts.HeaderDeadLetterHandler, Value: []byte("h")},
			kgo.RecordHeader{Key: contracts.HeaderDeadLetterError, Value: []byte("poison message: boom")})})[0]

	got, err := messaging.ReplayDeadLetter(t.Context(), cfg, dead.Partition, dead.Offset)
	if err != nil {
		t.Fatalf("replay %d/%d: %v", dead.Partition, dead.Offset, err)
	}
	// Where its key hashes to, where its consumers own it: a producer that
	// partitioned it otherwise had it dead-lettered.
	hashed := store.PartitionOf("k1", 4)
	if want := (messaging.Replayed{Topic: origin, Partition: hashed, Offset: 0}); got != want {
		t.Errorf("replayed to: got %+v, want %+v", got, want)
	}
	replayed := readUntil(t, cfg, origin, func(rs []*kgo.Record) bool { return len(rs) > 0 })[0]
	wantHeaders := append(own, kgo.RecordHeader{Key: contracts.HeaderReplayedFrom, Value: fmt.Appendf(nil, "deadletter/%d/%d", dead.Partition, dead.Offset)})
	if replayed.Partition != hashed || string(replayed.Key) != "k1" || string(replayed.Value) != "payload" || !reflect.DeepEqual(replayed.Headers, wantHeaders) {
		t.Errorf("replayed record: got%s, want on partition %d, key k1, value payload, headers %v", describe([]*kgo.Record{replayed}), hashed, wantHeaders)
	}
	if !replayed.Timestamp.Equal(written) {
		t.Errorf("replayed record's time: got %s, want the message's, %s", replayed.Timestamp, written)
	}

	// A record that had no key is keyed by its topic in the dead-letter
	// topic, with the partition_key header of that key, and goes back
	// keyless, without that header, to the partition it came from.
	from := (store.PartitionOf(origin, 4) + 1) % 4 // not where its dead letter's key hashes to
	keyless := produce(t, cfg, &kgo.Record{Topic: contracts.TopicDeadLetter, Partition: 0, Key: []byte(origin), Value: []byte("keyless"),
		Headers: []kgo.RecordHeader{{Key: contracts.HeaderPartitionKey, Value: []byte(origin)},
			{Key: contracts.HeaderDeadLetterTopic, Value: []byte(origin)},
			{Key: contracts.HeaderDeadLetterPartition, Value: []byte(strconv.Itoa(int(from)))}}})[0]
	if got, err := messaging.ReplayDeadLetter(t.Context(), cfg, keyless.Partition, keyless.Offset); err != nil || got.Partition != from {
		t.Errorf("replay of a keyless record: got %+v, %v, want partition %d, where it came from", got, err, from)
	}
	// A letter that does not say when its message was written is replayed
	// as old as the letter.
	for _, r := range readUntil(t, cfg, origin, func(rs []*kgo.Record) bool { return len(rs) > 1 }) {
		if string(r.Value) != "keyless" {
			continue
		}
		if !r.Timestamp.Equal(keyless.Timestamp.Truncate(time.Millisecond)) {
			t.Errorf("replayed keyless record's time: got %s, want its letter's, %s", r.Timestamp, keyless.Timestamp)
		}
		if wantHeaders := []kgo.RecordHeader{{Key: contracts.HeaderReplayedFrom, Value: fmt.Appendf(nil, "deadletter/%d/%d", keyless.Partition, keyless.Offset)}}; r.Key != nil || !reflect.DeepEqual(r.Headers, wantHeaders) {
			t.Errorf("replayed keyless record: got key %q, headers %v; want no key, headers %v", r.Key, r.Headers, wantHeaders)
		}
	}
}

func TestReplayDeadLetterRefuses(t *testing.T) {
	t.Parallel()
	cfg := startKafka(t, contracts.TopicSpec{Name: contracts.TopicDeadLetter, Partitions: 2})
	noOrigin := produce(t, cfg, &kgo.Record{Topic: contracts.TopicDeadLetter, Partition: 0, Key: []byte("k"), Value: []byte("v")})[0]
	noValue := produce(t, cfg, &kgo.Record{Topic: contracts.TopicDeadLetter, Partition: 0, Key: []byte("k"),
		Headers: []kgo.RecordHeader{{Key: contracts.HeaderDeadLetterTopic, Value: []byte("anywhere")},
			{Key: contracts.HeaderDeadLetterValueBytes, Value: []byte("2097152")}}})[0]
	noKey := produce(t, cfg, &kgo.Record{Topic: contracts.TopicDeadLetter, Partition: 0, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: contracts.HeaderDeadLetterTopic, Value: []byte("anywhere")},
			{Key: contracts.HeaderDeadLetterKeyBytes, Value: []byte("614400")}}})[0]
	cutHeaders := produce(t, cfg, &kgo.Record{Topic: contracts.TopicDeadLetter, Partition: 0, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: contracts.HeaderDeadLetterTopic, Value: []byte("anywhere")},
			{Key: contracts.HeaderDeadLetterHeaderBytes, Value: []byte("972800")}}})[0]

	// A record of an aborted transaction is in the log, but no dead letter.
	txn := kgoClient(t, cfg, kgo.TransactionalID("replay-test"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	aborted := &kgo.Record{Topic: contracts.TopicDeadLetter, Partition: 1, Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: contracts.HeaderDeadLetterTopic, Value: []byte("anywhere")}}}
	if err := txn.ProduceSync(t.Context(), aborted).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txn.EndTransaction(t.Context(), kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name      string
		partition int32
		offset    int64
		want      error
	}{
		{"an offset not written yet", 0, cutHeaders.Offset + 1, messaging.ErrNoDeadLetter},
		{"a partition the topic lacks", 7, 0, messaging.ErrNoDeadLetter},
		{"an aborted record", 1, aborted.Offset, messaging.ErrNoDeadLetter},
		{"a record that does not say where it came from", 0, noOrigin.Offset, messaging.ErrNotReplayable},
		{"a record whose value was too large to keep", 0, noValue.Offset, messaging.ErrNotReplayable},
		{"a record whose key was too large to keep", 0, noKey.Offset, messaging.ErrNotReplayable},
		{"a record whose headers were too large to keep", 0, cutHeaders.Offset, messaging.ErrNotReplayable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := messaging.ReplayDeadLetter(t.Context(), cfg, tt.partition, tt.offset)
			if !errors.Is(err, tt.want) {
				t.Errorf("replay %d/%d: got error %v, want %v", tt.partition, tt.offset, err, tt.want)
			}
		})
	}
}

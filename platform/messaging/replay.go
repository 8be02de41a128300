package messaging

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
)

// ErrNoDeadLetter means the dead-letter topic holds no committed record at
// the partition and offset asked for: there is none yet, retention removed
// it, or its transaction was aborted.
var ErrNoDeadLetter = errors.New("no such dead letter")

// ErrNotReplayable means a dead letter does not say where it came from (no
// dlq_topic header), so it cannot be sent back there, or lacks its value,
// too large to keep (dlq_value_bytes).
var ErrNotReplayable = errors.New("not replayable")

// Replayed is where a replayed dead letter was published.
type Replayed struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// replayReadTimeout bounds the read of the dead letter, which lies below
// the partition's committed end: a fetch returns it at once.
const replayReadTimeout = 10 * time.Second

// ReplayDeadLetter publishes the committed record at partition and offset
// of contracts.TopicDeadLetter again, to the topic it was consumed from
// (its dlq_topic header) and the partition its key hashes to (murmur2, as
// every consumer here owns its keys; a record that a producer partitioned
// otherwise, dead-lettered as on another instance's partition, goes where
// it belongs), or, if its original had no key, the one it came from
// (dlq_partition), with its key, value and headers but the dlq_* ones, and
// a HeaderReplayedFrom header "deadletter/<partition>/<offset>".
// Its consumers then handle it as any other message: they are idempotent,
// so a replay of a message handled meanwhile changes nothing.
//
// The record is written without a transaction, since it belongs to no
// partition this instance owns, once and acknowledged by every in-sync
// replica (an idempotent producer).
func ReplayDeadLetter(ctx context.Context, cfg config.Kafka, partition int32, offset int64) (Replayed, error) {
	opts, err := KgoOptions(cfg)
	if err != nil {
		return Replayed{}, err
	}
	client, err := kgo.NewClient(append(opts,
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // an aborted record is followed by its marker: not found, rather than a wait
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{contracts.TopicDeadLetter: {partition: kgo.NewOffset().At(offset)}}),
		kgo.RecordPartitioner(toOrigin()),
	)...)
	if err != nil {
		return Replayed{}, fmt.Errorf("kafka client: %w", err)
	}
	defer client.Close()

	dead, err := readDeadLetter(ctx, client, partition, offset)
	if err != nil {
		return Replayed{}, err
	}
	// As old as the message it stands for, or, for a letter written
	// without its time, as the letter.
	rec := &kgo.Record{Key: dead.Key, Value: dead.Value, Partition: -1, Timestamp: dead.Timestamp}
	from := int32(-1)
	for _, h := range dead.Headers {
		switch {
		case h.Key == contracts.HeaderDeadLetterValueBytes, h.Key == contracts.HeaderDeadLetterKeyBytes, h.Key == contracts.HeaderDeadLetterHeaderBytes:
			return Replayed{}, fmt.Errorf("dead letter %d/%d is %w: its %s (%s bytes) was too large to keep; it is at the dlq_offset of its dlq_topic until that topic's retention",
				partition, offset, ErrNotReplayable, strings.TrimSuffix(strings.TrimPrefix(h.Key, "dlq_"), "_bytes"), h.Value)
		case h.Key == contracts.HeaderDeadLetterTopic:
			rec.Topic = string(h.Value)
		case h.Key == contracts.HeaderDeadLetterTimestamp:
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && ms > 0 {
				rec.Timestamp = time.UnixMilli(ms)
			}
		case h.Key == contracts.HeaderDeadLetterPartition:
			if p, err := strconv.ParseInt(string(h.Value), 10, 32); err == nil && p >= 0 {
				from = int32(p)
			}
		}
		if !slices.Contains(contracts.DeadLetterHeaders, h.Key) {
			rec.Headers = append(rec.Headers, h)
		}
	}
	if rec.Topic == "" || rec.Topic == contracts.TopicDeadLetter {
		return Replayed{}, fmt.Errorf("dead letter %d/%d is %w: its %s header names no topic it came from",
			partition, offset, ErrNotReplayable, contracts.HeaderDeadLetterTopic)
	}
	if len(rec.Key) == 0 || string(rec.Key) == rec.Topic {
		// Its original had no key (the dead letter is keyed by its topic,
		// and says so in a partition_key header): back where it was, as
		// it was.
		rec.Key, rec.Partition = nil, from
		rec.Headers = slices.DeleteFunc(rec.Headers, func(h kgo.RecordHeader) bool {
			return h.Key == contracts.HeaderPartitionKey && string(h.Value) == rec.Topic
		})
	}
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: contracts.HeaderReplayedFrom,
		Value: fmt.Appendf(nil, "%s/%d/%d", contracts.TopicDeadLetter, partition, offset)})
	if err := client.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return Replayed{}, fmt.Errorf("replay dead letter %d/%d to %s: %w", partition, offset, rec.Topic, err)
	}
	return Replayed{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}, nil
}

// readDeadLetter returns the committed record at partition and offset of
// the dead-letter topic, which client consumes from there.
func readDeadLetter(ctx context.Context, client *kgo.Client, partition int32, offset int64) (*kgo.Record, error) {
	notFound := fmt.Errorf("%w at partition %d, offset %d of %s", ErrNoDeadLetter, partition, offset, contracts.TopicDeadLetter)
	adm := kadm.NewClient(client)
	starts, err := adm.ListStartOffsets(ctx, contracts.TopicDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", contracts.TopicDeadLetter, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, contracts.TopicDeadLetter) // the last stable offsets
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", contracts.TopicDeadLetter, err)
	}
	start, ok1 := starts.Lookup(contracts.TopicDeadLetter, partition)
	end, ok2 := ends.Lookup(contracts.TopicDeadLetter, partition)
	if !ok1 || !ok2 || start.Err != nil || end.Err != nil {
		if err := errors.Join(start.Err, end.Err); err != nil && ok1 && ok2 {
			return nil, fmt.Errorf("list offsets of %s partition %d: %w", contracts.TopicDeadLetter, partition, err)
		}
		return nil, notFound // no such partition
	}
	if offset < start.Offset || offset >= end.Offset {
		return nil, notFound
	}
	ctx, cancel := context.WithTimeout(ctx, replayReadTimeout)
	defer cancel()
	for {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read dead letter %d/%d: %w", partition, offset, ctx.Err())
		}
		if err := fetches.Err(); err != nil {
			return nil, fmt.Errorf("read dead letter %d/%d: %w", partition, offset, err)
		}
		for _, r := range fetches.Records() {
			if r.Offset != offset || r.Attrs.IsControl() {
				return nil, notFound // aborted, or a transaction marker
			}
			return r, nil
		}
	}
}

// toOrigin puts a record on its Partition, or, when that is -1, where its
// key hashes to (murmur2, as the project's producers and Kafka's Java
// client place keyed records).
func toOrigin() kgo.Partitioner {
	byKey := kgo.StickyKeyPartitioner(nil)
	return kgo.BasicConsistentPartitioner(func(topic string) func(*kgo.Record, int) int {
		hashed := byKey.ForTopic(topic)
		return func(r *kgo.Record, n int) int {
			if r.Partition >= 0 && int(r.Partition) < n {
				return int(r.Partition)
			}
			return hashed.Partition(r, n)
		}
	})
}

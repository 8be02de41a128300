package console

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Of what one fetch brings, the archive's records come after the state
// topic's, whatever order the broker answered in.
func TestInOrderPutsTheLaterTopicsLast(t *testing.T) {
	part := func(topic string, partition int32) kgo.FetchTopic {
		return kgo.FetchTopic{Topic: topic, Partitions: []kgo.FetchPartition{{Partition: partition}}}
	}
	fetches := kgo.Fetches{
		{Topics: []kgo.FetchTopic{part("s.ended", 0), part("s", 0)}},
		{Topics: []kgo.FetchTopic{part("s.ended", 1), part("dead", 0), part("s", 1)}},
	}
	var got []string
	inOrder(fetches, func(topic string) bool { return topic == "s.ended" }, func(p kgo.FetchTopicPartition) {
		got = append(got, p.Topic)
	})
	if want := []string{"s", "dead", "s", "s.ended", "s.ended"}; !slices.Equal(got, want) {
		t.Errorf("partitions visited: got %q, want %q", got, want)
	}
}

// Retention that deletes what was left of a partition to read after the
// reader listed its offsets, before it reached them (an idle dead-letter
// partition, a rarely used archive), leaves no record to wait for: the
// reader is caught up all the same, once it sees the partition's start
// past what it awaited.
func TestCaughtUpOnceRetentionDeletedWhatWasLeftToRead(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "dead"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.ProduceSync(t.Context(), &kgo.Record{Topic: "dead", Value: []byte("letter")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	from := func(topic string, start, end int64) int64 {
		// Retention runs between the listing and the first fetch.
		deleted, err := kadm.NewClient(client).DeleteRecords(t.Context(), kadm.Offsets{topic: {0: {Topic: topic, At: end}}})
		if err == nil {
			err = deleted.Error()
		}
		if err != nil {
			t.Error(err)
		}
		return start
	}
	ctx, cancel := context.WithCancel(t.Context())
	caught, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- follow(ctx, opts, []string{"dead"}, from, func(string) bool { return false },
			func(*kgo.Record) error { return nil }, func() { close(caught) },
			func(msg string, args ...any) { t.Log(append([]any{msg}, args...)...) })
	}()
	select {
	case <-caught:
	case <-time.After(30 * time.Second):
		t.Error("not caught up within 30 s of its partition's records deleted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

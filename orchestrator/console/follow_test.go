package console

import (
	"slices"
	"testing"

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

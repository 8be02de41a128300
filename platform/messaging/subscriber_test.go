package messaging_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

const subscriberTopic = "subscriber.test"

// publishKeyed publishes one message per key, in order, in one call, each
// carrying its key as payload; all land on the topic's one partition.
func publishKeyed(t *testing.T, k config.Kafka, keys ...string) {
	t.Helper()
	pub, err := messaging.NewPublisher(k, "test")
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer pub.Close()
	msgs := make([]*message.Message, len(keys))
	for i, key := range keys {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(key))
		msgs[i].Metadata.Set(contracts.HeaderPartitionKey, key[:1]) // "a1" and "a2" share key "a"
	}
	if err := pub.Publish(subscriberTopic, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func subscribe(t *testing.T, k config.Kafka, group string) (*messaging.Subscriber, <-chan *message.Message) {
	t.Helper()
	sub, err := messaging.NewSubscriber(k, group, wlog())
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ch, err := sub.Subscribe(context.Background(), subscriberTopic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return sub, ch
}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no message within 30s")
		return nil
	}
}

// A message waiting for its handler holds up the later messages of its key
// only: those of other keys in its partition are handed out meanwhile.
func TestSubscriberKeepsTheOrderOfAKeyNotOfAPartition(t *testing.T) {
	t.Parallel()
	k := startKafka(t, contracts.TopicSpec{Name: subscriberTopic, Partitions: 1})
	var others []string // of keys b, c, d...
	for i := range 24 {
		others = append(others, string(rune('b'+i))+"1")
	}
	publishKeyed(t, k, append([]string{"a1", "a2"}, others...)...)
	_, ch := subscribe(t, k, "keys")

	var a1 *message.Message
	for range 1 + len(others) { // all but a2, which waits for a1
		m := receive(t, ch)
		switch string(m.Payload) {
		case "a1":
			a1 = m // not acked yet
		case "a2":
			t.Fatal("a2 was handed out before a1 was acked")
		default:
			m.Ack()
		}
	}
	a1.Ack()
	if m := receive(t, ch); string(m.Payload) != "a2" {
		t.Fatalf("after a1's ack got %q, want a2", m.Payload)
	}
}

// The committed offset stops at the oldest message not acked, however many
// after it are: a consumer that takes over gets it again.
func TestSubscriberCommitsNoFurtherThanTheOldestUnacked(t *testing.T) {
	t.Parallel()
	k := startKafka(t, contracts.TopicSpec{Name: subscriberTopic, Partitions: 1})
	publishKeyed(t, k, "a1", "b1")

	sub, ch := subscribe(t, k, "commits")
	for range 2 {
		if m := receive(t, ch); string(m.Payload) == "b1" {
			m.Ack() // a1 never is
		}
	}
	// Whether b1's ack was marked before Close or not, the commit must not
	// pass a1, which precedes it.
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	sub, ch = subscribe(t, k, "commits")
	got := map[string]bool{}
	for range 2 {
		m := receive(t, ch)
		got[string(m.Payload)] = true
		m.Ack()
	}
	if !got["a1"] || !got["b1"] {
		t.Fatalf("redelivered %v, want a1 and b1", got)
	}
	waitCommitted(t, k, "commits", 2)
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	publishKeyed(t, k, "c1")
	_, ch = subscribe(t, k, "commits")
	if m := receive(t, ch); string(m.Payload) != "c1" {
		t.Fatalf("after both were acked got %q, want c1", m.Payload)
	}
}

// waitCommitted waits until group's committed offset of the topic's
// partition 0 reaches want.
func waitCommitted(t *testing.T, k config.Kafka, group string, want int64) {
	t.Helper()
	adm := kadm.NewClient(kgoClient(t, k))
	deadline := time.Now().Add(30 * time.Second)
	for {
		offsets, err := adm.FetchOffsets(t.Context(), group)
		if err == nil {
			if o, ok := offsets.Lookup(subscriberTopic, 0); ok && o.At >= want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s did not commit offset %d within 30s (last error: %v)", group, want, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

package messaging_test

import (
	"cmp"
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// Watermill's universal Pub/Sub suite, run against our publisher and
// subscriber settings on the embedded broker, so that a change of broker,
// client or settings that breaks delivery shows here first.
func TestPubSub(t *testing.T) {
	if testing.Short() {
		t.Skip("the universal Pub/Sub suite takes several seconds")
	}
	t.Parallel()
	k := &suiteKafka{kafka: startKafka(t), partitions: contracts.Partitions, created: map[string]bool{}}
	tests.TestPubSub(t, tests.Features{
		ConsumerGroups:      true,
		ExactlyOnceDelivery: false,
		GuaranteedOrder:     false, // keys spread the suite's messages over the partitions
		Persistent:          true,
		ForceShort:          true, // hundreds of messages, not thousands: enough to show a broken client
	}, k.pubSub, k.pubSubInGroup)
}

// The ordering tests of the suite, with every message under one key: the
// order Kafka and our Subscriber keep is that of a key.
func TestPubSubOrdered(t *testing.T) {
	if testing.Short() {
		t.Skip("the universal Pub/Sub suite takes several seconds")
	}
	t.Parallel()
	k := &suiteKafka{kafka: startKafka(t), partitions: contracts.Partitions, key: "one key", created: map[string]bool{}}
	features := tests.Features{
		ConsumerGroups:                      true,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
		ForceShort:                          true,
	}
	for name, test := range map[string]func(*testing.T, tests.TestContext, tests.PubSubConstructor){
		"TestPublishSubscribeInOrder": tests.TestPublishSubscribeInOrder,
		"TestNoAck":                   tests.TestNoAck,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, tests.TestContext{TestID: tests.NewTestID(), Features: features}, k.pubSub)
		})
	}
}

// suiteKafka builds publishers and subscribers for the suite. The suite
// publishes to topics of its own naming, which must be created first (as in
// production, nothing creates a topic on first use), and its messages carry
// no partition key, which our marshaler requires.
type suiteKafka struct {
	kafka      config.Kafka
	partitions int32
	key        string // of every message; empty: each message's UUID

	mu      sync.Mutex
	created map[string]bool
}

func (k *suiteKafka) ensure(topic string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.created[topic] {
		return nil
	}
	if err := messaging.EnsureTopics(k.kafka, []contracts.TopicSpec{{Name: topic, Partitions: k.partitions}}); err != nil {
		return err
	}
	k.created[topic] = true
	return nil
}

var notInClientID = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// pubSub names the consumer group after the suite test, so every subscriber
// the test makes shares it, as the suite expects of consumer groups.
func (k *suiteKafka) pubSub(t *testing.T) (message.Publisher, message.Subscriber) {
	return k.pubSubInGroup(t, notInClientID.ReplaceAllString(t.Name(), "_"))
}

func (k *suiteKafka) pubSubInGroup(t *testing.T, group string) (message.Publisher, message.Subscriber) {
	pub, err := messaging.NewPublisher(k.kafka, "suite")
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	sub := &groupSubscriber{kafka: k, group: group, byTopic: map[string]*messaging.Subscriber{}}
	// The suite leaves some subscribers open; they must not outlive the broker.
	t.Cleanup(func() {
		_ = pub.Close()
		_ = sub.Close()
	})
	return keyingPublisher{pub, k}, sub
}

// keyingPublisher keys each message by its UUID, or all by the suite's key.
type keyingPublisher struct {
	message.Publisher
	kafka *suiteKafka
}

func (p keyingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.kafka.ensure(topic); err != nil {
		return err
	}
	keyed := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		keyed[i] = m.Copy() // the suite keeps and compares the messages it publishes
		keyed[i].SetContext(m.Context())
		keyed[i].Metadata.Set(contracts.HeaderPartitionKey, cmp.Or(p.kafka.key, m.UUID))
	}
	return p.Publisher.Publish(topic, keyed...)
}

// groupSubscriber consumes each topic in a group of its own, named after
// the group and the topic. In one group, a member holding a message nobody
// reads (TestTopic reads its two topics one after the other) keeps the
// group rebalancing, and the other topic waiting, until sarama's rebalance
// timeout of 60s ends it.
type groupSubscriber struct {
	kafka *suiteKafka
	group string

	mu      sync.Mutex
	byTopic map[string]*messaging.Subscriber
}

func (s *groupSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := s.kafka.ensure(topic); err != nil {
		return nil, err
	}
	s.mu.Lock()
	sub, ok := s.byTopic[topic]
	if !ok {
		var err error
		if sub, err = messaging.NewSubscriber(s.kafka.kafka, s.group+"."+topic, wlog()); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.byTopic[topic] = sub
	}
	s.mu.Unlock()
	return sub.Subscribe(ctx, topic)
}

func (s *groupSubscriber) SubscribeInitialize(topic string) error { return s.kafka.ensure(topic) }

func (s *groupSubscriber) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, sub := range s.byTopic {
		errs = append(errs, sub.Close())
	}
	return errors.Join(errs...)
}

var _ message.SubscribeInitializer = (*groupSubscriber)(nil)

package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// changelog is the registry's compacted topic: one partition, written with
// acks from all in-sync replicas before anything changes in memory.
type changelog struct {
	brokers []string
	topic   string
	client  *kgo.Client
}

func openChangelog(ctx context.Context, brokers []string, topic string) (*changelog, error) {
	client, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), // every record to partition 0
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), // writes are synchronous and rare: do not wait for a batch
	)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	l := &changelog{brokers: brokers, topic: topic, client: client}
	if err := l.ensureTopic(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return l, nil
}

// ensureTopic creates the topic, or checks the one there, as Confluent's
// registry does: one partition, so that the records keep their order, and
// compacted alone, so that no schema is ever deleted (a restart would then
// hand its id out again, to another schema).
func (l *changelog) ensureTopic(ctx context.Context) error {
	compact := "compact"
	admin := kadm.NewClient(l.client)
	resp, err := admin.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, l.topic)
	if err == nil {
		err = resp.Err
	}
	if err == nil {
		return nil
	}
	if !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", l.topic, err)
	}
	topics, err := admin.ListTopics(ctx, l.topic)
	if err == nil {
		err = topics.Error()
	}
	if err != nil {
		return fmt.Errorf("describe topic %s: %w", l.topic, err)
	}
	if n := len(topics[l.topic].Partitions); n != 1 {
		return fmt.Errorf("topic %s has %d partitions: the registry's topic must have one", l.topic, n)
	}
	configs, err := admin.DescribeTopicConfigs(ctx, l.topic)
	if err != nil {
		return fmt.Errorf("describe the configs of topic %s: %w", l.topic, err)
	}
	c, err := configs.On(l.topic, nil)
	if err == nil {
		err = c.Err
	}
	if err != nil {
		return fmt.Errorf("describe the configs of topic %s: %w", l.topic, err)
	}
	for _, e := range c.Configs {
		if e.Key == "cleanup.policy" && (e.Value == nil || *e.Value != compact) {
			return fmt.Errorf("topic %s has cleanup.policy %s: the registry's topic must be compact alone, or Kafka deletes schemas whose ids messages still carry", l.topic, e.MaybeValue())
		}
	}
	return nil
}

// replay passes every record of the topic, from the beginning to the end it
// has now, to apply.
func (l *changelog) replay(ctx context.Context, apply func(key, value []byte)) error {
	ends, err := kadm.NewClient(l.client).ListEndOffsets(ctx, l.topic)
	if err != nil {
		return fmt.Errorf("list end offset of %s: %w", l.topic, err)
	}
	end, ok := ends.Lookup(l.topic, 0)
	if !ok {
		return fmt.Errorf("list end offset of %s: partition 0 missing", l.topic)
	}
	if end.Err != nil {
		return fmt.Errorf("list end offset of %s: %w", l.topic, end.Err)
	}
	if end.Offset == 0 {
		return nil
	}
	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(l.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{l.topic: {0: kgo.NewOffset().AtStart()}}),
	)
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}
	defer consumer.Close()
	for next := int64(0); next < end.Offset; {
		fetches := consumer.PollFetches(ctx)
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("read %s: %w", l.topic, errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			apply(r.Key, r.Value)
			next = r.Offset + 1
		})
	}
	return nil
}

// append writes recs and returns once all are acknowledged.
func (l *changelog) append(ctx context.Context, recs []record) error {
	krs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		krs[i] = &kgo.Record{Key: r.key, Value: r.value}
	}
	if err := l.client.ProduceSync(ctx, krs...).FirstErr(); err != nil {
		return fmt.Errorf("write to %s: %w", l.topic, err)
	}
	return nil
}

func (l *changelog) close() { l.client.Close() }

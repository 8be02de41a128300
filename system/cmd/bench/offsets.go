package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
)

func newAdmin(kafka config.Kafka) (*kadm.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Brokers...))
	if err != nil {
		return nil, fmt.Errorf("connect to kafka %v: %w", kafka.Brokers, err)
	}
	return kadm.NewClient(cl), nil
}

// systemTopics are the topics the saga phase writes to: every topic of the
// system, and no other, since a shared cluster has its own.
func systemTopics() []string {
	var names []string
	for _, t := range contracts.Topics() {
		names = append(names, t.Name)
	}
	return names
}

// endOffsets returns the end offset of every partition of topics.
func endOffsets(ctx context.Context, adm *kadm.Client, topics []string) (kadm.ListedOffsets, error) {
	offsets, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = offsets.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %v: %w", topics, err)
	}
	return offsets, nil
}

// written returns, per topic, the records written between two listings of
// end offsets.
func written(before, after kadm.ListedOffsets) map[string]int64 {
	n := map[string]int64{}
	after.Each(func(o kadm.ListedOffset) {
		prev, _ := before.Lookup(o.Topic, o.Partition)
		n[o.Topic] += o.Offset - prev.Offset
	})
	return n
}

// deleteScratch deletes the bound's topics and consumer groups, so a run on
// a shared cluster leaves nothing behind. It only warns on failure.
func deleteScratch(kafka config.Kafka, topics, groups []string, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm, err := newAdmin(kafka)
	if err != nil {
		logger.Warn("delete the bench's topics", "error", err)
		return
	}
	defer adm.Close()
	if _, err := adm.DeleteGroups(ctx, groups...); err != nil {
		logger.Warn("delete the bench's consumer groups", "groups", groups, "error", err)
	}
	if _, err := adm.DeleteTopics(ctx, topics...); err != nil {
		logger.Warn("delete the bench's topics", "topics", topics, "error", err)
	}
}

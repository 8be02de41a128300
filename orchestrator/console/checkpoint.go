package console

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/saga"
)

// A state topic holds, for every saga of the archive's retention, its
// latest record: a running state, or the pointer to its archived end. A
// start that read it from its start read a record for every saga ended
// within SAGA_RETENTION (60 million at 100 sagas a second and 7 days), to
// find the few hundred still running. So the console keeps a checkpoint
// of each partition instead, as the offsets of a consumer group of its own
// (Config.Group, committed once caught up, then every checkpointEvery and
// when Run ends, by every instance, whichever commits last): the oldest
// record that is a running saga's latest, or, with none running, where
// reading it goes on. Every saga whose records all lie before a checkpoint had
// ended when it was taken, and an ended saga never changes again: a start
// reads the partition from there, and finds every saga still running, the
// archive the ended ones. A running saga writes at each transition and
// each re-send (a minute apart at most, or STEP_TIMEOUT if longer), so the
// checkpoint trails the running sagas by about that, whatever ran before
// them. A checkpoint names its topic's id: one of a topic deleted and made
// again is not the new topic's.
const checkpointEvery = time.Minute

// topicPartition is a partition of a topic.
type topicPartition struct {
	topic     string
	partition int32
}

// read notes that reading a partition of a saga type's topic (state or
// archive) goes on at next, or further: every record before it has been
// applied.
func (c *Console) read(topic string, partition int32, next int64) {
	if !c.states[topic] && !c.ended[topic] {
		return
	}
	p := topicPartition{topic, partition}
	c.mu.Lock()
	if at, ok := c.next[p]; !ok || next > at {
		c.next[p] = next
	}
	c.mu.Unlock()
}

// placed checks that a saga read from a state topic is of a type kept in
// it: the checkpoint finds a running saga's topic by its type. One that is
// not stops the checkpoints as it is read, so the last one committed lies
// before it, and the next start reads it again.
func (c *Console) placed(v *saga.SagaInstance, topic string) {
	if c.stateOf[v.SagaType] != topic && c.misplaced.CompareAndSwap(false, true) {
		c.cfg.Logger.Error("console: a saga of a type not kept in the topic it was read from; the state topics' checkpoint is no longer kept",
			"saga_id", v.SagaID, "type", v.SagaType, "topic", topic)
	}
}

// checkpoint returns the offset a start may read each state partition
// from, with its topic's id. The positions are taken before the running
// sagas: a saga the index gets in between was read past them.
func (c *Console) checkpoint() kadm.Offsets {
	c.mu.Lock()
	next := maps.Clone(c.next)
	c.mu.Unlock()
	maps.DeleteFunc(next, func(p topicPartition, _ int64) bool { return !c.states[p.topic] })
	for k, oldest := range c.index.oldestRunning() {
		p := topicPartition{c.stateOf[k.typ], k.partition}
		if at, ok := next[p]; ok && oldest < at {
			next[p] = oldest
		}
	}
	if c.misplaced.Load() { // last: a saga read before the positions were taken has set it
		return nil
	}
	offsets := kadm.Offsets{}
	for p, at := range next {
		offsets.Add(kadm.Offset{Topic: p.topic, Partition: p.partition, At: at, LeaderEpoch: -1, Metadata: c.topicIDs[p.topic]})
	}
	return offsets
}

// keepCheckpoints commits the checkpoint and writes the stats' snapshot
// (stats.go) once the console has caught up (caught closes), then every
// checkpointEvery, and once more when ctx ends, so that a restart reads
// little, a kill within the first minute too.
func (c *Console) keepCheckpoints(ctx context.Context, client *kgo.Client, caught <-chan struct{}) {
	admin := kadm.NewClient(client)
	var ends probe
	keep := func(ctx context.Context) {
		c.commitCheckpoint(ctx, admin)
		c.probeRead(ctx, admin, &ends)
		c.saveStats(ctx, client)
	}
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-caught:
			caught = nil
			keep(ctx)
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			keep(last)
			cancel()
			return
		case <-tick.C:
			keep(ctx)
		}
	}
}

// commitCheckpoint commits the checkpoint once the console has caught
// up. Before, it may lie far behind the others' (an instance restarted
// without a checkpoint, then stopped within a second or two), and would
// set theirs back: safe, but the next start reads what they had passed.
func (c *Console) commitCheckpoint(ctx context.Context, admin *kadm.Client) {
	if c.cfg.Group == "" || !c.caughtUp.Load() {
		return
	}
	offsets := c.checkpoint()
	if len(offsets) == 0 {
		return
	}
	committed, err := admin.CommitOffsets(ctx, c.cfg.Group, offsets)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		c.cfg.Logger.Warn("console: commit the state topics' checkpoint", "group", c.cfg.Group, "error", err)
	}
}

// checkpointed returns, for a partition of a state topic that ends at end,
// its checkpoint, or 0 (its start) when it has none: none was committed,
// or it was of another topic of that name, or past the topic's end, or
// Kafka refused to tell (an ACL that does not allow the group, say). It
// asks again while the answer is an error that may pass: a start that
// read every state topic from its start because the group's coordinator
// was away would read millions of records.
func (c *Console) checkpointed(ctx context.Context, admin *kadm.Client) func(topic string, partition int32, end int64) int64 {
	none := func(string, int32, int64) int64 { return 0 }
	if c.cfg.Group == "" {
		return none
	}
	var (
		committed kadm.OffsetResponses
		topics    kadm.TopicDetails
		err       error
	)
	for {
		if topics, err = admin.ListTopics(ctx, slices.Collect(maps.Values(c.stateOf))...); err == nil {
			err = topics.Error()
		}
		if err == nil {
			committed, err = admin.FetchOffsets(ctx, c.cfg.Group)
		}
		if err == nil || errors.Is(err, kerr.GroupIDNotFound) { // never committed
			break
		}
		if ke := (*kerr.Error)(nil); errors.As(err, &ke) && !ke.Retriable { // not allowed, say
			c.cfg.Logger.Error("console: read the state topics' checkpoint; they are read from their start", "group", c.cfg.Group, "error", err)
			return none
		}
		c.cfg.Logger.Warn("console: read the state topics' checkpoint; again in a second", "group", c.cfg.Group, "error", err)
		if !pause(ctx) {
			return none
		}
	}
	c.topicIDs = map[string]string{}
	for name, t := range topics {
		c.topicIDs[name] = t.ID.String()
	}
	return func(topic string, partition int32, end int64) int64 {
		o, ok := committed.Lookup(topic, partition)
		if ok && o.Err == nil && o.Metadata == c.topicIDs[topic] && o.At <= end {
			return o.At
		}
		return 0
	}
}

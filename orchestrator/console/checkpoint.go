package console

import (
	"context"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// A state topic holds, for every saga of the archive's retention, its
// latest record: a running state, or the pointer to its archived end. A
// start that read it from its start read a record for every saga ended
// within SAGA_RETENTION (60 million at 100 sagas a second and 7 days), to
// find the few hundred still running. So the console keeps a checkpoint
// of each partition instead, as the offsets of a consumer group of its own
// (Config.Group, committed every checkpointEvery and when Run ends, by
// every instance, whichever commits last): the oldest record that is a
// running saga's latest, or, with none running, where reading it goes on.
// Every saga whose records all lie before a checkpoint had ended when it
// was taken, and an ended saga never changes again: a start reads the
// partition from there, and finds every saga still running, the archive
// the ended ones. A running saga writes at each transition and each
// re-send (a minute apart at most, or STEP_TIMEOUT if longer), so the
// checkpoint trails the running sagas by about that, whatever ran before
// them.
const checkpointEvery = time.Minute

// topicPartition is a partition of a topic.
type topicPartition struct {
	topic     string
	partition int32
}

// readTo notes that reading a partition of a state topic goes on at next:
// every record before it has been applied.
func (c *Console) readTo(p topicPartition, next int64) {
	c.mu.Lock()
	c.next[p] = next
	c.mu.Unlock()
}

// checkpoint returns the offset a start may read each state partition
// from. The positions are taken before the running sagas: a saga the index
// gets in between was read past them.
func (c *Console) checkpoint() kadm.Offsets {
	c.mu.Lock()
	next := maps.Clone(c.next)
	c.mu.Unlock()
	topics := map[string]string{} // by saga type
	for _, t := range c.cfg.Types {
		topics[t.Type] = t.StateTopic
	}
	for k, oldest := range c.index.oldestRunning() {
		topic, ok := topics[k.typ]
		if !ok {
			return nil // a saga of no type listed: where it lies is unknown
		}
		p := topicPartition{topic, k.partition}
		if at, ok := next[p]; ok && oldest < at {
			next[p] = oldest
		}
	}
	offsets := kadm.Offsets{}
	for p, at := range next {
		offsets.Add(kadm.Offset{Topic: p.topic, Partition: p.partition, At: at, LeaderEpoch: -1})
	}
	return offsets
}

// keepCheckpoints commits the checkpoint every checkpointEvery, and once
// more when ctx ends, so that a restart reads little.
func (c *Console) keepCheckpoints(ctx context.Context, admin *kadm.Client) {
	if c.cfg.Group == "" {
		return
	}
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			c.commitCheckpoint(last, admin)
			cancel()
			return
		case <-tick.C:
			c.commitCheckpoint(ctx, admin)
		}
	}
}

func (c *Console) commitCheckpoint(ctx context.Context, admin *kadm.Client) {
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
// its checkpoint: 0 (its start) when it has none, or one past its end (the
// topic was made again).
func (c *Console) checkpointed(ctx context.Context, admin *kadm.Client) func(topic string, partition int32, end int64) int64 {
	none := func(string, int32, int64) int64 { return 0 }
	if c.cfg.Group == "" {
		return none
	}
	committed, err := admin.FetchOffsets(ctx, c.cfg.Group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		c.cfg.Logger.Warn("console: read the state topics' checkpoint; they are read from their start", "group", c.cfg.Group, "error", err)
		return none
	}
	return func(topic string, partition int32, end int64) int64 {
		if o, ok := committed.Lookup(topic, partition); ok && o.Err == nil && o.At <= end {
			return o.At
		}
		return 0
	}
}

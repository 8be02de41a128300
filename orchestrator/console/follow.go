package console

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A fetch of the console's reader waits for followBytes of records, or
// followWait: a page needs no fresher data than that, and a reader that
// answered each commit at once would cost the broker a fetch for every
// saga's every transition.
const (
	followWait  = 100 * time.Millisecond
	followBytes = 1 << 20
)

// follow reads every partition of topics outside any consumer group, the
// committed records only, from where from says (given a partition's topic,
// start and end offsets) and then as they come, handing each record to
// apply in the order of its partition; of the records one fetch brings,
// those of the topics later names come after the others. caughtUp is
// called once every partition was read to the end it had when follow
// started. An apply that fails (the
// registry unreachable) is tried again until it succeeds or ctx ends.
func follow(ctx context.Context, opts []kgo.Opt, topics []string, from func(topic string, start, end int64) int64,
	later func(topic string) bool, apply func(*kgo.Record) error, caughtUp func(), logf func(msg string, args ...any),
) error {
	opts = append(slices.Clone(opts), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.FetchMaxWait(followWait), kgo.FetchMinBytes(followBytes),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())) // past retention: from the oldest left
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("console: connect: %w", err)
	}
	defer client.Close()

	var starts, ends kadm.ListedOffsets
	for {
		admin := kadm.NewClient(client)
		if starts, err = admin.ListStartOffsets(ctx, topics...); err == nil {
			err = starts.Error()
		}
		if err == nil {
			if ends, err = admin.ListEndOffsets(ctx, topics...); err == nil {
				err = ends.Error()
			}
		}
		if err == nil {
			break
		}
		logf("console: list offsets; again in a second", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	type tp struct {
		topic     string
		partition int32
	}
	want := map[tp]int64{} // the last offset to read before caught up
	consume := map[string]map[int32]kgo.Offset{}
	ends.Each(func(end kadm.ListedOffset) {
		start, _ := starts.Lookup(end.Topic, end.Partition)
		at := from(end.Topic, start.Offset, end.Offset)
		if consume[end.Topic] == nil {
			consume[end.Topic] = map[int32]kgo.Offset{}
		}
		consume[end.Topic][end.Partition] = kgo.NewOffset().At(at)
		if at < end.Offset {
			want[tp{end.Topic, end.Partition}] = end.Offset - 1
		}
	})
	client.AddConsumePartitions(consume)
	caught := false
	check := func() {
		if !caught && len(want) == 0 {
			caught = true
			caughtUp()
		}
	}
	check()
	for {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errs := fetches.Errors(); len(errs) > 0 && fetches.NumRecords() == 0 {
			logf("console: fetch; again in a second", "topic", errs[0].Topic, "partition", errs[0].Partition, "error", errs[0].Err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		var stop bool
		inOrder(fetches, later, func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				if stop {
					return
				}
				if !r.Attrs.IsControl() {
					for err := apply(r); err != nil; err = apply(r) {
						logf("console: read a record; again in a second", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "error", err)
						select {
						case <-ctx.Done():
							stop = true
							return
						case <-time.After(time.Second):
						}
					}
				}
				// A partition whose last record compaction removed ends at
				// the first record past it.
				if last, ok := want[tp{r.Topic, r.Partition}]; ok && r.Offset >= last {
					delete(want, tp{r.Topic, r.Partition})
				}
			}
		})
		if stop {
			return nil
		}
		check()
	}
}

// inOrder calls fn with each partition of fetches, those of the topics
// later names last.
func inOrder(fetches kgo.Fetches, later func(topic string) bool, fn func(kgo.FetchTopicPartition)) {
	for _, last := range []bool{false, true} {
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if later(p.Topic) == last {
				fn(p)
			}
		})
	}
}

package console

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
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

// reader says what follow reads and what it does with it.
type reader struct {
	// from says where a partition is read from, given its topic, number,
	// start and end offsets.
	from func(topic string, partition int32, start, end int64) int64
	// later names the topics whose records of a fetch come after the
	// others'; nil names none.
	later func(topic string) bool
	// apply takes each record, in the order of its partition; one that
	// fails (the registry unreachable) is tried again until it succeeds
	// or ctx ends.
	apply func(*kgo.Record) error
	// read, if not nil, says that every record of a partition before next
	// (transaction markers included) was applied, or deleted unread; it is
	// told before caughtUp is called.
	read func(topic string, partition int32, next int64)
	// caughtUp is called once, on any goroutine, when every partition was
	// read to the end it had when follow started, or retention deleted
	// what was left of it to read.
	caughtUp func()
	logf     func(msg string, args ...any)
}

// follow reads every partition of topics outside any consumer group, the
// committed records only, as r says, and then as they come.
func follow(ctx context.Context, opts []kgo.Opt, topics []string, r reader) error {
	if r.read == nil {
		r.read = func(string, int32, int64) {}
	}
	opts = append(slices.Clone(opts), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.FetchMaxWait(followWait), kgo.FetchMinBytes(followBytes),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())) // past retention: from the oldest left
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("console: connect: %w", err)
	}
	defer client.Close()

	admin := kadm.NewClient(client)
	var starts, ends kadm.ListedOffsets
	for {
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
		r.logf("console: list offsets; again in a second", "error", err)
		if !pause(ctx) {
			return nil
		}
	}
	type tp struct {
		topic     string
		partition int32
	}
	// want and caught are settled by the reader and by the listing below.
	var mu sync.Mutex
	want := map[tp]int64{} // the last offset to read before caught up
	caught := false
	consume := map[string]map[int32]kgo.Offset{}
	ends.Each(func(end kadm.ListedOffset) {
		start, _ := starts.Lookup(end.Topic, end.Partition)
		at := r.from(end.Topic, end.Partition, start.Offset, end.Offset)
		if consume[end.Topic] == nil {
			consume[end.Topic] = map[int32]kgo.Offset{}
		}
		consume[end.Topic][end.Partition] = kgo.NewOffset().At(at)
		if at < end.Offset {
			want[tp{end.Topic, end.Partition}] = end.Offset - 1
		}
	})
	check := func() { // with mu held once the listing below runs
		if !caught && len(want) == 0 {
			caught = true
			r.caughtUp()
		}
	}
	// passed says that nothing of a partition up to offset is left to
	// read. A partition whose last record compaction removed ends at the
	// first record past it.
	passed := func(topic string, partition int32, offset int64) {
		mu.Lock()
		defer mu.Unlock()
		if last, ok := want[tp{topic, partition}]; ok && offset >= last {
			delete(want, tp{topic, partition})
		}
		check()
	}
	check()
	client.AddConsumePartitions(consume)

	// Retention may delete a partition's records after the listing and
	// before the reader reaches them (an idle dead-letter partition, a
	// rarely used archive): the reader then starts at the new log start,
	// past what it awaits, and no record of it may come for days. So,
	// until caught up, the start offsets are listed again every second:
	// none of a partition's records before its start is left.
	relist, stopRelist := context.WithCancel(ctx)
	var relisting sync.WaitGroup
	defer relisting.Wait()
	defer stopRelist()
	relisting.Go(func() {
		for pause(relist) {
			mu.Lock()
			left := map[string]bool{}
			for p := range want {
				left[p.topic] = true
			}
			mu.Unlock()
			if len(left) == 0 {
				return
			}
			starts, err := admin.ListStartOffsets(relist, slices.Collect(maps.Keys(left))...)
			if err != nil {
				continue // again in a second
			}
			starts.Each(func(start kadm.ListedOffset) {
				if start.Err == nil {
					r.read(start.Topic, start.Partition, start.Offset)
					passed(start.Topic, start.Partition, start.Offset-1)
				}
			})
		}
	})

	for {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errs := fetches.Errors(); len(errs) > 0 && fetches.NumRecords() == 0 {
			r.logf("console: fetch; again in a second", "topic", errs[0].Topic, "partition", errs[0].Partition, "error", errs[0].Err)
			if !pause(ctx) {
				return nil
			}
			continue
		}
		var stop bool
		inOrder(fetches, r.later, func(p kgo.FetchTopicPartition) {
			for _, rec := range p.Records {
				if stop {
					return
				}
				if !rec.Attrs.IsControl() {
					for err := r.apply(rec); err != nil; err = r.apply(rec) {
						r.logf("console: read a record; again in a second", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "error", err)
						if !pause(ctx) {
							stop = true
							return
						}
					}
				}
			}
			if n := len(p.Records); n > 0 {
				r.read(p.Topic, p.Partition, p.Records[n-1].Offset+1) // before passed, which may call caughtUp
				passed(p.Topic, p.Partition, p.Records[n-1].Offset)
			}
		})
		if stop {
			return nil
		}
	}
}

// pause waits a second before a retry, and reports false if ctx ended
// first.
func pause(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Second):
		return true
	}
}

// inOrder calls fn with each partition of fetches, those of the topics
// later names last.
func inOrder(fetches kgo.Fetches, later func(topic string) bool, fn func(kgo.FetchTopicPartition)) {
	if later == nil {
		fetches.EachPartition(fn)
		return
	}
	for _, last := range []bool{false, true} {
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if later(p.Topic) == last {
				fn(p)
			}
		})
	}
}

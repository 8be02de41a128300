package console

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
)

// The stats count, for each minute of the last day, the sagas started,
// completed and rejected in it: derived from every saga ended in that day,
// 8.6 million at 100 sagas a second, which a start would read from the
// archives. So the console keeps a snapshot of the minutes that can no
// longer change, in the compacted topic console.stats: a minute is closed
// once the reader has read every saga record written up to statsSettle
// after its end (a saga's records carry the times of its transitions,
// and are written and committed within that of them, on clocks that agree
// within it). The reader knows what it has read by its positions: once
// caught up, it has read what was written before it listed the ends it
// caught up to; then, each minute, it lists the ends of every partition
// again (probe), and once it has read past all of them, it has read what
// was written before that listing. A start takes the closed minutes as
// they are, counts nothing into them, and reads of the archives only what
// ended from statsSettle before the first minute not closed on. Every
// instance writes its snapshot, with each checkpoint, once its stats have
// read the day: any one of them is whole, whichever comes last.
const statsSettle = 5 * time.Minute

// statsLoadWait bounds the read of the snapshot at a start; past it, the
// start reads the archives' last day, as with none.
const statsLoadWait = 10 * time.Second

// statsKey is the one key of console.stats.
const statsKey = "minutes"

// Codec encodes and decodes a record of the contracts (the process's
// serde).
type Codec interface {
	Decoder
	Encode(topic string, v serde.Record) ([]byte, error)
}

// statsFrom returns the time of the oldest saga end the stats count: the
// last day's, or statsSettle before the first minute not closed.
func (c *Console) statsFrom() time.Time {
	from := c.index.now().Add(-statsKept)
	if closed := c.index.ClosedBefore().Add(-statsSettle); closed.After(from) {
		return closed
	}
	return from
}

// loadStats takes the newest snapshot of the closed minutes, if there is
// one: the latest record of each partition of console.stats.
func (c *Console) loadStats(ctx context.Context) {
	if c.cfg.Stats == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, statsLoadWait)
	defer cancel()
	var (
		newest *contracts.ConsoleStats
		read   atomic.Bool
	)
	last := func(_ string, _ int32, start, end int64) int64 { return max(start, end-1) }
	apply := func(r *kgo.Record) error {
		if len(r.Value) == 0 {
			return nil
		}
		rec, err := c.cfg.Stats.Decode(r.Value)
		if errors.Is(err, serde.ErrUndecodable) {
			c.cfg.Logger.Error("console: skip an undecodable stats snapshot", "partition", r.Partition, "offset", r.Offset, "error", err)
			return nil
		}
		if err != nil {
			return err
		}
		if s, ok := rec.(*contracts.ConsoleStats); ok && (newest == nil || s.ClosedBefore.After(newest.ClosedBefore)) {
			newest = s
		}
		return nil
	}
	err := follow(ctx, c.cfg.Kgo, []string{contracts.TopicConsoleStats}, reader{from: last, apply: apply, caughtUp: func() {
		read.Store(true)
		cancel()
	}, logf: c.cfg.Logger.Warn})
	switch {
	case err != nil || !read.Load():
		c.cfg.Logger.Warn("console: read the stats' snapshot; the archives' last day is read", "topic", contracts.TopicConsoleStats, "error", err)
	case newest != nil:
		// Not past what this clock would close: a snapshot of a writer
		// whose clock was ahead would close the minutes still counted.
		closable := c.index.now().Add(-statsSettle).UTC().Truncate(time.Minute)
		if newest.ClosedBefore.After(closable) {
			newest.ClosedBefore = closable
		}
		c.index.takeClosed(newest)
	}
}

// probe is what the ends of the saga types' topics were at a time: once
// the reader is past all of them, it has read what was written before.
type probe struct {
	at   time.Time
	ends map[topicPartition]int64
}

// probeRead moves readAt to the time of the last probe once the reader
// has read past its ends, and takes the next probe.
func (c *Console) probeRead(ctx context.Context, admin *kadm.Client, p *probe) {
	if c.cfg.Stats == nil || !c.caughtUp.Load() {
		return
	}
	if p.ends != nil && c.readPast(p.ends) {
		c.readAt.Store(p.at.UnixMilli())
	}
	at := c.index.now()
	listed, err := admin.ListEndOffsets(ctx, slices.Concat(slices.Collect(maps.Keys(c.states)), slices.Collect(maps.Keys(c.ended)))...)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		c.cfg.Logger.Warn("console: list the ends of the saga topics; the stats close no minute until it is", "error", err)
		*p = probe{}
		return
	}
	ends := map[topicPartition]int64{}
	listed.Each(func(o kadm.ListedOffset) { ends[topicPartition{o.Topic, o.Partition}] = o.Offset })
	*p = probe{at: at, ends: ends}
}

// readPast says whether the reader has read every partition to its end in
// ends.
func (c *Console) readPast(ends map[topicPartition]int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, end := range ends {
		if c.next[p] < end {
			return false
		}
	}
	return true
}

// saveStats closes the minutes that can no longer change and writes them
// to console.stats, once the stats have read the day (statsReady): before,
// they lack what the backfill has not read.
func (c *Console) saveStats(ctx context.Context, client *kgo.Client) {
	if c.cfg.Stats == nil || !c.caughtUp.Load() || !c.statsReady.Load() {
		return
	}
	read := c.readAt.Load()
	before := time.UnixMilli(read).Add(-statsSettle).UTC().Truncate(time.Minute)
	if read == 0 || !before.After(c.index.ClosedBefore()) {
		return
	}
	snapshot := &contracts.ConsoleStats{ClosedBefore: before, Minutes: c.index.closeMinutes(before)}
	value, err := c.cfg.Stats.Encode(contracts.TopicConsoleStats, snapshot)
	if err == nil {
		err = client.ProduceSync(ctx, &kgo.Record{Topic: contracts.TopicConsoleStats, Key: []byte(statsKey), Value: value}).FirstErr()
	}
	if err != nil {
		c.cfg.Logger.Warn("console: write the stats' snapshot", "topic", contracts.TopicConsoleStats, "error", err)
	}
}

package console

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
)

// The stats count, for each minute of the last day, the sagas started,
// completed and rejected in it: derived from every saga ended in that day,
// 8.6 million at 100 sagas a second, which a start would read from the
// archives. So the console keeps a snapshot of the minutes that can no
// longer change, in the compacted topic console.stats: a minute is closed
// once the reader has read a saga record written statsSettle after its
// end (a saga's records are written, and their transaction committed,
// within that of the times they carry, and the reader reads every
// partition at once). A start takes the closed minutes as they
// are, counts nothing into them, and reads of the archives only what
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
	err := follow(ctx, c.cfg.Kgo, []string{contracts.TopicConsoleStats}, last, func(string) bool { return false }, apply, func() {
		read.Store(true)
		cancel()
	}, c.cfg.Logger.Warn)
	switch {
	case err != nil || !read.Load():
		c.cfg.Logger.Warn("console: read the stats' snapshot; the archives' last day is read", "topic", contracts.TopicConsoleStats, "error", err)
	case newest != nil:
		c.index.takeClosed(newest)
	}
}

// saveStats closes the minutes that can no longer change and writes them
// to console.stats, once the stats have read the day (statsReady): before,
// they lack what the backfill has not read.
func (c *Console) saveStats(ctx context.Context, client *kgo.Client) {
	if c.cfg.Stats == nil || !c.caughtUp.Load() || !c.statsReady.Load() {
		return
	}
	read := min(c.index.now().UnixMilli(), c.seen.Load()) // a writer's clock ahead closes nothing early
	before := time.UnixMilli(read).Add(-statsSettle).UTC().Truncate(time.Minute)
	if !before.After(c.index.ClosedBefore()) {
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

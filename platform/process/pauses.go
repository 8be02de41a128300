package process

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// pauseWatch notices that the process did not run for a while: stopped
// (SIGSTOP, a virtual machine paused) or starved of CPU. Its group may
// have given its partitions to another instance meanwhile, and it learns
// so only at its next heartbeat: until then, and for a moment after, it
// serves no key from its state, so that a request gets a 503 with
// Retry-After rather than what it held before the pause. Only a pause
// near the session timeout can cost the partitions, or, while the group
// rebalances (another instance joins or leaves), near the rebalance
// timeout: the coordinator evicts a member that sent no heartbeat for
// the one, or did not join again within the other. A gap past half the
// shorter is a pause.
type pauseWatch struct {
	start   time.Time     // the watch's clock: monotonic time since
	limit   time.Duration // a gap between ticks past it is a pause
	hold    time.Duration // how long after a pause nothing is served
	last    atomic.Int64  // the last tick, in ns since start
	suspect atomic.Int64  // nothing is served until then, in ns since start
	logger  *slog.Logger
}

func newPauseWatch(sessionTimeout time.Duration, logger *slog.Logger) *pauseWatch {
	return &pauseWatch{start: time.Now(), limit: min(sessionTimeout, messaging.RebalanceTimeout) / 2, hold: pauseHold, logger: logger}
}

// pauseHold is how long a process serves nothing after a pause: a few of
// its heartbeats (at most 300 ms apart), the first of which tells it
// whether its group went on without it.
const pauseHold = 2 * time.Second

func (w *pauseWatch) run(ctx context.Context) error {
	// From now: the time before (the look for dead peers before joining)
	// is no pause.
	w.last.Store(int64(time.Since(w.start)))
	return Every(ctx, w.limit/4, w.tick)
}

func (w *pauseWatch) tick() {
	now := int64(time.Since(w.start))
	if gap := now - w.last.Swap(now); gap > int64(w.limit) {
		w.suspect.Store(now + int64(w.hold))
		w.logger.Warn("the process did not run for a while; it serves no key from its state for a moment",
			"paused", time.Duration(gap).Round(time.Millisecond), "for", w.hold)
	}
}

// trusted reports whether the process ran without a pause lately: its
// last tick is recent, and no pause was seen within hold.
func (w *pauseWatch) trusted() bool {
	if w == nil {
		return true
	}
	now := int64(time.Since(w.start))
	return now-w.last.Load() <= int64(w.limit) && now >= w.suspect.Load()
}

package process

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// lease bounds how long the process serves the keys of its partitions
// without word from its group's coordinator. The coordinator gives a
// member's partitions to another instance only in a later generation of
// the group: one the member joins itself, after its session revoked them,
// or one without it, once it was silent for its session timeout, did not
// join within the rebalance timeout of a rebalance begun while it was a
// member, or was evicted by a peer (watchPeers: an instance whose
// advertised address refuses connections, or which advertises another's
// address; a live one only when misconfigured, and it learns at its next
// heartbeat, answered UNKNOWN_MEMBER_ID, which ends its lease). So a
// member whose heartbeat, sent at time t, the coordinator answered
// without error keeps its partitions until at least t plus the shorter of
// the two timeouts, unless a peer evicts it: its lease. Stopped (SIGSTOP),
// starved of CPU, or cut off from Kafka while its clients still reach it,
// the process serves no key from its state once the lease is over, until
// the coordinator answers again: a request gets a 503 with Retry-After,
// never what it held before. franz-go's own heartbeats would tell it later: one that
// gets no answer waits out its request's timeout (10 s) first.
type lease struct {
	start  time.Time     // the lease's clock: monotonic time since
	length time.Duration // the shorter of the session and rebalance timeouts
	every  time.Duration // how often it asks: as often as the group heartbeats
	until  atomic.Int64  // the lease's end, in ns since start
	ask    func(context.Context) error
	asked  chan struct{} // a renewal asked for (one slot)
	logger *slog.Logger
}

// newLease returns the lease of a member of a group of that session
// timeout; ask sends a heartbeat, nil when the coordinator answered it
// without error and lists the member (see messaging.Session.Heartbeat).
func newLease(sessionTimeout time.Duration, ask func(context.Context) error, logger *slog.Logger) *lease {
	return &lease{start: time.Now(), length: min(sessionTimeout, messaging.RebalanceTimeout),
		every: messaging.HeartbeatInterval(sessionTimeout), ask: ask, asked: make(chan struct{}, 1), logger: logger}
}

// run renews the lease until ctx ends: every heartbeat interval, and when
// asked (renewNow).
func (l *lease) run(ctx context.Context) error {
	tick := time.NewTicker(l.every)
	defer tick.Stop()
	held := false
	for {
		err := l.renew(ctx)
		if now := l.held(); now != held {
			held = now
			if !held {
				l.logger.Warn("the group's coordinator has not confirmed this instance as its member within the lease; the process serves no key from its state until it does",
					"lease", l.length, "last_answer", err)
			} else {
				l.logger.Info("the group's coordinator confirmed this instance as its member; the process serves its keys", "lease", l.length)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-l.asked:
		}
	}
}

// renewNow asks run for a renewal at once (an assignment: a new member
// holds no lease before its first answer).
func (l *lease) renewNow() {
	if l == nil {
		return
	}
	select {
	case l.asked <- struct{}{}:
	default:
	}
}

// renew sends a heartbeat and, answered without error, holds the lease
// until its length after the heartbeat was sent. Answered that the
// process is not the group's member, or not in its generation, it ends
// the lease at once: the group may have given its partitions away (a
// peer evicted it, its session timed out).
func (l *lease) renew(ctx context.Context) error {
	sent := int64(time.Since(l.start))
	ctx, cancel := context.WithTimeout(ctx, l.length)
	defer cancel()
	err := l.ask(ctx)
	switch {
	case err == nil:
		until := sent + int64(l.length)
		for was := l.until.Load(); was < until && !l.until.CompareAndSwap(was, until); was = l.until.Load() {
		}
	case notMember(err):
		for was := l.until.Load(); was > sent && !l.until.CompareAndSwap(was, sent); was = l.until.Load() {
		}
	}
	return err
}

// notMember reports whether a heartbeat's error says that the process is
// not the member of the group, or of the generation, it thought it was.
// (ILLEGAL_GENERATION may only mean that franz-go joined the next
// generation after the heartbeat read the last: the next heartbeat, a
// tick later, renews the lease then.)
func notMember(err error) bool {
	return errors.Is(err, messaging.ErrNotMember) || errors.Is(err, kerr.UnknownMemberID) ||
		errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.FencedInstanceID)
}

// held reports whether the lease is not over: no process without a group
// needs one.
func (l *lease) held() bool {
	return l == nil || int64(time.Since(l.start)) < l.until.Load()
}

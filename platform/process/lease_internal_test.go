package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// A lease is held from the coordinator's answer to a heartbeat until its
// length after the heartbeat was sent, and only an answer without error
// renews it.
func TestALeaseEndsItsLengthAfterTheHeartbeatTheCoordinatorAnswered(t *testing.T) {
	var answer error
	var late time.Duration // how long the answer takes, on the lease's clock
	var l *lease
	l = newLease(2*time.Second, func(context.Context) error {
		l.start = l.start.Add(-late)
		return answer
	}, slog.New(slog.DiscardHandler))
	if l.held() {
		t.Fatal("held before any answer")
	}
	l.renew(t.Context())
	if !l.held() {
		t.Fatal("not held after an answer")
	}
	l.start = l.start.Add(-2 * time.Second) // its length later
	if l.held() {
		t.Error("held its length after the heartbeat was sent")
	}
	answer = errors.New("UNKNOWN_MEMBER_ID")
	l.renew(t.Context())
	if l.held() {
		t.Error("renewed by an answer with an error")
	}
	answer, late = nil, 2*time.Second
	l.renew(t.Context())
	if l.held() {
		t.Error("held after an answer that came its length after the heartbeat was sent")
	}
	late = 0
	l.renew(t.Context())
	if !l.held() {
		t.Error("not held after an answer in time")
	}
	var none *lease
	if !none.held() {
		t.Error("a process without a group (no lease) serves nothing")
	}
}

// With a session timeout past the rebalance timeout, the lease is the
// rebalance timeout: a rebalance begun after the answer (another
// instance joined or left) drops a member that does not join again
// within it, however long its session timeout.
func TestALeaseIsNoLongerThanTheRebalanceTimeout(t *testing.T) {
	l := newLease(5*time.Minute, func(context.Context) error { return nil }, slog.New(slog.DiscardHandler))
	l.renew(t.Context())
	l.start = l.start.Add(-messaging.RebalanceTimeout)
	if l.held() {
		t.Errorf("held %s after the answer, with a session timeout of 5 min", messaging.RebalanceTimeout)
	}
}

// The lease asks at once when asked to, between its ticks.
func TestALeaseRenewsWhenAsked(t *testing.T) {
	asked := make(chan struct{}, 8)
	l := newLease(time.Hour, func(context.Context) error { asked <- struct{}{}; return nil }, slog.New(slog.DiscardHandler))
	l.every = time.Hour
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = l.run(ctx) }()
	<-asked // the first, at its start
	l.renewNow()
	select {
	case <-asked:
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat within 5 s of being asked")
	}
}

// An answer that the process is not the group's member, or not in its
// generation, ends the lease at once: a peer may have evicted it, and its
// partitions may be another instance's. Other errors (a coordinator away
// or moving) leave it to run out.
func TestALeaseEndsWhenTheCoordinatorNoLongerKnowsTheMember(t *testing.T) {
	for _, gone := range []error{kerr.UnknownMemberID, kerr.IllegalGeneration, kerr.FencedInstanceID, messaging.ErrNotMember} {
		var answer error
		l := newLease(10*time.Second, func(context.Context) error { return answer }, slog.New(slog.DiscardHandler))
		l.renew(t.Context())
		answer = kerr.NotCoordinator
		l.renew(t.Context())
		if !l.held() {
			t.Fatalf("%v: not held after NOT_COORDINATOR, within the lease", gone)
		}
		answer = fmt.Errorf("heartbeat: %w", gone)
		l.renew(t.Context())
		if l.held() {
			t.Errorf("%v: held after the coordinator answered it", gone)
		}
		answer = nil
		l.renew(t.Context())
		if !l.held() {
			t.Errorf("%v: not held after an answer without error", gone)
		}
	}
}

package process

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// A process that did not run for longer than half its session timeout
// serves no key from its state until it ran for the hold since: its group
// may have gone on without it.
func TestAPausedProcessServesNothingForAMoment(t *testing.T) {
	w := newPauseWatch(2*time.Second, slog.New(slog.DiscardHandler))
	// A hold long enough that the check right after the tick sees it, under
	// -race on a loaded machine.
	w.hold = time.Second
	at := func(d time.Duration) { w.start = time.Now().Add(-d) } // as if d had passed since start
	w.tick()
	if !w.trusted() {
		t.Fatal("not trusted right after a tick")
	}
	at(1500 * time.Millisecond) // a gap past the limit, before the watch ticks
	if w.trusted() {
		t.Error("trusted after a pause, before the watch ticked")
	}
	w.tick()
	if w.trusted() {
		t.Error("trusted right after a tick that saw the pause")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !w.trusted() {
		if time.Now().After(deadline) {
			t.Fatal("still not trusted 5 s after the pause")
		}
		time.Sleep(5 * time.Millisecond)
		w.tick()
	}
	var none *pauseWatch
	if !none.trusted() {
		t.Error("a process without a group (no watch) is not trusted")
	}
}

// The time between the watch's creation and its start (the look for dead
// peers before joining, up to seconds) is no pause: the first tick sees
// none.
func TestTheWatchsStartIsNoPause(t *testing.T) {
	w := newPauseWatch(10*time.Second, slog.New(slog.DiscardHandler)) // a pause is a gap past 5 s
	w.start = time.Now().Add(-7 * time.Second)                        // created 7 s before it runs
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = w.run(ctx) }()
	await := func(what string, done func() bool) {
		for deadline := time.Now().Add(5 * time.Second); !done(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5 s", what)
			}
		}
	}
	var started int64
	await("the watch to run", func() bool { started = w.last.Load(); return started != 0 })
	await("its first tick", func() bool { return w.last.Load() != started })
	if w.suspect.Load() != 0 {
		t.Error("the first tick took the time before the watch ran for a pause")
	}
}

// With a session timeout past twice the rebalance timeout, a pause
// shorter than half the session could still cost the partitions: a
// rebalance meanwhile (another instance joined or left) dropped the
// member that did not join again within the rebalance timeout, and the
// watch, at half the session timeout (150 s of a 5 min one), let the
// process answer from what it held once it ran again.
func TestAPauseLongerThanHalfTheRebalanceTimeoutIsOne(t *testing.T) {
	w := newPauseWatch(5*time.Minute, slog.New(slog.DiscardHandler))
	w.tick()
	w.start = w.start.Add(-(messaging.RebalanceTimeout/2 + time.Second)) // paused that long, before the watch ticks
	w.tick()
	if w.trusted() {
		t.Errorf("trusted after a pause of %s, half the rebalance timeout and a second, with a session timeout of 5 min", messaging.RebalanceTimeout/2+time.Second)
	}
}

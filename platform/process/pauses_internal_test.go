package process

import (
	"log/slog"
	"testing"
	"time"
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

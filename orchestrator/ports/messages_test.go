package ports_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/riferrei/srclient"

	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/orchestrator/ports"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/saga"
)

// An event written longer ago than the bound starts nothing and is told to
// stale: the saga it asks for may have ended and been forgotten, and would
// run again. One written within it is decoded, not ignored, and so is one
// whose time is unknown (the payload here is undecodable: no starter runs).
func TestAnEventWrittenTooLongAgoStartsNothing(t *testing.T) {
	s, err := serde.New(srclient.CreateMockSchemaRegistryClient("http://registry.invalid"), serde.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var started int
	starter := func(context.Context, saga.Record) (bool, error) { started++; return true, nil }
	var ignored []time.Time
	h := ports.Starts(s, time.Hour, func(_ *message.Message, written time.Time) { ignored = append(ignored, written) }, starter)
	event := func(written time.Time) *message.Message {
		msg := message.NewMessage("u1", []byte("not an event")) // decoded only if not stale
		msg.SetContext(messaging.WithRecord(t.Context(), messaging.Record{Topic: "order.events", Timestamp: written}))
		return msg
	}

	old := time.Now().Add(-61 * time.Minute)
	if err := h(event(old)); err != nil || started != 0 || len(ignored) != 1 || !ignored[0].Equal(old) {
		t.Errorf("an event of %s: got %v, %d started, ignored %v; want nil, none started, ignored once with its time", old, err, started, ignored)
	}
	for name, written := range map[string]time.Time{"recent": time.Now().Add(-59 * time.Minute), "of unknown time": {},
		"written with no time, read by franz-go": time.UnixMilli(-1)} {
		if err := h(event(written)); !errors.Is(err, serde.ErrUndecodable) || len(ignored) != 1 {
			t.Errorf("a %s event: got %v, ignored %d; want it decoded (ErrUndecodable here), not ignored", name, err, len(ignored))
		}
	}
}

package ports

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Starter starts a saga of one type from an event of the type that starts
// it; ok is false for an event of another type, which it leaves alone.
// The saga's trace continues ctx's span, the event's handling.
type Starter func(ctx context.Context, event saga.Record) (ok bool, err error)

// Start is the Starter of engine's saga type, started by events of type E:
// start turns one into the saga's id and data, or refuses it, which can
// never succeed.
func Start[D, E any](engine *saga.Engine[D], start func(*E) (sagaID string, data D, err error)) Starter {
	return func(ctx context.Context, rec saga.Record) (bool, error) {
		event, ok := any(rec).(*E)
		if !ok {
			return false, nil
		}
		id, data, err := start(event)
		if err != nil {
			return true, fmt.Errorf("%w: %w", messaging.ErrPoison, err)
		}
		return true, engine.Start(ctx, id, data)
	}
}

// Starts starts a saga for every event on a topic, through the starter of
// its type: several saga types may start from one topic, each from its own
// event. A saga that exists already is left alone. An event no starter
// takes, or one its starter refuses, is dead-lettered.
//
// An event written longer ago than within starts nothing and is passed to
// stale: an ended saga is forgotten SAGA_RETENTION after it ended, and the
// saga such an event asks for may have run, ended and been forgotten (an
// event read again once the group's offsets expired, a dead letter replayed
// late), and would run again against an order long decided. An event
// written within it finds its saga if there was one: a saga starts after
// the event that announces it, so it ended later still, and is kept
// longer than within after. Within is set below the retention by a
// margin for the clocks of the event's writer and of the orchestrator.
func Starts(s *serde.Serde, within time.Duration, stale func(msg *message.Message, written time.Time), starters ...Starter) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		if written, old := messaging.WrittenBefore(msg.Context(), within); old {
			stale(msg, written)
			return nil
		}
		rec, err := s.Decode(msg.Payload)
		if err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		for _, start := range starters {
			if ok, err := start(msg.Context(), rec); ok {
				return err
			}
		}
		return fmt.Errorf("%w: unexpected %T: no saga starts from it", messaging.ErrPoison, rec)
	}
}

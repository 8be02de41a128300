package ports

import (
	"context"
	"fmt"

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
func Starts(s *serde.Serde, starters ...Starter) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
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

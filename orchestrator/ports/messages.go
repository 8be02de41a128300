package ports

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Starts starts a saga for every event of type E on its topic; a saga that
// exists already is left alone. An event start refuses, or of another type,
// is dead-lettered.
func Starts[D, E any](s *serde.Serde, engine *saga.Engine[D], start func(*E) (sagaID string, data D, err error)) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		rec, err := s.Decode(msg.Payload)
		if err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		event, ok := any(rec).(*E)
		if !ok {
			return fmt.Errorf("%w: unexpected %T, want %T", messaging.ErrPoison, rec, event)
		}
		id, data, err := start(event)
		if err != nil {
			return fmt.Errorf("%w: %w", messaging.ErrPoison, err)
		}
		return engine.Start(msg.Context(), id, data, msg.Metadata.Get(saga.HeaderTraceparent))
	}
}

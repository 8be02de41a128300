package ports

import (
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/orchestrator/createorder"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/saga"
)

// OrderCreated starts a Create Order saga for every OrderCreated event on
// order.events; a saga that exists already is left alone.
func OrderCreated(s *serde.Serde, engine *saga.Engine[createorder.Data]) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		rec, err := s.Decode(msg.Payload)
		if err != nil {
			return fmt.Errorf("decode order event: %w", err)
		}
		event, ok := rec.(*contracts.OrderCreated)
		if !ok {
			return fmt.Errorf("%w: unexpected %T on %s", messaging.ErrPoison, rec, contracts.TopicOrderEvents)
		}
		if event.OrderID == "" || event.CustomerID == "" || event.OrderTotal <= 0 {
			return fmt.Errorf("%w: order %q of customer %q for %d: an order needs both ids and a positive total",
				messaging.ErrPoison, event.OrderID, event.CustomerID, event.OrderTotal)
		}
		data := createorder.Data{OrderID: event.OrderID, CustomerID: event.CustomerID, OrderTotal: event.OrderTotal}
		return engine.Start(msg.Context(), event.OrderID, data, msg.Metadata.Get(saga.HeaderTraceparent))
	}
}

// Replies applies each reply on the saga's reply topic. A reply no step
// accepts is dead-lettered.
func Replies(engine *saga.Engine[createorder.Data]) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		err := engine.HandleReply(msg)
		if errors.Is(err, saga.ErrUnexpectedReply) {
			return fmt.Errorf("%w: %w", messaging.ErrPoison, err)
		}
		return err
	}
}

package adapters

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// OrderEvents publishes order events to order.events, keyed by order id.
type OrderEvents struct {
	serde *serde.Serde
	pub   message.Publisher
}

var _ domain.Events = (*OrderEvents)(nil)

func NewOrderEvents(s *serde.Serde, pub message.Publisher) *OrderEvents {
	return &OrderEvents{serde: s, pub: pub}
}

func (e *OrderEvents) OrderCreated(ctx context.Context, o *domain.Order) error {
	payload, err := e.serde.Encode(contracts.TopicOrderEvents, &contracts.OrderCreated{
		OrderID: o.ID(), CustomerID: o.CustomerID(), OrderTotal: o.Total(),
	})
	if err != nil {
		return fmt.Errorf("encode OrderCreated %s: %w", o.ID(), err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(contracts.HeaderPartitionKey, o.ID())
	msg.Metadata.Set(saga.HeaderTraceparent, messaging.TraceparentFrom(ctx))
	if err := e.pub.Publish(contracts.TopicOrderEvents, msg); err != nil {
		return fmt.Errorf("publish OrderCreated %s: %w", o.ID(), err)
	}
	return nil
}

package adapters

import (
	"context"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// OrderEvents publishes order events to order.events, each keyed by the id
// of the saga it starts: OrderCreated by order id, OrderCancelRequested by
// contracts.CancelOrderSagaID.
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
	msg.SetContext(ctx) // the event continues the trace of the request
	if err := e.pub.Publish(contracts.TopicOrderEvents, msg); err != nil {
		return fmt.Errorf("publish OrderCreated %s: %w", o.ID(), err)
	}
	return nil
}

func (e *OrderEvents) OrderCancelRequested(ctx context.Context, o *domain.Order) error {
	msg, err := e.cancelRequested(ctx, o)
	if err != nil {
		return err
	}
	if err := e.pub.Publish(contracts.TopicOrderEvents, msg); err != nil {
		return fmt.Errorf("publish OrderCancelRequested %s: %w", o.ID(), err)
	}
	return nil
}

// cancelRequestedRecord is OrderCancelRequested as a record to write with
// the order, in its transaction.
func (e *OrderEvents) cancelRequestedRecord(ctx context.Context, o *domain.Order) (*sarama.ProducerMessage, error) {
	msg, err := e.cancelRequested(ctx, o)
	if err != nil {
		return nil, err
	}
	return messaging.ProducerMessage(contracts.TopicOrderEvents, msg)
}

func (e *OrderEvents) cancelRequested(ctx context.Context, o *domain.Order) (*message.Message, error) {
	payload, err := e.serde.Encode(contracts.TopicOrderEvents, &contracts.OrderCancelRequested{
		OrderID: o.ID(), CustomerID: o.CustomerID(), OrderTotal: o.Total(), Attempt: o.CancelAttempt(),
	})
	if err != nil {
		return nil, fmt.Errorf("encode OrderCancelRequested %s: %w", o.ID(), err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(contracts.HeaderPartitionKey, contracts.CancelOrderSagaID(o.ID(), o.CancelAttempt()))
	msg.SetContext(ctx) // the event continues the trace of the request
	return msg, nil
}

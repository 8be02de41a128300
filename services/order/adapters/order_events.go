package adapters

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

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

// OrderCreated publishes an order's announcement again (the periodic
// re-announcement); Add writes the first with the order.
func (e *OrderEvents) OrderCreated(ctx context.Context, o *domain.Order) error {
	return e.publish(e.created(ctx, o))
}

// OrderCancelRequested publishes a cancellation's announcement again;
// UpdateAnnouncingCancel writes the first with the order.
func (e *OrderEvents) OrderCancelRequested(ctx context.Context, o *domain.Order) error {
	return e.publish(e.cancelRequested(ctx, o))
}

func (e *OrderEvents) publish(msg *message.Message, err error) error {
	if err != nil {
		return err
	}
	if err := e.pub.Publish(contracts.TopicOrderEvents, msg); err != nil {
		return fmt.Errorf("publish %s: %w", msg.Metadata.Get(contracts.HeaderPartitionKey), err)
	}
	return nil
}

// record is an event as a record to write with its order, in its
// transaction.
func record(msg *message.Message, err error) (*kgo.Record, error) {
	if err != nil {
		return nil, err
	}
	return messaging.NewRecord(contracts.TopicOrderEvents, msg)
}

func (e *OrderEvents) created(ctx context.Context, o *domain.Order) (*message.Message, error) {
	return e.event(ctx, o.ID(), &contracts.OrderCreated{
		OrderID: o.ID(), CustomerID: o.CustomerID(), OrderTotal: o.Total(),
	})
}

func (e *OrderEvents) cancelRequested(ctx context.Context, o *domain.Order) (*message.Message, error) {
	return e.event(ctx, contracts.CancelOrderSagaID(o.ID(), o.CancelAttempt()), &contracts.OrderCancelRequested{
		OrderID: o.ID(), CustomerID: o.CustomerID(), OrderTotal: o.Total(), Attempt: o.CancelAttempt(),
	})
}

// event encodes an event keyed by the id of the saga it starts.
func (e *OrderEvents) event(ctx context.Context, sagaID string, ev serde.Record) (*message.Message, error) {
	payload, err := e.serde.Encode(contracts.TopicOrderEvents, ev)
	if err != nil {
		return nil, fmt.Errorf("encode %T %s: %w", ev, sagaID, err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(contracts.HeaderPartitionKey, sagaID)
	msg.SetContext(ctx) // the event continues the trace of the request
	return msg, nil
}

// Package adapters implements what the order application uses: the
// repository on a Kafka-backed store, and the publisher of order events.
package adapters

import (
	"context"
	"fmt"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// OrderRepository keeps each order as one record of the compacted topic
// order.state, keyed by order id.
type OrderRepository struct {
	store *store.Store[contracts.OrderRecord]
}

var _ domain.Repository = (*OrderRepository)(nil)

func NewOrderRepository(s *store.Store[contracts.OrderRecord]) *OrderRepository {
	return &OrderRepository{store: s}
}

func (r *OrderRepository) Add(ctx context.Context, o *domain.Order) error {
	return r.store.Update(ctx, o.ID(), func(rec *contracts.OrderRecord, exists bool) error {
		if exists {
			return fmt.Errorf("order %s already exists", o.ID())
		}
		*rec = marshal(o)
		return nil
	})
}

func (r *OrderRepository) Get(_ context.Context, id string) (*domain.Order, error) {
	rec, ok, err := r.store.Get(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("order %s: %w", id, domain.ErrNotFound)
	}
	return unmarshal(rec), nil
}

func (r *OrderRepository) Update(ctx context.Context, id string, fn func(o *domain.Order) error) error {
	return r.store.Update(ctx, id, func(rec *contracts.OrderRecord, exists bool) error {
		if !exists {
			return fmt.Errorf("order %s: %w", id, domain.ErrNotFound)
		}
		o := unmarshal(rec)
		if err := fn(o); err != nil {
			return err
		}
		*rec = marshal(o)
		return nil
	})
}

func (r *OrderRepository) Pending(context.Context) ([]*domain.Order, error) {
	var pending []*domain.Order
	r.store.Range(func(_ string, rec *contracts.OrderRecord) bool {
		if domain.State(rec.State) == domain.Pending {
			pending = append(pending, unmarshal(rec))
		}
		return true
	})
	return pending, nil
}

func marshal(o *domain.Order) contracts.OrderRecord {
	return contracts.OrderRecord{
		OrderID: o.ID(), CustomerID: o.CustomerID(), OrderTotal: o.Total(),
		State: string(o.State()), RejectionReason: o.RejectionReason(), CreatedAt: o.CreatedAt(),
	}
}

func unmarshal(rec *contracts.OrderRecord) *domain.Order {
	return domain.UnmarshalOrder(rec.OrderID, rec.CustomerID, rec.OrderTotal, domain.State(rec.State), rec.RejectionReason, rec.CreatedAt)
}

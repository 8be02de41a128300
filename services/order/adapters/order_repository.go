// Package adapters implements what the order application uses: the
// repository on a Kafka-backed store, and the publisher of order events.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// OrderRepository keeps each order as one record of the compacted topic
// order.state, keyed by order id. It indexes the orders that may still be
// PENDING, so the periodic re-announcement reads those, not every order
// ever placed: Restore fills the index, Add adds to it, and Pending drops
// the orders that have ended.
type OrderRepository struct {
	store *store.Store[contracts.OrderRecord]

	mu      sync.Mutex
	pending map[string]bool // order ids
}

var _ domain.Repository = (*OrderRepository)(nil)

func NewOrderRepository(s *store.Store[contracts.OrderRecord]) *OrderRepository {
	return &OrderRepository{store: s, pending: map[string]bool{}}
}

// Restore indexes the restored orders still PENDING; run it after the
// store's own restore (process.OnRestored).
func (r *OrderRepository) Restore(context.Context) error {
	var ids []string
	err := r.store.Range(func(id string, rec *contracts.OrderRecord) bool {
		if domain.State(rec.State) == domain.Pending {
			ids = append(ids, id)
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("index the pending orders: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		r.pending[id] = true
	}
	return nil
}

func (r *OrderRepository) Add(ctx context.Context, o *domain.Order) error {
	err := r.store.Update(ctx, o.ID(), func(rec *contracts.OrderRecord, exists bool) error {
		if exists {
			return fmt.Errorf("%w: %s", domain.ErrExists, o.ID())
		}
		*rec = marshal(o)
		return nil
	})
	if err == nil {
		r.mu.Lock()
		r.pending[o.ID()] = true
		r.mu.Unlock()
	}
	return err
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

// Pending returns the indexed orders still PENDING and drops the others
// from the index: an order never returns to PENDING, and one whose
// partition another instance owns now is that instance's to announce.
func (r *OrderRepository) Pending(context.Context) ([]*domain.Order, error) {
	r.mu.Lock()
	ids := slices.Collect(maps.Keys(r.pending))
	r.mu.Unlock()
	var pending []*domain.Order
	var ended []string
	for _, id := range ids {
		rec, ok, err := r.store.Get(id)
		if errors.Is(err, store.ErrNotOwned) {
			ended = append(ended, id) // its partition moved: its new owner announces it
			continue
		}
		if err != nil {
			return nil, err
		}
		if ok && domain.State(rec.State) == domain.Pending {
			pending = append(pending, unmarshal(rec))
		} else {
			ended = append(ended, id)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ended {
		delete(r.pending, id)
	}
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

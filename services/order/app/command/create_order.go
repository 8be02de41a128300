// Package command holds the order service's use cases that change state.
package command

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

type CreateOrder struct {
	CustomerID string
	OrderTotal int64
}

type CreateOrderHandler struct {
	repo   domain.Repository
	events domain.Events
	now    func() time.Time
}

func NewCreateOrderHandler(repo domain.Repository, events domain.Events, now func() time.Time) CreateOrderHandler {
	return CreateOrderHandler{repo: repo, events: events, now: now}
}

// Handle stores the order as PENDING, then announces it, which starts its
// saga. If the announcement fails the order stays PENDING and is announced
// again when the service restarts (RepublishPending).
func (h CreateOrderHandler) Handle(ctx context.Context, cmd CreateOrder) (*domain.Order, error) {
	o, err := domain.NewOrder(uuid.NewString(), cmd.CustomerID, cmd.OrderTotal, h.now())
	if err != nil {
		return nil, err
	}
	if err := h.repo.Add(ctx, o); err != nil {
		return nil, err
	}
	if err := h.events.OrderCreated(ctx, o); err != nil {
		return nil, fmt.Errorf("order %s stored but not announced yet: %w", o.ID(), err)
	}
	return o, nil
}

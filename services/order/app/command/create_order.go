// Package command holds the order service's use cases that change state.
package command

import (
	"context"
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
// saga. Once stored the order is accepted: if the announcement fails, the
// periodic RepublishPending announces it again.
func (h CreateOrderHandler) Handle(ctx context.Context, cmd CreateOrder) (*domain.Order, error) {
	o, err := domain.NewOrder(uuid.NewString(), cmd.CustomerID, cmd.OrderTotal, h.now())
	if err != nil {
		return nil, err
	}
	if err := h.repo.Add(ctx, o); err != nil {
		return nil, err
	}
	_ = h.events.OrderCreated(ctx, o) // best effort: RepublishPending retries
	return o, nil
}

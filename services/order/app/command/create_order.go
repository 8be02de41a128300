// Package command holds the order service's use cases that change state.
package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

type CreateOrder struct {
	CustomerID string
	OrderTotal int64
	// IdempotencyKey, if not empty, makes the command safe to send again:
	// the same key of the same customer places one order, so a client
	// that never learned the outcome (a timeout, a 503 whose write landed
	// all the same) can retry.
	IdempotencyKey string
}

// idempotencyKeys is the namespace of the order ids derived from
// idempotency keys (a UUID of its own, fixed forever).
var idempotencyKeys = uuid.MustParse("6f1d2c1e-6b1a-4c55-9a0e-2b7f3c1d8e44")

// OrderID is the id of the order a customer's idempotency key places.
func OrderID(customerID, idempotencyKey string) string {
	return uuid.NewSHA1(idempotencyKeys, []byte(customerID+"\x00"+idempotencyKey)).String()
}

type CreateOrderHandler struct {
	repo domain.Repository
	now  func() time.Time
}

func NewCreateOrderHandler(repo domain.Repository, now func() time.Time) CreateOrderHandler {
	return CreateOrderHandler{repo: repo, now: now}
}

// Handle stores the order as PENDING with its announcement, which starts
// its saga: both or neither. A command sent again with its idempotency key
// returns the order the key placed, as it is now.
func (h CreateOrderHandler) Handle(ctx context.Context, cmd CreateOrder) (*domain.Order, error) {
	id := uuid.NewString()
	if cmd.IdempotencyKey != "" {
		id = OrderID(cmd.CustomerID, cmd.IdempotencyKey)
	}
	o, err := domain.NewOrder(id, cmd.CustomerID, cmd.OrderTotal, h.now())
	if err != nil {
		return nil, err
	}
	err = h.repo.Add(ctx, o)
	if errors.Is(err, domain.ErrExists) && cmd.IdempotencyKey != "" {
		placed, err := h.repo.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if placed.Total() != o.Total() {
			return nil, fmt.Errorf("%w: idempotency key %q placed order %s of %d, not of %d",
				domain.ErrConflict, cmd.IdempotencyKey, id, placed.Total(), o.Total())
		}
		o = placed
	} else if err != nil {
		return nil, err
	}
	return o, nil
}

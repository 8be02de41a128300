// Package command holds the customer service's use cases that change state.
package command

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

type CreateCustomer struct {
	Name        string
	CreditLimit int64
	// IdempotencyKey makes the command safe to send again: one key, one
	// customer (CustomerID). Empty draws a new id.
	IdempotencyKey string
}

// customerIDs is the namespace of the customer ids derived from
// idempotency keys (a UUID of its own, fixed forever).
var customerIDs = uuid.MustParse("0b6c3f1e-2d4a-4f8e-9c71-5a3e8d2b7c90")

// CustomerID is the id of the customer an idempotency key creates.
func CustomerID(idempotencyKey string) string {
	return uuid.NewSHA1(customerIDs, []byte(idempotencyKey)).String()
}

type CreateCustomerHandler struct{ repo domain.Repository }

func NewCreateCustomerHandler(repo domain.Repository) CreateCustomerHandler {
	return CreateCustomerHandler{repo: repo}
}

// Handle stores a new customer and returns its id. Sent again with its
// idempotency key, it returns the id the key created; with that key and
// another name or credit limit, it is refused (domain.ErrConflict).
func (h CreateCustomerHandler) Handle(ctx context.Context, cmd CreateCustomer) (string, error) {
	id := uuid.NewString()
	if cmd.IdempotencyKey != "" {
		id = CustomerID(cmd.IdempotencyKey)
	}
	c, err := domain.NewCustomer(id, cmd.Name, cmd.CreditLimit)
	if err != nil {
		return "", err
	}
	err = h.repo.Add(ctx, c)
	if errors.Is(err, domain.ErrExists) && cmd.IdempotencyKey != "" {
		placed, err := h.repo.Get(ctx, id)
		if err != nil {
			return "", err
		}
		if placed.Name() != c.Name() || placed.CreditLimit() != c.CreditLimit() {
			return "", fmt.Errorf("%w: idempotency key %q created customer %s with another name or credit limit",
				domain.ErrConflict, cmd.IdempotencyKey, id)
		}
		return id, nil
	}
	if err != nil {
		return "", err
	}
	return c.ID(), nil
}

// Package command holds the customer service's use cases that change state.
package command

import (
	"context"

	"github.com/google/uuid"

	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

type CreateCustomer struct {
	Name        string
	CreditLimit int64
}

type CreateCustomerHandler struct{ repo domain.Repository }

func NewCreateCustomerHandler(repo domain.Repository) CreateCustomerHandler {
	return CreateCustomerHandler{repo: repo}
}

// Handle stores a new customer and returns its id.
func (h CreateCustomerHandler) Handle(ctx context.Context, cmd CreateCustomer) (string, error) {
	c, err := domain.NewCustomer(uuid.NewString(), cmd.Name, cmd.CreditLimit)
	if err != nil {
		return "", err
	}
	if err := h.repo.Add(ctx, c); err != nil {
		return "", err
	}
	return c.ID(), nil
}

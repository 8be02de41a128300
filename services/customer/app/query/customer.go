// Package query holds the customer service's read-only use cases.
package query

import (
	"context"

	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

// Customer is the read model served by GET /customers/{id}.
type Customer struct {
	CustomerID      string `json:"customerId"`
	Name            string `json:"name"`
	CreditLimit     int64  `json:"creditLimit"`
	AvailableCredit int64  `json:"availableCredit"`
}

type CustomerHandler struct{ repo domain.Repository }

func NewCustomerHandler(repo domain.Repository) CustomerHandler { return CustomerHandler{repo: repo} }

func (h CustomerHandler) Handle(ctx context.Context, id string) (Customer, error) {
	c, err := h.repo.Get(ctx, id)
	if err != nil {
		return Customer{}, err
	}
	return Customer{CustomerID: c.ID(), Name: c.Name(), CreditLimit: c.CreditLimit(), AvailableCredit: c.AvailableCredit()}, nil
}

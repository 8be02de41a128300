// Package query holds the order service's read-only use cases.
package query

import (
	"context"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// Order is the read model served by GET /orders/{id}.
type Order struct {
	OrderID         string `json:"orderId"`
	CustomerID      string `json:"customerId"`
	OrderTotal      int64  `json:"orderTotal"`
	State           string `json:"state"`
	RejectionReason string `json:"rejectionReason"`
	// CancelSagaID is the id of the order's latest Cancel Order saga (GET
	// /sagas/{id} of the orchestrator), if it was ever cancelled.
	CancelSagaID        string `json:"cancelSagaId,omitempty"`
	CancelRefusalReason string `json:"cancelRefusalReason"` // why its latest cancellation was refused, if it was
}

type OrderHandler struct{ repo domain.Repository }

func NewOrderHandler(repo domain.Repository) OrderHandler { return OrderHandler{repo: repo} }

func (h OrderHandler) Handle(ctx context.Context, id string) (Order, error) {
	o, err := h.repo.Get(ctx, id)
	if err != nil {
		return Order{}, err
	}
	return View(o), nil
}

// View is the read model of o.
func View(o *domain.Order) Order {
	v := Order{OrderID: o.ID(), CustomerID: o.CustomerID(), OrderTotal: o.Total(), State: string(o.State()),
		RejectionReason: o.RejectionReason(), CancelRefusalReason: o.CancelRefusalReason()}
	if o.CancelAttempt() > 0 {
		v.CancelSagaID = contracts.CancelOrderSagaID(o.ID(), o.CancelAttempt())
	}
	return v
}

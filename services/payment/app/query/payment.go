// Package query holds the payment service's read-only use cases.
package query

import (
	"context"
	"time"

	"github.com/kafkasaga/kafkasaga/services/payment/domain"
)

// Payment is the read model served by GET /payments/{orderId}.
type Payment struct {
	OrderID    string    `json:"orderId"`
	CustomerID string    `json:"customerId"`
	PaymentID  string    `json:"paymentId"`
	Amount     int64     `json:"amount"`
	Status     string    `json:"status"`
	Reason     string    `json:"reason"`
	DecidedAt  time.Time `json:"decidedAt"`
}

type PaymentHandler struct{ repo domain.Repository }

func NewPaymentHandler(repo domain.Repository) PaymentHandler { return PaymentHandler{repo: repo} }

func (h PaymentHandler) Handle(ctx context.Context, orderID string) (Payment, error) {
	p, err := h.repo.Get(ctx, orderID)
	if err != nil {
		return Payment{}, err
	}
	return Payment{OrderID: p.OrderID(), CustomerID: p.CustomerID(), PaymentID: p.PaymentID(), Amount: p.Amount(),
		Status: string(p.Status()), Reason: p.Reason(), DecidedAt: p.DecidedAt()}, nil
}

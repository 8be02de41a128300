// Package command holds the payment service's use cases that change state.
package command

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/kafkasaga/kafkasaga/services/payment/domain"
)

type AuthorizePayment struct {
	OrderID    string
	CustomerID string
	Amount     int64
}

// Decision is the answer to AuthorizePayment.
type Decision struct {
	Authorized bool
	PaymentID  string
	Reason     string
}

type AuthorizePaymentHandler struct {
	repo  domain.Repository
	limit int64
	now   func() time.Time
}

func NewAuthorizePaymentHandler(repo domain.Repository, limit int64, now func() time.Time) AuthorizePaymentHandler {
	return AuthorizePaymentHandler{repo: repo, limit: limit, now: now}
}

func (h AuthorizePaymentHandler) Handle(ctx context.Context, cmd AuthorizePayment) (Decision, error) {
	var d Decision
	err := h.repo.Update(ctx, cmd.OrderID, func(p *domain.Payment) error {
		if err := p.Authorize(cmd.CustomerID, cmd.Amount, h.limit, uuid.NewString(), h.now()); err != nil {
			return err
		}
		id, declined := p.Answer()
		d = Decision{Authorized: id != "", PaymentID: id, Reason: declined}
		return nil
	})
	return d, err
}

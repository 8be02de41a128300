package command

import (
	"context"
	"time"

	"github.com/kafkasaga/kafkasaga/services/payment/domain"
)

type CancelPaymentHandler struct {
	repo domain.Repository
	now  func() time.Time
}

func NewCancelPaymentHandler(repo domain.Repository, now func() time.Time) CancelPaymentHandler {
	return CancelPaymentHandler{repo: repo, now: now}
}

// Handle voids the payment of the order; paymentID, if not empty, must be
// the one authorized.
func (h CancelPaymentHandler) Handle(ctx context.Context, orderID, paymentID string) error {
	return h.repo.Update(ctx, orderID, func(p *domain.Payment) error {
		return p.Cancel(paymentID, h.now())
	})
}

package command

import (
	"context"

	"github.com/kafkasaga/kafkasaga/services/payment/domain"
)

type CancelRefundHandler struct{ repo domain.Repository }

func NewCancelRefundHandler(repo domain.Repository) CancelRefundHandler {
	return CancelRefundHandler{repo: repo}
}

// Handle undoes the refund of a cancel attempt, if it was made, and
// records that it is cancelled, so that it is not made afterwards.
func (h CancelRefundHandler) Handle(ctx context.Context, orderID string, attempt int) error {
	return h.repo.Update(ctx, orderID, func(p *domain.Payment) error {
		p.CancelRefund(attempt)
		return nil
	})
}

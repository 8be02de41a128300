package command

import (
	"context"

	"github.com/kafkasaga/kafkasaga/services/payment/domain"
)

// Refund is the answer to RefundPayment.
type Refund struct {
	PaymentID string
	Refused   string // the reason the refund is refused; "" once refunded
}

type RefundPaymentHandler struct {
	repo  domain.Repository
	limit int64
}

func NewRefundPaymentHandler(repo domain.Repository, limit int64) RefundPaymentHandler {
	return RefundPaymentHandler{repo: repo, limit: limit}
}

// Handle decides the refund of the order's payment for a cancel attempt,
// and records the decision, a refusal too: the attempt's command
// delivered again gets the same answer.
func (h RefundPaymentHandler) Handle(ctx context.Context, orderID string, attempt int) (Refund, error) {
	var r Refund
	err := h.repo.Update(ctx, orderID, func(p *domain.Payment) error {
		r = Refund{PaymentID: p.PaymentID(), Refused: p.Refund(attempt, h.limit)}
		return nil
	})
	return r, err
}

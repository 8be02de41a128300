package command

import (
	"context"
	"errors"

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

// errRefused aborts the write of a refused refund: it changes nothing.
var errRefused = errors.New("refund refused")

// Handle refunds the order's payment, or says why it cannot.
func (h RefundPaymentHandler) Handle(ctx context.Context, orderID string) (Refund, error) {
	var r Refund
	err := h.repo.Update(ctx, orderID, func(p *domain.Payment) error {
		r = Refund{PaymentID: p.PaymentID(), Refused: p.Refund(h.limit)}
		if r.Refused != "" {
			return errRefused
		}
		return nil
	})
	if errors.Is(err, errRefused) {
		return r, nil
	}
	return r, err
}

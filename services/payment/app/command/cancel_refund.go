package command

import (
	"context"
	"errors"

	"github.com/kafkasaga/kafkasaga/services/payment/domain"
)

type CancelRefundHandler struct{ repo domain.Repository }

func NewCancelRefundHandler(repo domain.Repository) CancelRefundHandler {
	return CancelRefundHandler{repo: repo}
}

// errNotRefunded aborts the write of a CancelRefund with nothing to undo.
var errNotRefunded = errors.New("not refunded")

// Handle undoes the refund of the order's payment, if it was refunded.
func (h CancelRefundHandler) Handle(ctx context.Context, orderID string) error {
	err := h.repo.Update(ctx, orderID, func(p *domain.Payment) error {
		if p.Status() != domain.Refunded {
			return errNotRefunded
		}
		p.CancelRefund()
		return nil
	})
	if errors.Is(err, errNotRefunded) {
		return nil
	}
	return err
}

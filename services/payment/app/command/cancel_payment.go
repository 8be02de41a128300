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

func (h CancelPaymentHandler) Handle(ctx context.Context, orderID string) error {
	return h.repo.Update(ctx, orderID, func(p *domain.Payment) error {
		p.Cancel(h.now())
		return nil
	})
}

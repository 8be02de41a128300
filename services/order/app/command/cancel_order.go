package command

import (
	"context"

	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

type CancelOrder struct {
	OrderID string
	Attempt int
}

type CancelOrderHandler struct{ repo domain.Repository }

func NewCancelOrderHandler(repo domain.Repository) CancelOrderHandler {
	return CancelOrderHandler{repo: repo}
}

// Handle marks the CANCELLING order CANCELLED.
func (h CancelOrderHandler) Handle(ctx context.Context, cmd CancelOrder) error {
	return h.repo.Update(ctx, cmd.OrderID, func(o *domain.Order) error { return o.Cancel(cmd.Attempt) })
}

package command

import (
	"context"

	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

type RejectOrder struct {
	OrderID string
	Reason  string
}

type RejectOrderHandler struct{ repo domain.Repository }

func NewRejectOrderHandler(repo domain.Repository) RejectOrderHandler {
	return RejectOrderHandler{repo: repo}
}

func (h RejectOrderHandler) Handle(ctx context.Context, cmd RejectOrder) error {
	return h.repo.Update(ctx, cmd.OrderID, func(o *domain.Order) error { return o.Reject(cmd.Reason) })
}

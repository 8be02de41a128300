package command

import (
	"context"

	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

type ApproveOrderHandler struct{ repo domain.Repository }

func NewApproveOrderHandler(repo domain.Repository) ApproveOrderHandler {
	return ApproveOrderHandler{repo: repo}
}

func (h ApproveOrderHandler) Handle(ctx context.Context, orderID string) error {
	return h.repo.Update(ctx, orderID, func(o *domain.Order) error { return o.Approve() })
}

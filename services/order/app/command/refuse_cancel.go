package command

import (
	"context"

	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

type RefuseCancel struct {
	OrderID string
	Attempt int
	Reason  string
}

type RefuseCancelHandler struct{ repo domain.Repository }

func NewRefuseCancelHandler(repo domain.Repository) RefuseCancelHandler {
	return RefuseCancelHandler{repo: repo}
}

// Handle makes the CANCELLING order APPROVED again, with the reason its
// cancellation was refused.
func (h RefuseCancelHandler) Handle(ctx context.Context, cmd RefuseCancel) error {
	return h.repo.Update(ctx, cmd.OrderID, func(o *domain.Order) error { return o.RefuseCancel(cmd.Attempt, cmd.Reason) })
}

package command

import (
	"context"
	"errors"
	"time"

	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

type RequestCancelHandler struct {
	repo domain.Repository
	now  func() time.Time
}

func NewRequestCancelHandler(repo domain.Repository, now func() time.Time) RequestCancelHandler {
	return RequestCancelHandler{repo: repo, now: now}
}

// Handle marks an APPROVED order CANCELLING, as the attempt of the request
// of Idempotency-Key key, and announces the attempt in the same write,
// which starts its Cancel Order saga. It returns the order as it is now:
// CANCELLING after a request sent twice, which starts one saga, or, for
// the request of the latest attempt sent again, whatever became of it
// (CANCELLED, or APPROVED with the refusal's reason). An order that cannot
// be cancelled is returned with an error wrapping domain.ErrConflict, so
// the caller can name its state.
func (h RequestCancelHandler) Handle(ctx context.Context, orderID, key string) (*domain.Order, error) {
	var now *domain.Order
	err := h.repo.UpdateAnnouncingCancel(ctx, orderID, func(o *domain.Order) (bool, error) {
		now = o
		return o.RequestCancel(h.now(), key)
	})
	if err != nil && !errors.Is(err, domain.ErrConflict) {
		return nil, err
	}
	return now, err
}

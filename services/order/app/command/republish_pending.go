package command

import (
	"context"

	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// RepublishPendingHandler announces every PENDING order again. The service
// runs it once its state is restored, so an order stored just before a crash,
// and never announced, still gets its saga; the orchestrator ignores the
// announcements of sagas it already runs.
type RepublishPendingHandler struct {
	repo   domain.Repository
	events domain.Events
}

func NewRepublishPendingHandler(repo domain.Repository, events domain.Events) RepublishPendingHandler {
	return RepublishPendingHandler{repo: repo, events: events}
}

// Handle returns how many orders it announced.
func (h RepublishPendingHandler) Handle(ctx context.Context) (int, error) {
	pending, err := h.repo.Pending(ctx)
	if err != nil {
		return 0, err
	}
	for i, o := range pending {
		if err := h.events.OrderCreated(ctx, o); err != nil {
			return i, err
		}
	}
	return len(pending), nil
}

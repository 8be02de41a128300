package command

import (
	"context"
	"time"

	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// RepublishPendingHandler announces again the orders that are still PENDING
// some time after they were created, and those still CANCELLING some time
// after their cancellation was accepted. Each is written with its
// announcement, in one transaction; the service runs this when its state is
// restored and then periodically, so an order whose announcement was lost
// after all (order.events' retention ran out before the orchestrator read
// it) still gets its saga. The orchestrator ignores the announcements of
// sagas it already runs.
type RepublishPendingHandler struct {
	repo   domain.Repository
	events domain.Events
	now    func() time.Time
}

func NewRepublishPendingHandler(repo domain.Repository, events domain.Events, now func() time.Time) RepublishPendingHandler {
	return RepublishPendingHandler{repo: repo, events: events, now: now}
}

// StuckAfter is how long an order must have been PENDING, or CANCELLING,
// to be announced again: a saga normally ends within milliseconds. It is
// also longer than any transaction stays open (the broker aborts one past
// its timeout, 10 s): a younger order may be one whose write, and its
// announcement, are not committed yet, and may never be.
const StuckAfter = time.Minute

// Handle announces the orders PENDING, or CANCELLING, for at least
// StuckAfter and returns how many it announced.
func (h RepublishPendingHandler) Handle(ctx context.Context) (int, error) {
	pending, err := h.repo.Pending(ctx)
	if err != nil {
		return 0, err
	}
	cutoff := h.now().Add(-StuckAfter)
	announced := 0
	for _, o := range pending {
		if o.CreatedAt().After(cutoff) {
			continue
		}
		if err := h.events.OrderCreated(ctx, o); err != nil {
			return announced, err
		}
		announced++
	}
	cancelling, err := h.repo.Cancelling(ctx)
	if err != nil {
		return announced, err
	}
	for _, o := range cancelling {
		if o.CancelRequestedAt().After(cutoff) {
			continue
		}
		if err := h.events.OrderCancelRequested(ctx, o); err != nil {
			return announced, err
		}
		announced++
	}
	return announced, nil
}

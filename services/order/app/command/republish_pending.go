package command

import (
	"context"
	"fmt"
	"time"

	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// RepublishPendingHandler announces again the orders that are still PENDING
// some time after they were created, and those still CANCELLING some time
// after their cancellation was accepted. Each was written with its first
// announcement, in one transaction; the service runs this when its state
// is restored and then periodically, so an order whose announcement was lost
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
// StuckAfter and returns how many it announced. An announcement that fails
// holds back no other: the error counts the failures and names the first.
func (h RepublishPendingHandler) Handle(ctx context.Context) (int, error) {
	cutoff := h.now().Add(-StuckAfter)
	announced, failed := 0, 0
	var first error
	fail := func(err error) {
		if failed++; first == nil {
			first = err
		}
	}
	announce := func(list func(context.Context) ([]*domain.Order, error), since func(*domain.Order) time.Time,
		event func(context.Context, *domain.Order) error) {
		orders, err := list(ctx)
		if err != nil {
			fail(err)
			return
		}
		for _, o := range orders {
			if since(o).After(cutoff) {
				continue
			}
			if err := event(ctx, o); err != nil {
				fail(err)
				continue
			}
			announced++
		}
	}
	announce(h.repo.Pending, (*domain.Order).CreatedAt, h.events.OrderCreated)
	announce(h.repo.Cancelling, (*domain.Order).CancelRequestedAt, h.events.OrderCancelRequested)
	if failed > 0 {
		return announced, fmt.Errorf("%d announcements failed, the first: %w", failed, first)
	}
	return announced, nil
}

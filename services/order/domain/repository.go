package domain

import "context"

// Repository stores orders; Update loads, lets fn change, and saves.
type Repository interface {
	// Add stores a new order with its announcement (Events.OrderCreated),
	// in one transaction, both or neither; ErrExists if its id is taken.
	Add(ctx context.Context, o *Order) error
	// Get returns the order as committed, without a write whose
	// transaction is still open.
	Get(ctx context.Context, id string) (*Order, error)
	Update(ctx context.Context, id string, fn func(o *Order) error) error
	// Pending returns every order still PENDING.
	Pending(ctx context.Context) ([]*Order, error)
	// UpdateAnnouncingCancel is Update whose fn may ask to announce the
	// order's cancellation (Events.OrderCancelRequested): the order and the
	// announcement are written in one transaction, both or neither.
	UpdateAnnouncingCancel(ctx context.Context, id string, fn func(o *Order) (announce bool, err error)) error
	// Cancelling returns every order still CANCELLING.
	Cancelling(ctx context.Context) ([]*Order, error)
}

// Events publishes what happened to orders.
type Events interface {
	// OrderCreated announces a new order; it starts the order's saga. It may
	// be published more than once for one order: the saga starts once.
	OrderCreated(ctx context.Context, o *Order) error
	// OrderCancelRequested announces an order's cancel attempt; it starts
	// the attempt's Cancel Order saga. It may be published more than once
	// for one attempt: the saga starts once.
	OrderCancelRequested(ctx context.Context, o *Order) error
}

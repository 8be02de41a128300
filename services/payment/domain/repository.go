package domain

import "context"

// Repository stores payments by order id. Update hands fn the order's
// payment, a NewPayment if there is none yet, and saves what fn leaves.
type Repository interface {
	Get(ctx context.Context, orderID string) (*Payment, error)
	Update(ctx context.Context, orderID string, fn func(p *Payment) error) error
}

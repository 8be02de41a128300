package domain

import "context"

// Repository stores customers. Update loads the customer, lets fn change it
// and saves the result, in one place: the rule lives in fn, the persistence
// in the repository.
type Repository interface {
	Add(ctx context.Context, c *Customer) error
	Get(ctx context.Context, id string) (*Customer, error)
	Update(ctx context.Context, id string, fn func(c *Customer) error) error
}

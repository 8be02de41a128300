package domain

import "context"

// Repository stores customers and their credit decisions. UpdateCredit
// loads the customer with what it holds and its decision on orderID, if
// any, lets fn decide and saves the decision, in one place: the rule lives
// in fn, the persistence in the repository. Decisions for one customer are
// made one at a time.
type Repository interface {
	Add(ctx context.Context, c *Customer) error
	Get(ctx context.Context, id string) (*Customer, error)
	UpdateCredit(ctx context.Context, customerID, orderID string, fn func(c *Customer) error) error
}

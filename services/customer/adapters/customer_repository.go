// Package adapters implements what the customer application uses: the
// repository, on a Kafka-backed store of contracts.CustomerRecord.
package adapters

import (
	"context"
	"fmt"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

// CustomerRepository keeps each customer as one record of the compacted
// topic customer.state, keyed by customer id.
type CustomerRepository struct {
	store *store.Store[contracts.CustomerRecord]
}

var _ domain.Repository = (*CustomerRepository)(nil)

func NewCustomerRepository(s *store.Store[contracts.CustomerRecord]) *CustomerRepository {
	return &CustomerRepository{store: s}
}

func (r *CustomerRepository) Add(ctx context.Context, c *domain.Customer) error {
	return r.store.Update(ctx, c.ID(), func(rec *contracts.CustomerRecord, exists bool) error {
		if exists {
			return fmt.Errorf("customer %s already exists", c.ID())
		}
		*rec = marshal(c)
		return nil
	})
}

func (r *CustomerRepository) Get(_ context.Context, id string) (*domain.Customer, error) {
	rec, ok, err := r.store.Get(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("customer %s: %w", id, domain.ErrNotFound)
	}
	return unmarshal(rec), nil
}

func (r *CustomerRepository) Update(ctx context.Context, id string, fn func(c *domain.Customer) error) error {
	return r.store.Update(ctx, id, func(rec *contracts.CustomerRecord, exists bool) error {
		if !exists {
			return fmt.Errorf("customer %s: %w", id, domain.ErrNotFound)
		}
		c := unmarshal(rec)
		if err := fn(c); err != nil {
			return err
		}
		*rec = marshal(c)
		return nil
	})
}

func marshal(c *domain.Customer) contracts.CustomerRecord {
	rs := make(map[string]contracts.CreditReservation, len(c.Reservations()))
	for order, r := range c.Reservations() {
		rs[order] = contracts.CreditReservation{Amount: r.Amount, Status: string(r.Status)}
	}
	return contracts.CustomerRecord{CustomerID: c.ID(), Name: c.Name(), CreditLimit: c.CreditLimit(), Reservations: rs}
}

func unmarshal(rec *contracts.CustomerRecord) *domain.Customer {
	rs := make(map[string]domain.Reservation, len(rec.Reservations))
	for order, r := range rec.Reservations {
		rs[order] = domain.Reservation{Amount: r.Amount, Status: domain.ReservationStatus(r.Status)}
	}
	return domain.UnmarshalCustomer(rec.CustomerID, rec.Name, rec.CreditLimit, rs)
}

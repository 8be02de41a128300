// Package adapters implements what the customer application uses: the
// repository, on Kafka-backed stores of contracts.CustomerRecord and
// contracts.ReservationRecord.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

// CustomerRepository keeps each customer as one record of the compacted
// topic customer.state, keyed by customer id, and each credit decision as
// one record of customer.reservations, keyed by "<customer id>/<order id>"
// and partitioned by customer id (ReservationPartitionKey), so a customer's
// decisions live in its partition: a decision writes one small record,
// however many orders the customer had. What a customer holds, the sum of
// its RESERVED decisions, is derived: summed from its decisions when first
// needed (they are one range of keys in its partition), then kept current
// by every decision.
type CustomerRepository struct {
	customers    *store.Store[contracts.CustomerRecord]
	reservations *store.Store[contracts.ReservationRecord]
	locks        [64]sync.Mutex // one decision at a time per customer (striped by id)

	mu      sync.RWMutex
	held    map[string]int64 // by customer id, once summed
	read    map[int32]uint64 // the restore of each partition the sums were read from (store.Owned)
	changes uint64           // sums forgotten so far: a sum read before one is not kept
}

// summed, if set (by tests), runs between a sum of what a customer holds
// and its keeping.
var summed func()

var _ domain.Repository = (*CustomerRepository)(nil)

func NewCustomerRepository(customers *store.Store[contracts.CustomerRecord], reservations *store.Store[contracts.ReservationRecord]) *CustomerRepository {
	return &CustomerRepository{customers: customers, reservations: reservations, held: map[string]int64{}, read: map[int32]uint64{}}
}

// Restore runs after the stores' own restores (process.OnRestored). It
// forgets what the customers of each partition read again (store.Owned)
// or given up hold, and only those: their sums are made again from their
// decisions when first needed. An abort's writes put back read nothing
// again; each decision they held forgets its own customer's sum (see
// UpdateCredit). However long a customer's history, an abort or a
// rebalance does not make every other customer's next decision sum it.
func (r *CustomerRepository) Restore(context.Context) error {
	owned := r.reservations.Owned()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes++
	for id := range r.held {
		p, _ := r.reservations.Partition(id + "/") // the partition of its decisions
		if at, ok := owned[p]; !ok || at != r.read[p] {
			delete(r.held, id)
		}
	}
	r.read = owned
	return nil
}

// forget forgets what customer id holds, when a decision's transaction
// aborts: the store put back what the decision replaced.
func (r *CustomerRepository) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes++
	delete(r.held, id)
}

func (r *CustomerRepository) Add(ctx context.Context, c *domain.Customer) error {
	return r.customers.Update(ctx, c.ID(), func(rec *contracts.CustomerRecord, exists bool) error {
		if exists {
			return fmt.Errorf("%w: %s", domain.ErrExists, c.ID())
		}
		*rec = contracts.CustomerRecord{CustomerID: c.ID(), Name: c.Name(), CreditLimit: c.CreditLimit()}
		return nil
	})
}

func (r *CustomerRepository) Get(_ context.Context, id string) (*domain.Customer, error) {
	lock := &r.locks[stripe(id)]
	lock.Lock()
	defer lock.Unlock()
	rec, err := r.customer(id)
	if err != nil {
		return nil, err
	}
	held, err := r.heldBy(id)
	if err != nil {
		return nil, err
	}
	return domain.UnmarshalCustomer(rec.CustomerID, rec.Name, rec.CreditLimit, held, nil), nil
}

func (r *CustomerRepository) UpdateCredit(ctx context.Context, customerID, orderID string, fn func(c *domain.Customer) error) error {
	// A decision's key splits at its last "/" (ReservationPartitionKey):
	// one in an order id would keep the decision with another customer.
	if strings.Contains(orderID, "/") {
		return fmt.Errorf("%w decision: order id %q: a \"/\" in it is not allowed", domain.ErrInvalid, orderID)
	}
	lock := &r.locks[stripe(customerID)]
	lock.Lock()
	defer lock.Unlock()
	if err := r.sumAhead(customerID); err != nil {
		return err
	}

	var held int64
	var changes uint64
	var missing bool
	var notFound error
	decide := func(res *contracts.ReservationRecord, exists bool) ([]*kgo.Record, error) {
		// Read in each try: a write refused as made from a state that
		// changed (an abort or an assignment meanwhile) is made again
		// from the customer as it is now, and what it holds.
		changes = r.changesSoFar()
		// A customer that does not exist is asked all the same: its
		// decision is recorded (domain.NoCustomer, or a release), so that
		// the command sent again gets the same answer once it exists.
		rec, err := r.customer(customerID)
		if missing = errors.Is(err, domain.ErrNotFound); err != nil && !missing {
			return nil, err
		}
		var before int64
		if !missing {
			if before, err = r.heldBy(customerID); err != nil {
				return nil, err
			}
		}
		known := map[string]domain.Reservation{}
		if exists {
			known[orderID] = domain.Reservation{Amount: res.Amount, Status: domain.ReservationStatus(res.Status)}
		}
		var c *domain.Customer
		if missing {
			c = domain.MissingCustomer(customerID, known)
		} else {
			c = domain.UnmarshalCustomer(rec.CustomerID, rec.Name, rec.CreditLimit, before, known)
		}
		notFound = nil
		if err := fn(c); errors.Is(err, domain.ErrNotFound) {
			notFound = err // an answer: recorded, and given once it is
		} else if err != nil {
			return nil, err
		}
		d, ok := c.Reservations()[orderID]
		if !ok {
			return nil, fmt.Errorf("customer %s: nothing was decided on order %s", customerID, orderID)
		}
		*res = contracts.ReservationRecord{OrderID: orderID, CustomerID: customerID, Amount: d.Amount, Status: string(d.Status)}
		held = c.HeldCredit()
		return nil, nil
	}
	aborted := func(committed bool) {
		if !committed {
			r.forget(customerID)
		}
	}
	if err := r.reservations.UpdateAndSendThen(ctx, customerID+"/"+orderID, decide, aborted); err != nil {
		return err
	}
	if !missing {
		r.keep(customerID, held, changes)
	}
	return notFound
}

// sumAhead makes a customer's first sum, which reads each of its
// decisions, before the store locks the decision's key: then it holds up
// no other key of that lock's stripe. The decision reads the sum again,
// kept unless forgotten meanwhile. Called with the customer's lock held.
func (r *CustomerRepository) sumAhead(id string) error {
	r.mu.RLock()
	_, summed := r.held[id]
	r.mu.RUnlock()
	if summed {
		return nil
	}
	if _, err := r.customer(id); err != nil {
		return nil // the decision finds it missing, or fails reading it
	}
	_, err := r.heldBy(id)
	return err
}

func (r *CustomerRepository) customer(id string) (*contracts.CustomerRecord, error) {
	rec, ok, err := r.customers.Get(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("customer %s: %w", id, domain.ErrNotFound)
	}
	return rec, nil
}

// heldBy returns what the customer holds, summing it from its decisions
// the first time. Called with the customer's lock held, so that no
// decision changes the sum meanwhile.
func (r *CustomerRepository) heldBy(id string) (int64, error) {
	r.mu.RLock()
	held, ok := r.held[id]
	changes := r.changes
	r.mu.RUnlock()
	if ok {
		return held, nil
	}
	err := r.reservations.RangePrefix(id+"/", func(_ string, res *contracts.ReservationRecord) bool {
		if domain.ReservationStatus(res.Status) == domain.Reserved {
			held += res.Amount
		}
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("sum the credit customer %s holds: %w", id, err)
	}
	if summed != nil {
		summed()
	}
	r.keep(id, held, changes)
	return held, nil
}

func (r *CustomerRepository) changesSoFar() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.changes
}

// keep keeps what customer id holds, unless a sum was forgotten since it
// was read (a GET that summed while a rebalance or an abort put the
// partitions back): then the next read sums it again.
func (r *CustomerRepository) keep(id string, held int64, changes uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changes == changes {
		r.held[own(r.held, id)] = held
	}
}

// DecisionOver reports whether a credit decision holds nothing and never
// will: refused, released, or asked of a customer that did not exist. It
// only answers its command sent again, so it expires (store.Expire)
// after SAGA_RETENTION; a decision that holds credit stays.
func DecisionOver(r *contracts.ReservationRecord) bool {
	return domain.ReservationStatus(r.Status) != domain.Reserved
}

// ReservationPartitionKey is the key that chooses a decision's partition:
// its customer's id, all of the key before the order id (a UUID). A
// customer id is the customer service's UUID, but a ReserveCredit may name
// any, "a/b" too: its decision must be kept where its command is handled.
func ReservationPartitionKey(key string) string {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return key
	}
	return key[:i]
}

func stripe(id string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % 64)
}

// own returns id as held's key: the key it has already, or a copy of id.
// A decoded id shares a block of the decoder's (Avro's 1 KB slab), which
// the map would keep alive as long as the customer.
func own(held map[string]int64, id string) string {
	if _, ok := held[id]; ok {
		return id
	}
	return strings.Clone(id)
}

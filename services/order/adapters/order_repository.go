// Package adapters implements what the order application uses: the
// repository on a Kafka-backed store, and the publisher of order events.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// OrderRepository keeps each order as one record of the compacted topic
// order.state, keyed by order id. It indexes the orders that may still be
// PENDING or CANCELLING, so the periodic re-announcement reads those, not
// every order ever placed: reindex fills the indexes from each partition
// restored, Add and UpdateAnnouncingCancel add to them, every write marks
// its order again when its transaction ends (an abort may put back PENDING
// or CANCELLING), and Pending and Cancelling drop the orders that have
// moved on, as committed.
type OrderRepository struct {
	store  *store.Store[contracts.OrderRecord]
	events *OrderEvents // the announcements written with an order, in its transaction

	mu         sync.Mutex
	pending    map[string]uint64 // order id -> when it was last indexed (marks)
	cancelling map[string]uint64 // order id -> when it was last indexed (marks)
	marks      uint64            // how many times an order was indexed
	read       map[int32]uint64  // the partitions whose orders were read, each with its restore's number (store.Owned)
}

var _ domain.Repository = (*OrderRepository)(nil)

func NewOrderRepository(s *store.Store[contracts.OrderRecord], events *OrderEvents) *OrderRepository {
	return &OrderRepository{store: s, events: events, pending: map[string]uint64{}, cancelling: map[string]uint64{},
		read: map[int32]uint64{}}
}

// mark indexes the order id in index, or notes that it was indexed again:
// indexed keeps an order marked while it read it.
func (r *OrderRepository) mark(index map[string]uint64, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.marks++
	index[id] = r.marks
}

// reindex indexes the orders still PENDING or CANCELLING of each partition
// restored since it was last read (store.Owned), and only of those: an
// abort's writes put back read nothing again, nor does a rebalance the
// partitions it left in place, however many orders they hold. An order
// indexed while it changed is dropped by indexed, which reads it again.
func (r *OrderRepository) reindex() error {
	owned := r.store.Owned()
	var fresh []int32
	r.mu.Lock()
	for p := range r.read {
		if _, ok := owned[p]; !ok {
			delete(r.read, p) // moved away: read again if it comes back
		}
	}
	for p, at := range owned {
		if got, ok := r.read[p]; !ok || got != at {
			fresh = append(fresh, p)
		}
	}
	r.mu.Unlock()
	if len(fresh) == 0 {
		return nil
	}
	// An order read as a write not over yet made it is marked again when
	// that write's transaction ends: see the writes.
	var pending, cancelling []string
	err := r.store.RangePartitions(fresh, func(id string, rec *contracts.OrderRecord) bool {
		switch domain.State(rec.State) {
		case domain.Pending:
			pending = append(pending, id)
		case domain.Cancelling:
			cancelling = append(cancelling, id)
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("index the pending and cancelling orders: %w", err)
	}
	for _, id := range pending {
		r.mark(r.pending, id)
	}
	for _, id := range cancelling {
		r.mark(r.cancelling, id)
	}
	r.mu.Lock()
	for _, p := range fresh {
		r.read[p] = owned[p]
	}
	r.mu.Unlock()
	return nil
}

// Add writes the order and its OrderCreated, in one transaction. The order
// is indexed first: its transaction may commit though the wait for it ends
// in an error, and an index that holds more than is PENDING costs a read
// (indexed drops the others). It is marked again when its transaction
// ends, which may be after its wait did: a round that read it absent
// before kept it.
func (r *OrderRepository) Add(ctx context.Context, o *domain.Order) error {
	r.mark(r.pending, o.ID())
	return r.store.UpdateAndSendThen(ctx, o.ID(), func(rec *contracts.OrderRecord, exists bool) ([]*kgo.Record, error) {
		if exists {
			return nil, fmt.Errorf("%w: %s", domain.ErrExists, o.ID())
		}
		event, err := record(r.events.created(ctx, o))
		if err != nil {
			return nil, err
		}
		*rec = marshal(o)
		return []*kgo.Record{event}, nil
	}, func(bool) { r.mark(r.pending, o.ID()) })
}

// again marks id in both indexes if its write aborted: what it held
// before, PENDING or CANCELLING perhaps, is put back, and a round may have
// dropped it for what the write made of it.
func (r *OrderRepository) again(id string) func(committed bool) {
	return func(committed bool) {
		if !committed {
			r.mark(r.pending, id)
			r.mark(r.cancelling, id)
		}
	}
}

// Get returns the order as committed: its answers (GET /orders/{id}, a
// create sent again) show no write whose transaction may still abort.
func (r *OrderRepository) Get(_ context.Context, id string) (*domain.Order, error) {
	rec, ok, err := r.store.GetCommitted(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("order %s: %w", id, domain.ErrNotFound)
	}
	return unmarshal(rec), nil
}

func (r *OrderRepository) Update(ctx context.Context, id string, fn func(o *domain.Order) error) error {
	return r.store.UpdateAndSendThen(ctx, id, func(rec *contracts.OrderRecord, exists bool) ([]*kgo.Record, error) {
		if !exists {
			return nil, fmt.Errorf("order %s: %w", id, domain.ErrNotFound)
		}
		o := unmarshal(rec)
		if err := fn(o); err != nil {
			return nil, err
		}
		*rec = marshal(o)
		return nil, nil
	}, r.again(id))
}

// UpdateAnnouncingCancel is Update that, when fn asks, writes
// OrderCancelRequested with the order, in the same transaction.
func (r *OrderRepository) UpdateAnnouncingCancel(ctx context.Context, id string, fn func(o *domain.Order) (bool, error)) error {
	announced := false
	again := r.again(id)
	return r.store.UpdateAndSendThen(ctx, id, func(rec *contracts.OrderRecord, exists bool) ([]*kgo.Record, error) {
		if !exists {
			return nil, fmt.Errorf("order %s: %w", id, domain.ErrNotFound)
		}
		o := unmarshal(rec)
		announce, err := fn(o)
		if err != nil {
			return nil, err
		}
		*rec = marshal(o)
		if !announce {
			return nil, nil
		}
		event, err := record(r.events.cancelRequested(ctx, o))
		if err != nil {
			return nil, err
		}
		// Indexed before the commit, and again when it ends, as Add does.
		r.mark(r.cancelling, id)
		announced = true
		return []*kgo.Record{event}, nil
	}, func(committed bool) {
		if announced {
			r.mark(r.cancelling, id)
		}
		again(committed)
	})
}

// Pending returns the indexed orders still PENDING, as committed, and
// drops the others from the index: an order returns to PENDING only when
// a write aborts, which marks it again, and one whose partition another
// instance owns now is that instance's to announce.
func (r *OrderRepository) Pending(context.Context) ([]*domain.Order, error) {
	return r.indexed(r.pending, domain.Pending)
}

// Cancelling returns the indexed orders still CANCELLING and drops the
// others from the index: an order CANCELLING again is indexed again when
// its new attempt is announced.
func (r *OrderRepository) Cancelling(context.Context) ([]*domain.Order, error) {
	return r.indexed(r.cancelling, domain.Cancelling)
}

// indexed returns the orders of index still in state, as committed, and
// drops the others, unless they were marked again while it read them: a
// write on its way, whose transaction ended since, marks its order again.
func (r *OrderRepository) indexed(index map[string]uint64, state domain.State) ([]*domain.Order, error) {
	if err := r.reindex(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	read := maps.Clone(index)
	r.mu.Unlock()
	var still []*domain.Order
	var moved []string
	for id := range read {
		// Committed: an order dropped for a change that then aborted
		// would be PENDING again, and not indexed.
		rec, ok, err := r.store.GetCommitted(id)
		if errors.Is(err, store.ErrNotOwned) {
			moved = append(moved, id) // its partition moved: its new owner announces it
			continue
		}
		if err != nil {
			return nil, err
		}
		if ok && domain.State(rec.State) == state {
			still = append(still, unmarshal(rec))
		} else {
			moved = append(moved, id)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range moved {
		if index[id] == read[id] {
			delete(index, id)
		}
	}
	return still, nil
}

func marshal(o *domain.Order) contracts.OrderRecord {
	rec := contracts.OrderRecord{
		OrderID: o.ID(), CustomerID: o.CustomerID(), OrderTotal: o.Total(),
		State: string(o.State()), RejectionReason: o.RejectionReason(), CreatedAt: o.CreatedAt(),
		CancelAttempt: o.CancelAttempt(), CancelRequestedAt: o.CancelRequestedAt(), CancelRefusalReason: o.CancelRefusalReason(),
	}
	// The first key started the attempt, the others joined it.
	if keys := o.CancelKeys(); len(keys) > 0 {
		rec.CancelKey, rec.CancelJoinedKeys = keys[0], keys[1:]
	}
	return rec
}

func unmarshal(rec *contracts.OrderRecord) *domain.Order {
	var keys []string
	if rec.CancelKey != "" || len(rec.CancelJoinedKeys) > 0 {
		keys = append([]string{rec.CancelKey}, rec.CancelJoinedKeys...)
	}
	return domain.UnmarshalOrder(rec.OrderID, rec.CustomerID, rec.OrderTotal, domain.State(rec.State), rec.RejectionReason, rec.CreatedAt).
		WithCancellation(rec.CancelAttempt, rec.CancelRequestedAt, rec.CancelRefusalReason, keys)
}

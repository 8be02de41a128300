package command_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/services/order/app/command"
	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// orders is an in-memory domain.Repository.
type orders struct {
	mu     sync.Mutex
	m      map[string]*domain.Order
	events *events // announces in Add and UpdateAnnouncingCancel, if set
}

// Add announces through events, whose failure fails the whole write, as a
// transaction does.
func (r *orders) Add(ctx context.Context, o *domain.Order) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[o.ID()]; ok {
		return domain.ErrExists
	}
	if r.events != nil {
		if err := r.events.OrderCreated(ctx, o); err != nil {
			return err
		}
	}
	r.m[o.ID()] = o
	return nil
}

func (r *orders) Get(_ context.Context, id string) (*domain.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o, ok := r.m[id]; ok {
		return o, nil
	}
	return nil, domain.ErrNotFound
}

func (r *orders) Update(ctx context.Context, id string, fn func(o *domain.Order) error) error {
	o, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	return fn(o)
}

func (r *orders) Pending(context.Context) ([]*domain.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var pending []*domain.Order
	for _, o := range r.m {
		if o.State() == domain.Pending {
			pending = append(pending, o)
		}
	}
	return pending, nil
}

func (r *orders) Cancelling(context.Context) ([]*domain.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var cancelling []*domain.Order
	for _, o := range r.m {
		if o.State() == domain.Cancelling {
			cancelling = append(cancelling, o)
		}
	}
	return cancelling, nil
}

// UpdateAnnouncingCancel announces through events, as Add does.
func (r *orders) UpdateAnnouncingCancel(ctx context.Context, id string, fn func(o *domain.Order) (bool, error)) error {
	o, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	changed := *o
	announce, err := fn(&changed)
	if err != nil {
		return err
	}
	if announce && r.events != nil {
		if err := r.events.OrderCancelRequested(ctx, &changed); err != nil {
			return err
		}
	}
	*o = changed
	return nil
}

// events records the announced order ids, or fails while down.
type events struct {
	down      bool
	refused   map[string]bool // the orders whose announcements fail
	announced []string
	cancels   []string // order id/attempt
}

func (e *events) OrderCancelRequested(_ context.Context, o *domain.Order) error {
	if e.down {
		return errors.New("kafka unreachable")
	}
	e.cancels = append(e.cancels, fmt.Sprintf("%s/%d", o.ID(), o.CancelAttempt()))
	return nil
}

func (e *events) OrderCreated(_ context.Context, o *domain.Order) error {
	if e.down || e.refused[o.ID()] {
		return errors.New("kafka unreachable")
	}
	e.announced = append(e.announced, o.ID())
	return nil
}

// An order is accepted with its announcement, in one write: with Kafka
// failing, neither happens. An order that stays PENDING is announced again
// by RepublishPending once it has been pending long enough.
func TestAnOrderIsAnnouncedWithItsOrderAndAgainIfStuck(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	ev := &events{down: true}
	repo := &orders{m: map[string]*domain.Order{}, events: ev}
	create := command.NewCreateOrderHandler(repo, clock)
	republish := command.NewRepublishPendingHandler(repo, ev, clock)

	cmd := command.CreateOrder{CustomerID: "c1", OrderTotal: 100, IdempotencyKey: "k1"}
	// The handler passes the refusal on; that the order is not stored
	// without its announcement is the repository's to keep (its tests, and
	// TestAnOrderWhoseAnnouncementIsRefusedIsNotAccepted).
	if _, err := create.Handle(t.Context(), cmd); err == nil {
		t.Fatal("create with Kafka down: got nil error, want the write refused")
	}

	ev.down = false
	for range 2 {
		if _, err := create.Handle(t.Context(), cmd); err != nil {
			t.Fatalf("create, then again with its key: %v", err)
		}
	}
	id := command.OrderID("c1", "k1")
	if !slices.Equal(ev.announced, []string{id}) {
		t.Fatalf("announced: got %v, want [%s]", ev.announced, id)
	}
	if n, err := republish.Handle(t.Context()); err != nil || n != 0 {
		t.Fatalf("republish before a minute: got %d, %v; want 0 announced", n, err)
	}
	now = now.Add(time.Minute)
	if n, err := republish.Handle(t.Context()); err != nil || n != 1 {
		t.Fatalf("republish after a minute: got %d, %v; want 1 announced", n, err)
	}
	if !slices.Equal(ev.announced, []string{id, id}) {
		t.Errorf("announced: got %v, want [%s %s]", ev.announced, id, id)
	}
}

// The same idempotency key of the same customer places one order: sent
// again, it returns that order; with another total, it is refused. Without
// a key, every command places an order.
func TestAnIdempotencyKeyPlacesOneOrder(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	repo := &orders{m: map[string]*domain.Order{}}
	create := command.NewCreateOrderHandler(repo, func() time.Time { return now })
	place := func(customer string, total int64, key string) (*domain.Order, error) {
		return create.Handle(t.Context(), command.CreateOrder{CustomerID: customer, OrderTotal: total, IdempotencyKey: key})
	}

	first, err := place("c1", 100, "k1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := place("c1", 100, "k1")
	if err != nil || again.ID() != first.ID() {
		t.Errorf("the same key again: got order %v (error %v), want %s", again, err, first.ID())
	}
	if _, err := place("c1", 200, "k1"); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("the same key with another total: got %v, want %v", err, domain.ErrConflict)
	}
	other, err := place("c2", 100, "k1")
	if err != nil || other.ID() == first.ID() {
		t.Errorf("the same key of another customer: got order %v (error %v), want a new one", other, err)
	}
	a, errA := place("c1", 100, "")
	b, errB := place("c1", 100, "")
	if errA != nil || errB != nil || a.ID() == b.ID() || a.ID() == first.ID() {
		t.Errorf("without a key: got orders %v and %v (errors %v, %v), want two new ones", a, b, errA, errB)
	}
	if len(repo.m) != 4 {
		t.Errorf("orders stored: got %d, want 4", len(repo.m))
	}
}

// A cancellation is accepted with its announcement, in one write: with
// Kafka failing, neither happens. Sent twice, it announces once. An order
// that stays CANCELLING is announced again by RepublishPending once its
// cancellation is old enough.
func TestACancellationIsAnnouncedWithItsOrderAndAgainIfStuck(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	ev := &events{}
	repo := &orders{m: map[string]*domain.Order{}, events: ev}
	create := command.NewCreateOrderHandler(repo, clock)
	cancel := command.NewRequestCancelHandler(repo, clock)
	republish := command.NewRepublishPendingHandler(repo, ev, clock)

	o, err := create.Handle(t.Context(), command.CreateOrder{CustomerID: "c1", OrderTotal: 100})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cancel.Handle(t.Context(), o.ID(), ""); !errors.Is(err, domain.ErrConflict) || got.State() != domain.Pending {
		t.Fatalf("cancel a PENDING order: got %v, %v; want the order PENDING and ErrConflict", got, err)
	}
	if err := repo.Update(t.Context(), o.ID(), func(o *domain.Order) error { return o.Approve() }); err != nil {
		t.Fatal(err)
	}

	ev.down = true
	// Passed on; the repository keeps the order APPROVED
	// (TestACancellationWhoseAnnouncementIsRefusedIsNotWritten).
	if _, err := cancel.Handle(t.Context(), o.ID(), ""); err == nil {
		t.Fatal("cancel with Kafka down: got nil error, want the write refused")
	}

	ev.down = false
	for range 2 {
		got, err := cancel.Handle(t.Context(), o.ID(), "")
		if err != nil || got.State() != domain.Cancelling || got.CancelAttempt() != 1 {
			t.Fatalf("cancel: got %v, %v; want the order CANCELLING, attempt 1", got, err)
		}
	}
	want := []string{o.ID() + "/1"}
	if !slices.Equal(ev.cancels, want) {
		t.Fatalf("announced: got %v, want %v", ev.cancels, want)
	}
	if n, err := republish.Handle(t.Context()); err != nil || n != 0 {
		t.Fatalf("republish before a minute: got %d, %v; want 0 announced", n, err)
	}
	now = now.Add(time.Minute)
	if n, err := republish.Handle(t.Context()); err != nil || n != 1 {
		t.Fatalf("republish after a minute: got %d, %v; want 1 announced", n, err)
	}
	if want = append(want, o.ID()+"/1"); !slices.Equal(ev.cancels, want) {
		t.Errorf("announced: got %v, want %v", ev.cancels, want)
	}
}

// The request that started a cancellation, sent again under its
// Idempotency-Key (a client that did not learn its answer), gets the
// order as the cancellation left it and announces nothing: a refusal takes
// milliseconds, so a retry found the order APPROVED again and started a
// second saga; after a cancellation it got a conflict.
func TestACancellationSentAgainUnderItsKeyStartsNothing(t *testing.T) {
	clock := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	ev := &events{}
	repo := &orders{m: map[string]*domain.Order{}, events: ev}
	create := command.NewCreateOrderHandler(repo, clock)
	cancel := command.NewRequestCancelHandler(repo, clock)
	approved := func() string {
		o, err := create.Handle(t.Context(), command.CreateOrder{CustomerID: "c1", OrderTotal: 100})
		if err != nil {
			t.Fatal(err)
		}
		if err := repo.Update(t.Context(), o.ID(), func(o *domain.Order) error { return o.Approve() }); err != nil {
			t.Fatal(err)
		}
		return o.ID()
	}
	for _, c := range []struct {
		name  string
		end   func(o *domain.Order) error
		state domain.State
	}{
		{"refused", func(o *domain.Order) error { return o.RefuseCancel(1, "REFUND_REFUSED") }, domain.Approved},
		{"cancelled", func(o *domain.Order) error { return o.Cancel(1) }, domain.Cancelled},
	} {
		id := approved()
		if _, err := cancel.Handle(t.Context(), id, "k-"+c.name); err != nil {
			t.Fatal(err)
		}
		if err := repo.Update(t.Context(), id, c.end); err != nil {
			t.Fatal(err)
		}
		got, err := cancel.Handle(t.Context(), id, "k-"+c.name)
		if err != nil || got.State() != c.state || got.CancelAttempt() != 1 {
			t.Errorf("%s, then sent again: got %v, %v; want the order %s, attempt 1, no error", c.name, got, err, c.state)
		}
		if want := []string{id + "/1"}; !slices.Equal(ev.cancels[len(ev.cancels)-1:], want) || slices.Contains(ev.cancels, id+"/2") {
			t.Errorf("%s, then sent again: announced %v, want attempt 1 only", c.name, ev.cancels)
		}
	}
}

// An announcement that fails does not hold back the round's others: each
// stuck order is announced, and the round reports the failures.
func TestAFailedAnnouncementHoldsBackNoOther(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	ev := &events{}
	repo := &orders{m: map[string]*domain.Order{}, events: ev}
	create := command.NewCreateOrderHandler(repo, clock)
	stuck, err := create.Handle(t.Context(), command.CreateOrder{CustomerID: "c1", OrderTotal: 100})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, err := create.Handle(t.Context(), command.CreateOrder{CustomerID: "c2", OrderTotal: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Update(t.Context(), cancelled.ID(), func(o *domain.Order) error { return o.Approve() }); err != nil {
		t.Fatal(err)
	}
	if _, err := command.NewRequestCancelHandler(repo, clock).Handle(t.Context(), cancelled.ID(), ""); err != nil {
		t.Fatal(err)
	}
	ev.refused, ev.cancels = map[string]bool{stuck.ID(): true}, nil
	now = now.Add(time.Minute)
	n, err := command.NewRepublishPendingHandler(repo, ev, clock).Handle(t.Context())
	if err == nil || n != 1 || !slices.Equal(ev.cancels, []string{cancelled.ID() + "/1"}) {
		t.Errorf("round: got %d announced (%v), cancellations %v; want the failure, and the stuck cancellation announced", n, err, ev.cancels)
	}
}

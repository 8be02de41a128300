package adapters_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/platform/store/storetest"
	"github.com/kafkasaga/kafkasaga/services/customer/adapters"
	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

// What a customer holds is the sum of its RESERVED decisions, found again
// by an instance that restores the partitions: a released decision counts
// for nothing, and another customer's decisions are not summed with it.
func TestWhatACustomerHoldsIsFoundAgainAfterARestore(t *testing.T) {
	ctx := context.Background()
	restored := repositories(t)

	r, _ := restored()
	for _, id := range []string{"ada", "bob"} {
		c, err := domain.NewCustomer(id, id, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	decide := func(customer, order string, fn func(c *domain.Customer) error) {
		t.Helper()
		if err := r.UpdateCredit(ctx, customer, order, fn); err != nil {
			t.Fatalf("UpdateCredit(%s, %s): %v", customer, order, err)
		}
	}
	for _, d := range []struct {
		customer, order string
		amount          int64
	}{{"ada", "o1", 300}, {"ada", "o2", 200}, {"ada", "o3", 50}, {"bob", "o4", 100}} {
		decide(d.customer, d.order, func(c *domain.Customer) error { _, err := c.ReserveCredit(d.order, d.amount); return err })
	}
	decide("ada", "o3", func(c *domain.Customer) error { c.ReleaseCredit("o3"); return nil })

	want := map[string]int64{"ada": 500, "bob": 100}
	for name, r := range map[string]*adapters.CustomerRepository{"the same instance": r, "an instance that restored": restoredRepository(restored)} {
		for id, held := range want {
			c, err := r.Get(ctx, id)
			if err != nil || c.HeldCredit() != held {
				t.Errorf("%s: customer %s holds %v (%v), want %d", name, id, c, err, held)
			}
		}
	}

	// An order asked about before its customer existed is answered the
	// same once the customer exists (its saga was told, and rejected the
	// order), and holds nothing.
	reserve := func(c *domain.Customer) error { _, err := c.ReserveCredit("o9", 100); return err }
	if err := r.UpdateCredit(ctx, "cyd", "o9", reserve); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("ReserveCredit for a customer that does not exist: got %v, want ErrNotFound", err)
	}
	cyd, err := domain.NewCustomer("cyd", "cyd", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(ctx, cyd); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*adapters.CustomerRepository{"the same instance": r, "an instance that restored": restoredRepository(restored)} {
		if err := r.UpdateCredit(ctx, "cyd", "o9", reserve); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%s: the same ReserveCredit once the customer exists: got %v, want ErrNotFound, as the first time", name, err)
		}
		if c, err := r.Get(ctx, "cyd"); err != nil || c.HeldCredit() != 0 {
			t.Errorf("%s: customer cyd holds %v (%v), want nothing", name, c, err)
		}
	}
}

// repositories starts an embedded stack and returns a func that makes a
// customer repository on it, as an instance does once it restored its
// partitions, and returns with it its store of decisions.
func repositories(t *testing.T) func() (*adapters.CustomerRepository, *store.Store[contracts.ReservationRecord]) {
	t.Helper()
	return repositoriesWriting(t, nil)
}

// repositoriesWriting is repositories whose decisions go through
// decisions, if not nil, rather than straight to Kafka.
func repositoriesWriting(t *testing.T, decisions store.Sender) func() (*adapters.CustomerRepository, *store.Store[contracts.ReservationRecord]) {
	t.Helper()
	kafka, producer, sd := storetest.Stack(t, "customer-repository-test", &contracts.CustomerRecord{}, &contracts.ReservationRecord{})
	return func() (*adapters.CustomerRepository, *store.Store[contracts.ReservationRecord]) {
		t.Helper()
		customers := newStore[contracts.CustomerRecord](t, kafka, producer, sd, contracts.TopicCustomerState, nil)
		var sender store.Sender = producer
		if decisions != nil {
			sender = decisions
		}
		reservations := newStore[contracts.ReservationRecord](t, kafka, sender, sd, contracts.TopicCustomerReservations,
			adapters.ReservationPartitionKey)
		r := adapters.NewCustomerRepository(customers, reservations)
		if err := r.Restore(context.Background()); err != nil {
			t.Fatal(err)
		}
		return r, reservations
	}
}

func restoredRepository(restored func() (*adapters.CustomerRepository, *store.Store[contracts.ReservationRecord])) *adapters.CustomerRepository {
	r, _ := restored()
	return r
}

// A sum of what a customer holds read before a restore (a GET while a
// rebalance or an abort puts the partitions back) is not kept after it:
// the next read sums what the restore brought.
func TestASumReadBeforeARestoreIsNotKept(t *testing.T) {
	ctx := context.Background()
	restored := repositories(t)
	r, reservations := restored()
	c, err := domain.NewCustomer("ada", "ada", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(ctx, c); err != nil {
		t.Fatal(err)
	}
	reserve := func(r *adapters.CustomerRepository, order string, amount int64) {
		t.Helper()
		if err := r.UpdateCredit(ctx, "ada", order, func(c *domain.Customer) error { _, err := c.ReserveCredit(order, amount); return err }); err != nil {
			t.Fatal(err)
		}
	}
	reserve(r, "o1", 300)
	other := restoredRepository(restored) // the instance that decides meanwhile
	if err := reservations.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx); err != nil { // forgets the sum: the next read makes it
		t.Fatal(err)
	}

	summing, resume := make(chan struct{}), make(chan struct{})
	unset := adapters.SetSummed(func() { close(summing); <-resume })
	got := make(chan error, 1)
	go func() { _, err := r.Get(ctx, "ada"); got <- err }()
	<-summing
	unset()
	reserve(other, "o2", 200)
	if err := reservations.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	close(resume)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if c, err := r.Get(ctx, "ada"); err != nil || c.HeldCredit() != 500 {
		t.Errorf("after the restore, ada holds %v (%v), want 500", c, err)
	}
}

// A restore that read no partition again, as after an abort's writes
// were put back, sums no customer again: a customer with millions of
// decisions is not summed in the next decision's transaction after every
// abort. One that read the partitions again sums each customer anew.
func TestOnlyAPartitionReadAgainIsSummedAgain(t *testing.T) {
	ctx := context.Background()
	r, reservations := repositories(t)()
	for _, id := range []string{"ada", "bob"} {
		addCustomer(t, r, id, 1000)
		reserve(t, r, id, "o-"+id, 100)
	}
	sums := 0
	defer adapters.SetSummed(func() { sums++ })()
	getAll := func(when string) {
		t.Helper()
		for _, id := range []string{"ada", "bob"} {
			if c, err := r.Get(ctx, id); err != nil || c.HeldCredit() != 100 {
				t.Errorf("%s: customer %s holds %v (%v), want 100", when, id, c, err)
			}
		}
	}
	if err := r.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	getAll("after a restore that read nothing again")
	if sums != 0 {
		t.Errorf("after a restore that read nothing again: %d customers summed again, want none", sums)
	}
	if err := reservations.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	getAll("after the partitions were read again")
	if sums != 2 {
		t.Errorf("after the partitions were read again: %d customers summed again, want 2", sums)
	}
}

// A decision whose transaction aborts is forgotten with what its customer
// holds, and only its customer's sum. A decision refused because an
// abort came between its read and its write is made again from what the
// customer holds after the abort: not rejected for credit that the
// aborted decision held.
func TestADecisionIsMadeAgainFromWhatAnAbortLeft(t *testing.T) {
	ctx := context.Background()
	held := &heldDecisions{}
	r, _ := repositoriesWriting(t, held)()
	addCustomer(t, r, "ada", 1000)
	addCustomer(t, r, "bob", 1000)
	reserve(t, r, "bob", "o-bob", 100)
	held.end(true)
	reserve(t, r, "ada", "o1", 300) // its transaction is still open

	tries := 0
	err := r.UpdateCredit(ctx, "ada", "o2", func(c *domain.Customer) error {
		if tries++; tries == 1 {
			held.end(false) // o1's transaction aborts between the read and the write
		}
		_, err := c.ReserveCredit("o2", 800)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	held.end(true)
	if err := r.Restore(ctx); err != nil { // as the process does after an abort
		t.Fatal(err)
	}
	sums := 0
	defer adapters.SetSummed(func() { sums++ })()
	if c, err := r.Get(ctx, "ada"); err != nil || c.HeldCredit() != 800 {
		t.Errorf("ada holds %v (%v), want 800: o1 aborted, o2 reserved (tried %d times)", c, err, tries)
	}
	if c, err := r.Get(ctx, "bob"); err != nil || c.HeldCredit() != 100 {
		t.Errorf("bob holds %v (%v), want 100", c, err)
	}
	if sums != 0 {
		t.Errorf("%d customers summed again after the abort, want none: ada's decision kept its sum, and bob's was not touched", sums)
	}
}

// A customer's first sum after a restore, which reads each of its
// decisions, is made before the store locks the decision's key: another
// customer's decision whose key shares that lock's stripe does not wait
// for it.
func TestAFirstSumHoldsNoKeyOfTheStore(t *testing.T) {
	ctx := context.Background()
	r, reservations := repositories(t)()
	addCustomer(t, r, "ada", 1000)
	addCustomer(t, r, "bob", 1000)
	reserve(t, r, "ada", "o1", 100)
	if err := reservations.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx); err != nil { // forgets the sums: the next decisions make them
		t.Fatal(err)
	}
	bobs := storeStripeOf("bob", "ada/o2")
	summing, resume := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	defer adapters.SetSummed(func() {
		if first.CompareAndSwap(false, true) {
			close(summing)
			<-resume
		}
	})()
	decided := make(chan error, 1)
	go func() {
		decided <- r.UpdateCredit(ctx, "ada", "o2", func(c *domain.Customer) error { _, err := c.ReserveCredit("o2", 200); return err })
	}()
	<-summing // ada's sum, which stops here
	bobDecided := make(chan error, 1)
	go func() {
		bobDecided <- r.UpdateCredit(ctx, "bob", bobs, func(c *domain.Customer) error { _, err := c.ReserveCredit(bobs, 50); return err })
	}()
	select {
	case err := <-bobDecided:
		bobDecided <- err
	case <-time.After(5 * time.Second):
		t.Errorf("bob's decision on %s waited for ada's sum", bobs)
	}
	close(resume)
	for _, ch := range []chan error{decided, bobDecided} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]int64{"ada": 300, "bob": 50} {
		if c, err := r.Get(ctx, id); err != nil || c.HeldCredit() != want {
			t.Errorf("%s holds %v (%v), want %d", id, c, err, want)
		}
	}
}

// storeStripeOf returns an order id whose decision for customer is locked
// by the store with key: the same stripe of platform/store's locks.
func storeStripeOf(customer, key string) string {
	for i := 0; ; i++ {
		if o := fmt.Sprintf("o-%d", i); store.SharesLock(customer+"/"+o, key) {
			return o
		}
	}
}

func addCustomer(t *testing.T, r *adapters.CustomerRepository, id string, limit int64) {
	t.Helper()
	c, err := domain.NewCustomer(id, id, limit)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func reserve(t *testing.T, r *adapters.CustomerRepository, customer, order string, amount int64) {
	t.Helper()
	err := r.UpdateCredit(context.Background(), customer, order, func(c *domain.Customer) error {
		ok, err := c.ReserveCredit(order, amount)
		if err == nil && !ok {
			err = fmt.Errorf("%s rejected", order)
		}
		return err
	})
	if err != nil {
		t.Fatalf("reserve %d for %s/%s: %v", amount, customer, order, err)
	}
}

// heldDecisions holds the decisions written, as a handler's open
// transaction does (they are visible at once), until end commits or
// aborts them; an abort moves the epoch, as a session's does.
type heldDecisions struct {
	mu    sync.Mutex
	overs []func(bool)
	epoch uint64
}

func (h *heldDecisions) Epoch() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.epoch
}

func (h *heldDecisions) Add(ctx context.Context, _ []*kgo.Record, over func(bool)) (func() error, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if messaging.Stale(ctx, h.epoch) {
		return nil, messaging.ErrStaleRead
	}
	if over != nil {
		h.overs = append(h.overs, over)
	}
	return func() error { return nil }, nil
}

func (h *heldDecisions) AddAcked(context.Context, []*kgo.Record, func() []*kgo.Record, func(bool)) (func() error, error) {
	return nil, errors.New("a decision is not archived")
}

func (h *heldDecisions) end(committed bool) {
	h.mu.Lock()
	overs := h.overs
	h.overs = nil
	h.mu.Unlock()
	for _, over := range overs {
		over(committed)
	}
	if !committed {
		h.mu.Lock()
		h.epoch++
		h.mu.Unlock()
	}
}

func newStore[T any](t *testing.T, kafka config.Kafka, producer store.Sender, sd *serde.Serde, topic string, partitionKey func(string) string) *store.Store[T] {
	t.Helper()
	codec, err := store.AvroCodec[T](sd, topic)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.New(store.Config[T]{Topic: topic, Kgo: []kgo.Opt{kgo.SeedBrokers(kafka.Brokers...)}, Producer: producer,
		Codec: codec, PartitionKey: partitionKey}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// A decision is partitioned by its customer's id whatever that holds: an
// order for customer "a/b" has its ReserveCredit handled in the partition
// of "a/b", and its decision must be kept there, not in that of "a", which
// another instance may own.
func TestADecisionIsPartitionedByItsWholeCustomerID(t *testing.T) {
	for _, customer := range []string{"c1", "a/b", "/", "a//b/"} {
		if got := adapters.ReservationPartitionKey(customer + "/" + uuid.NewString()); got != customer {
			t.Errorf("customer %q: partition key %q", customer, got)
		}
	}
}

// A decision's key is its customer's id and its order's, split at the
// last "/": an order id with a "/" would be kept in another customer's
// partition, outside what its customer holds. It is refused.
func TestAnOrderIDWithASlashIsRefused(t *testing.T) {
	ctx := context.Background()
	restored := repositories(t)
	r, _ := restored()
	c, err := domain.NewCustomer("ada", "ada", 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(ctx, c); err != nil {
		t.Fatal(err)
	}
	reserve := func(order string) func(c *domain.Customer) error {
		return func(c *domain.Customer) error { _, err := c.ReserveCredit(order, 100); return err }
	}
	if err := r.UpdateCredit(ctx, "ada", "x/o1", reserve("x/o1")); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("ReserveCredit for order x/o1: got %v, want ErrInvalid", err)
	}
	for name, r := range map[string]*adapters.CustomerRepository{"the same instance": r, "an instance that restored": restoredRepository(restored)} {
		if c, err := r.Get(ctx, "ada"); err != nil || c.HeldCredit() != 0 {
			t.Errorf("%s: ada holds %v (%v), want 0", name, c, err)
		}
	}
}

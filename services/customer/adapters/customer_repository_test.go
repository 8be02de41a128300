package adapters_test

import (
	"context"
	"errors"
	"github.com/google/uuid"
	"log/slog"
	"testing"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
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
	stack := devstack.StartForTest(t)
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL()}
	if err := messaging.EnsureTopics(kafka, contracts.Topics()); err != nil {
		t.Fatal(err)
	}
	producer, err := messaging.NewSyncSender(kafka, "customer-repository-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { producer.Close() })
	sd, err := serde.New(srclient.NewSchemaRegistryClient(kafka.SchemaRegistryURL), serde.Config{AutoRegister: true},
		&contracts.CustomerRecord{}, &contracts.ReservationRecord{})
	if err != nil {
		t.Fatal(err)
	}
	return func() (*adapters.CustomerRepository, *store.Store[contracts.ReservationRecord]) {
		t.Helper()
		customers := newStore[contracts.CustomerRecord](t, kafka, producer, sd, contracts.TopicCustomerState, nil)
		reservations := newStore[contracts.ReservationRecord](t, kafka, producer, sd, contracts.TopicCustomerReservations,
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
	other := restoredRepository(restored)  // the instance that decides meanwhile
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

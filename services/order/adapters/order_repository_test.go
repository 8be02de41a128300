package adapters_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/platform/store/storetest"
	"github.com/kafkasaga/kafkasaga/services/order/adapters"
	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// Pending orders whose partition moved to another instance are that
// instance's to announce: the ones left are still returned, not an error
// that stops every announcement of this instance.
func TestPendingSkipsOrdersOfPartitionsMovedAway(t *testing.T) {
	s, r := newRepository(t)()
	ctx := context.Background()
	byPartition := map[int32]string{}
	for i := 0; len(byPartition) < 2; i++ {
		o := aNewOrder(t)
		p := store.PartitionOf(o.ID(), contracts.Partitions)
		if _, seen := byPartition[p]; seen {
			continue
		}
		if err := r.Add(ctx, o); err != nil {
			t.Fatal(err)
		}
		byPartition[p] = o.ID()
	}
	var moved, kept int32 = -1, -1
	for p := range byPartition {
		if moved < 0 {
			moved = p
		} else {
			kept = p
		}
	}
	s.Revoke([]int32{moved})

	pending, err := r.Pending(ctx)
	if err != nil {
		t.Fatalf("Pending after a partition moved away: %v", err)
	}
	if len(pending) != 1 || pending[0].ID() != byPartition[kept] {
		t.Errorf("Pending: got %d orders, want the one of the partition still owned (%s)", len(pending), byPartition[kept])
	}
}

// An instance that restored the partitions announces the orders still
// PENDING, and only those, though its restore read none of them.
func TestPendingOrdersAreFoundAfterARestore(t *testing.T) {
	restored := newRepository(t)
	ctx := context.Background()
	_, r := restored()
	var ids []string
	for range 2 {
		o := aNewOrder(t)
		if err := r.Add(ctx, o); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.ID())
	}
	if err := r.Update(ctx, ids[0], func(o *domain.Order) error { return o.Approve() }); err != nil {
		t.Fatal(err)
	}
	_, again := restored()
	pending, err := again.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].ID() != ids[1] {
		t.Errorf("Pending after a restore: got %d orders, want only %s", len(pending), ids[1])
	}
}

// pendingCommit is a Sender whose writes commit, but whose waits end
// before they learn it: messaging.ErrCommitPending.
type pendingCommit struct{ store.Sender }

func (p pendingCommit) Add(ctx context.Context, msgs []*kgo.Record, over func(bool)) (func() error, error) {
	wait, err := p.Sender.Add(ctx, msgs, over)
	if err != nil {
		return nil, err
	}
	return func() error {
		if err := wait(); err != nil {
			return err
		}
		return messaging.ErrCommitPending
	}, nil
}

// An order whose write committed though its wait did not learn it (the
// client got a 503, and its retry finds the order there) is announced
// again if it stays PENDING, as any other.
func TestAnOrderWhoseCommitWasNotAwaitedIsIndexed(t *testing.T) {
	_, r := newRepositoryOn(t, func(s store.Sender) store.Sender { return pendingCommit{s} })()
	if _, err := r.Pending(context.Background()); err != nil { // the index made, as by an earlier round
		t.Fatal(err)
	}
	o := aNewOrder(t)
	if err := r.Add(context.Background(), o); !errors.Is(err, messaging.ErrCommitPending) {
		t.Fatalf("Add: got %v, want ErrCommitPending", err)
	}
	pending, err := r.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].ID() != o.ID() {
		t.Errorf("Pending: got %d orders, want %s", len(pending), o.ID())
	}
}

// roundDuring runs during (an announcement round) as an order's write is
// sent, before it is visible: a write that waits for a commit in progress.
type roundDuring struct {
	store.Sender
	during *func()
}

func (s roundDuring) Add(ctx context.Context, msgs []*kgo.Record, over func(bool)) (func() error, error) {
	if *s.during != nil && slices.ContainsFunc(msgs, func(r *kgo.Record) bool { return r.Topic == contracts.TopicOrderEvents }) {
		(*s.during)()
	}
	return s.Sender.Add(ctx, msgs, over)
}

// An announcement round while an order's write is on its way does not
// drop the order from the index: it reads the order as not there yet (or
// not CANCELLING yet), and the order, once written, would never be
// announced again.
func TestAnOrderWrittenDuringARoundStaysIndexed(t *testing.T) {
	var during func()
	_, r := newRepositoryOn(t, func(s store.Sender) store.Sender { return roundDuring{s, &during} })()
	ctx := context.Background()
	round := func() {
		if _, err := r.Pending(ctx); err != nil {
			t.Error(err)
		}
		if _, err := r.Cancelling(ctx); err != nil {
			t.Error(err)
		}
	}
	round() // the index made, as by an earlier round
	during = round
	o := aNewOrder(t)
	if err := r.Add(ctx, o); err != nil {
		t.Fatal(err)
	}
	if pending, err := r.Pending(ctx); err != nil || len(pending) != 1 || pending[0].ID() != o.ID() {
		t.Errorf("Pending: got %d orders (%v), want %s", len(pending), err, o.ID())
	}
	during = nil
	if err := r.Update(ctx, o.ID(), func(o *domain.Order) error { return o.Approve() }); err != nil {
		t.Fatal(err)
	}
	during = round
	if err := r.UpdateAnnouncingCancel(ctx, o.ID(), func(o *domain.Order) (bool, error) { return o.RequestCancel(time.Now(), "k") }); err != nil {
		t.Fatal(err)
	}
	if cancelling, err := r.Cancelling(ctx); err != nil || len(cancelling) != 1 || cancelling[0].ID() != o.ID() {
		t.Errorf("Cancelling: got %d orders (%v), want %s", len(cancelling), err, o.ID())
	}
}

// newRepository starts the embedded stack and returns a function that
// builds a store of order.state restored from it and its repository:
// another instance each time.
func newRepository(t *testing.T) func() (*store.Store[contracts.OrderRecord], *adapters.OrderRepository) {
	t.Helper()
	return newRepositoryOn(t, func(s store.Sender) store.Sender { return s })
}

// newRepositoryOn is newRepository whose stores write through what wrap
// makes of the producer.
func newRepositoryOn(t *testing.T, wrap func(store.Sender) store.Sender) func() (*store.Store[contracts.OrderRecord], *adapters.OrderRepository) {
	t.Helper()
	return newRepositoryWith(t, wrap, func(c store.Codec[contracts.OrderRecord]) store.Codec[contracts.OrderRecord] { return c })
}

// newRepositoryWith is newRepositoryOn whose stores decode through what
// wrapCodec makes of the codec.
func newRepositoryWith(t *testing.T, wrap func(store.Sender) store.Sender,
	wrapCodec func(store.Codec[contracts.OrderRecord]) store.Codec[contracts.OrderRecord],
) func() (*store.Store[contracts.OrderRecord], *adapters.OrderRepository) {
	t.Helper()
	kafka, producer, sd := storetest.Stack(t, "order-repository-test", &contracts.OrderRecord{}, &contracts.OrderCreated{})
	codec, err := store.AvroCodec[contracts.OrderRecord](sd, contracts.TopicOrderState)
	if err != nil {
		t.Fatal(err)
	}
	return func() (*store.Store[contracts.OrderRecord], *adapters.OrderRepository) {
		t.Helper()
		s, err := store.New(store.Config[contracts.OrderRecord]{Topic: contracts.TopicOrderState,
			Kgo: []kgo.Opt{kgo.SeedBrokers(kafka.Brokers...)}, Producer: wrap(producer), Codec: wrapCodec(codec)}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		ctx := context.Background()
		if err := s.Restore(ctx); err != nil {
			t.Fatal(err)
		}
		return s, adapters.NewOrderRepository(s, adapters.NewOrderEvents(sd, nil)) // events are written with their orders: no publisher
	}
}

// refusingEvents refuses, while refuse is set, every write that holds a
// record of order.events, as Kafka refuses a transaction one of whose
// records it refused: all of it.
type refusingEvents struct {
	store.Sender
	refuse *atomic.Bool
}

func (s refusingEvents) Add(ctx context.Context, msgs []*kgo.Record, over func(bool)) (func() error, error) {
	if s.refuse.Load() && slices.ContainsFunc(msgs, func(r *kgo.Record) bool { return r.Topic == contracts.TopicOrderEvents }) {
		return nil, errors.New("order.events refused")
	}
	return s.Sender.Add(ctx, msgs, over)
}

// A cancellation is written with its announcement or not at all: with the
// announcement refused, the order stays APPROVED, in the instance that
// tried and in one restored from Kafka, since a CANCELLING order with no
// Cancel Order saga would wait for the next announcement round.
func TestACancellationWhoseAnnouncementIsRefusedIsNotWritten(t *testing.T) {
	refuse := new(atomic.Bool)
	build := newRepositoryOn(t, func(s store.Sender) store.Sender { return refusingEvents{s, refuse} })
	_, r := build()
	ctx := context.Background()
	o := anApprovedOrder(t, r)
	refuse.Store(true)
	err := r.UpdateAnnouncingCancel(ctx, o.ID(), func(o *domain.Order) (bool, error) { return o.RequestCancel(time.Now(), "k") })
	if err == nil {
		t.Fatal("a cancellation whose announcement is refused: got nil, want the write refused")
	}
	refuse.Store(false)
	_, restored := build()
	for name, repo := range map[string]*adapters.OrderRepository{"the instance that tried": r, "a restored instance": restored} {
		got, err := repo.Get(ctx, o.ID())
		if err != nil || got.State() != domain.Approved || got.CancelAttempt() != 0 {
			t.Errorf("%s: got %v, %v; want the order APPROVED, never cancelled", name, got, err)
		}
	}
}

// GET /orders/{id} answers what committed: a cancellation whose
// transaction is still open (it may abort, and the client that asked
// for it got a 503 and retries) is not shown yet.
func TestAnOrderIsReadAsCommitted(t *testing.T) {
	holding := storetest.NewHolding(t)
	s, r := newRepositoryOn(t, holding.Sender)()
	ctx := context.Background()
	o := anApprovedOrder(t, r)
	holding.Hold()
	done := make(chan error, 1)
	go func() {
		done <- r.UpdateAnnouncingCancel(ctx, o.ID(), func(o *domain.Order) (bool, error) { return o.RequestCancel(time.Now(), "k") })
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if rec, ok, err := s.Get(o.ID()); err == nil && ok && rec.State == string(domain.Cancelling) {
			break // the cancellation is in the store, its transaction open
		}
		if time.Now().After(deadline) {
			t.Fatal("the cancellation did not reach the store within 10 s")
		}
	}
	if got, err := r.Get(ctx, o.ID()); err != nil || got.State() != domain.Approved {
		t.Errorf("with the cancellation's transaction open: got %v, %v; want the order APPROVED, as committed", got, err)
	}
	holding.LetGo()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get(ctx, o.ID()); err != nil || got.State() != domain.Cancelling {
		t.Errorf("once committed: got %v, %v; want the order CANCELLING", got, err)
	}
}

// anApprovedOrder stores an order, then approves it.
// aNewOrder is a PENDING order of a customer of its own.
func aNewOrder(t *testing.T) *domain.Order {
	t.Helper()
	o, err := domain.NewOrder(uuid.NewString(), uuid.NewString(), 100, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func anApprovedOrder(t *testing.T, r *adapters.OrderRepository) *domain.Order {
	t.Helper()
	ctx := context.Background()
	o := aNewOrder(t)
	if err := r.Add(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := r.Update(ctx, o.ID(), func(o *domain.Order) error { return o.Approve() }); err != nil {
		t.Fatal(err)
	}
	return o
}

// decodes counts the orders a store decodes.
type decodes struct {
	store.Codec[contracts.OrderRecord]
	n *atomic.Int64
}

func (d decodes) Decode(b []byte) (*contracts.OrderRecord, error) {
	d.n.Add(1)
	return d.Codec.Decode(b)
}

// An announcement round reads the orders of the partitions restored since
// the last round, and only those: every order ever placed was read again
// after each abort and each rebalance, however few partitions moved.
func TestARoundReadsOnlyThePartitionsRestoredSinceTheLast(t *testing.T) {
	var n atomic.Int64
	instance := newRepositoryWith(t, func(s store.Sender) store.Sender { return s },
		func(c store.Codec[contracts.OrderRecord]) store.Codec[contracts.OrderRecord] { return decodes{c, &n} })
	s, r := instance()
	ctx := context.Background()
	byPartition := map[int32]int{}
	var pending string
	for range 40 {
		o := aNewOrder(t)
		if err := r.Add(ctx, o); err != nil {
			t.Fatal(err)
		}
		if pending == "" {
			pending = o.ID()
		} else if err := r.Update(ctx, o.ID(), func(o *domain.Order) error { return o.Approve() }); err != nil {
			t.Fatal(err)
		}
		byPartition[store.PartitionOf(o.ID(), contracts.Partitions)]++
	}
	round := func(what string, want ...string) int64 {
		t.Helper()
		n.Store(0)
		got, err := r.Pending(ctx)
		var ids []string
		for _, o := range got {
			ids = append(ids, o.ID())
		}
		slices.Sort(ids)
		slices.Sort(want)
		if err != nil || !slices.Equal(ids, want) {
			t.Fatalf("%s: Pending: got %v (%v), want %v", what, ids, err, want)
		}
		return n.Load()
	}
	round("the first round", pending)
	if read := round("a round with nothing restored", pending); read > 1 {
		t.Errorf("a round with nothing restored read %d orders, want the pending one only", read)
	}

	// A partition moves away, gets an order from its new owner, and
	// comes back: read again, with the new order.
	moved := (store.PartitionOf(pending, contracts.Partitions) + 1) % contracts.Partitions
	s.Revoke([]int32{moved})
	_, other := instance()
	var placed string
	for placed == "" {
		o := aNewOrder(t)
		if store.PartitionOf(o.ID(), contracts.Partitions) != moved {
			continue
		}
		if err := other.Add(ctx, o); err != nil {
			t.Fatal(err)
		}
		placed = o.ID()
	}
	if err := s.Assign(ctx, []int32{moved}); err != nil {
		t.Fatal(err)
	}
	if read, want := round("a round after one partition came back", pending, placed), int64(byPartition[moved]+3); read > want {
		t.Errorf("a round after partition %d came back read %d orders, want its %d and the two pending ones", moved, read, byPartition[moved]+1)
	}
}

// heldEnd is a Sender whose transactions, while hold is set, end when the
// test says (end): a write's wait returns at once, unsure of its commit
// (messaging.ErrCommitPending), as a writer that stopped waiting; the
// write stays open in the store until then. Nothing held reaches Kafka:
// what is tested is what the instance holds.
type heldEnd struct {
	store.Sender
	mu    sync.Mutex
	hold  bool
	overs []func(bool)
}

func (h *heldEnd) Add(ctx context.Context, msgs []*kgo.Record, over func(bool)) (func() error, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.hold {
		return h.Sender.Add(ctx, msgs, over)
	}
	h.overs = append(h.overs, over)
	return func() error { return messaging.ErrCommitPending }, nil
}

// end ends the held transactions, committed or aborted, and holds no more.
func (h *heldEnd) end(committed bool) {
	h.mu.Lock()
	overs := h.overs
	h.overs, h.hold = nil, false
	h.mu.Unlock()
	for _, over := range overs {
		if over != nil {
			over(committed)
		}
	}
}

// The index keeps an order whose write is open: read before it commits,
// an order whose writer stopped waiting is not there yet, and one being
// approved in a transaction that then aborts is PENDING again; either
// dropped, or not indexed, it would never be announced again.
func TestAnOrderWhoseWriteIsOpenStaysIndexed(t *testing.T) {
	held := &heldEnd{}
	instance := newRepositoryOn(t, func(s store.Sender) store.Sender { held.Sender = s; return held })
	ctx := context.Background()
	pendingIDs := func(r *adapters.OrderRepository) []string {
		t.Helper()
		got, err := r.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, o := range got {
			ids = append(ids, o.ID())
		}
		return ids
	}

	// Created, its writer gone before the commit.
	_, r := instance()
	pendingIDs(r) // the index made, as by an earlier round
	created := aNewOrder(t)
	held.mu.Lock()
	held.hold = true
	held.mu.Unlock()
	if err := r.Add(ctx, created); !errors.Is(err, messaging.ErrCommitPending) {
		t.Fatalf("Add whose wait ends before its commit: got %v, want ErrCommitPending", err)
	}
	pendingIDs(r) // a round while it is open
	held.end(true)
	if ids := pendingIDs(r); !slices.Equal(ids, []string{created.ID()}) {
		t.Errorf("an order created while a round read: Pending got %v, want [%s]", ids, created.ID())
	}

	// Approved in a transaction that aborts, read by the first round of
	// an instance that has just taken the partition.
	approving := aNewOrder(t)
	if err := r.Add(ctx, approving); err != nil {
		t.Fatal(err)
	}
	_, taker := instance()
	held.mu.Lock()
	held.hold = true
	held.mu.Unlock()
	if err := taker.Update(ctx, approving.ID(), func(o *domain.Order) error { return o.Approve() }); !errors.Is(err, messaging.ErrCommitPending) {
		t.Fatalf("Approve whose wait ends before its commit: got %v, want ErrCommitPending", err)
	}
	pendingIDs(taker) // its first round: the partitions read while the approval is open
	held.end(false)
	if ids := pendingIDs(taker); !slices.Contains(ids, approving.ID()) {
		t.Errorf("an order whose approval aborted: Pending got %v, want it with %s", ids, approving.ID())
	}
}

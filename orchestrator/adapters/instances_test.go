package adapters_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/orchestrator/adapters"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/platform/store/storetest"
	"github.com/kafkasaga/kafkasaga/saga"
)

// GetCommitted, which Engine.Instance and so GET /sagas/{id} read, answers
// what committed: a transition whose transaction is still open, which may
// abort, is not shown yet; the engine reads it (Get) as it goes on.
func TestASagaIsReadAsCommitted(t *testing.T) {
	holding := storetest.NewHolding(t)
	instances := newInstances(t, holding.Sender)
	ctx := context.Background()
	const id = "saga-1"
	move := func(state string) error {
		return instances.Update(ctx, id, func(v *saga.SagaInstance, _ bool) (*saga.Outgoing, error) {
			*v = saga.SagaInstance{SagaID: id, SagaType: "T", Version: 1, State: state, Data: []byte{}}
			return nil, nil
		}, nil)
	}
	if err := move(saga.StateRunning); err != nil {
		t.Fatal(err)
	}
	holding.Hold()
	done := make(chan error, 1)
	go func() { done <- move(saga.StateCompensating) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if v, ok, err := instances.Get(id); err == nil && ok && v.State == saga.StateCompensating {
			break // the transition is in the store, its transaction open
		}
		if time.Now().After(deadline) {
			t.Fatal("the transition did not reach the store within 10 s")
		}
	}
	if v, ok, err := instances.GetCommitted(id); err != nil || !ok || v.State != saga.StateRunning {
		t.Errorf("with the transition's transaction open: got %s, %v, %v; want it RUNNING, as committed", v.State, ok, err)
	}
	holding.LetGo()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v, ok, err := instances.GetCommitted(id); err != nil || !ok || v.State != saga.StateCompensating {
		t.Errorf("once committed: got %s, %v, %v; want it COMPENSATING", v.State, ok, err)
	}
}

// newInstances returns the saga instances of a store of its own on the
// embedded stack, writing through what wrap makes of a producer.
func newInstances(t *testing.T, wrap func(store.Sender) store.Sender) *adapters.Instances {
	t.Helper()
	kafka, producer, sd := storetest.Stack(t, "instances-test", &saga.SagaInstance{})
	codec, err := store.AvroCodec[saga.SagaInstance](sd, contracts.TopicCreateOrderSagas)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.New(store.Config[saga.SagaInstance]{Topic: contracts.TopicCreateOrderSagas,
		Kgo: []kgo.Opt{kgo.SeedBrokers(kafka.Brokers...)}, Producer: wrap(producer), Codec: codec}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	return adapters.NewInstances(s)
}

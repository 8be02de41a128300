// Package storetest helps test what writes through a store.Store.
package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
)

// Holding keeps open the transactions of the writes made while it holds,
// until it lets go: their writers wait, and the store learns only then
// that they committed. Reads meanwhile see what a write still open leaves.
type Holding struct {
	hold    atomic.Bool
	release chan struct{}
	once    sync.Once
}

// NewHolding returns a Holding that lets go when the test ends, if it has
// not by then, so that the held writers end whatever the test found.
func NewHolding(t testing.TB) *Holding {
	h := &Holding{release: make(chan struct{})}
	t.Cleanup(h.LetGo)
	return h
}

// Hold holds the writes made from now on.
func (h *Holding) Hold() { h.hold.Store(true) }

// LetGo lets the held writes commit: their writers return, and the store
// learns of it.
func (h *Holding) LetGo() { h.once.Do(func() { close(h.release) }) }

// Sender wraps the sender a store writes through.
func (h *Holding) Sender(s store.Sender) store.Sender { return held{s, h} }

type held struct {
	store.Sender
	h *Holding
}

func (s held) Add(ctx context.Context, msgs []*kgo.Record, over func(bool)) (func() error, error) {
	if !s.h.hold.Load() {
		return s.Sender.Add(ctx, msgs, over)
	}
	var committed atomic.Bool
	wait, err := s.Sender.Add(ctx, msgs, func(c bool) { committed.Store(c) })
	if err != nil {
		return nil, err
	}
	return func() error {
		err := wait()
		<-s.h.release
		if over != nil {
			over(committed.Load())
		}
		return err
	}, nil
}

// Stack starts the embedded broker and registry for t, creates every
// topic of the contracts, and returns their settings, a producer that
// writes at once (closed when t ends) and a serde that registers types.
func Stack(t testing.TB, clientID string, types ...serde.Record) (config.Kafka, messaging.SyncSender, *serde.Serde) {
	t.Helper()
	stack := devstack.StartForTest(t)
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL()}
	if err := messaging.EnsureTopics(kafka, contracts.Topics()); err != nil {
		t.Fatal(err)
	}
	producer, err := messaging.NewSyncSender(kafka, clientID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { producer.Close() })
	sd, err := serde.New(srclient.NewSchemaRegistryClient(kafka.SchemaRegistryURL), serde.Config{AutoRegister: true}, types...)
	if err != nil {
		t.Fatal(err)
	}
	return kafka, producer, sd
}

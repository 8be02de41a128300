package process_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/saga"
)

// TestParticipateNeedsAHandlerForEveryCommandOfItsTopic: the participant's
// checks run when a service subscribes it, so a command left without a
// handler stops the service at start, naming it.
func TestParticipateNeedsAHandlerForEveryCommandOfItsTopic(t *testing.T) {
	stack := devstack.StartForTest(t)
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true}
	reserve := func(sp *saga.Participant) {
		saga.Handle(sp, contracts.ReserveCreditInteraction, func(context.Context, *contracts.ReserveCredit) (contracts.ReserveCreditReply, error) {
			return &contracts.CreditReserved{}, nil
		})
	}
	release := func(sp *saga.Participant) {
		saga.Handle(sp, contracts.ReleaseCreditInteraction, func(context.Context, *contracts.ReleaseCredit) (contracts.ReleaseCreditReply, error) {
			return &contracts.CreditReleased{}, nil
		})
	}

	p := newProcess(t, kafka)
	defer p.Close()
	err := p.Participate(contracts.TopicCustomerCommands, reserve)
	if err == nil || !strings.Contains(err.Error(), "no handler for ReleaseCredit,") {
		t.Errorf("ReserveCredit's handler only: got %v, want an error naming ReleaseCredit", err)
	}

	q := newProcess(t, kafka)
	defer q.Close()
	if err := q.Participate(contracts.TopicCustomerCommands, func(sp *saga.Participant) { reserve(sp); release(sp) }); err != nil {
		t.Errorf("both handlers: got %v, want nil", err)
	}
}

// A command written longer ago than SAGA_RETENTION less a tenth is not
// handled, and is counted: the decision it asks about may have been
// deleted, and it would be decided again as new. One written since is
// handled.
func TestACommandWrittenTooLongAgoIsIgnored(t *testing.T) {
	t.Parallel()
	stack := devstack.StartForTest(t)
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true,
		SagaRetention: time.Hour}
	p := newProcess(t, kafka)
	handled := make(chan string, 2)
	err := p.Participate(contracts.TopicCustomerCommands, func(sp *saga.Participant) {
		saga.Handle(sp, contracts.ReserveCreditInteraction, func(_ context.Context, c *contracts.ReserveCredit) (contracts.ReserveCreditReply, error) {
			handled <- c.OrderID
			return &contracts.CreditReserved{}, nil
		})
		saga.Handle(sp, contracts.ReleaseCreditInteraction, func(context.Context, *contracts.ReleaseCredit) (contracts.ReleaseCreditReply, error) {
			return &contracts.CreditReleased{}, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, p)
	waitReady(t, p)

	client, err := kgo.NewClient(kgo.SeedBrokers(stack.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	s, err := serde.New(srclient.NewSchemaRegistryClient(stack.RegistryURL()), serde.Config{AutoRegister: true})
	if err != nil {
		t.Fatal(err)
	}
	// Both on one key, so one partition: the first is read before the second.
	for _, c := range []struct {
		order   string
		written time.Time
	}{{"old", time.Now().Add(-55 * time.Minute)}, {"new", time.Now()}} {
		value, err := s.Encode(contracts.TopicCustomerCommands, &contracts.ReserveCredit{CustomerID: "c1", OrderID: c.order, Amount: 1})
		if err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Topic: contracts.TopicCustomerCommands, Key: []byte("c1"), Value: value, Timestamp: c.written,
			Headers: []kgo.RecordHeader{{Key: saga.HeaderReplyTo, Value: []byte(contracts.TopicCreateOrderReplies)},
				{Key: saga.HeaderSagaID, Value: []byte(c.order)}, {Key: saga.HeaderCommandID, Value: []byte(c.order + ":reserve:invoke")}}}
		if err := client.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case got := <-handled:
		if got != "new" {
			t.Errorf("handled the command of order %s first, want that of new: old was written 55 minutes ago, past SAGA_RETENTION less a tenth", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no command handled within 20s")
	}
	families, err := p.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var stale float64
	for _, f := range families {
		if f.GetName() == "commands_stale_total" {
			for _, m := range f.GetMetric() {
				stale += m.GetCounter().GetValue()
			}
		}
	}
	if stale != 1 {
		t.Errorf("commands_stale_total: got %v, want 1", stale)
	}
}

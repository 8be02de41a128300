package process_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/platform/store"
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

// A command written longer ago than SAGA_RETENTION less a tenth that would
// make a decision in a store that expires is not answered, and is
// counted: the decision may have been made and deleted since, and would
// be made again as new. One that changes a decision still there is
// handled (a compensation late), and so is one written since.
func TestACommandTooOldToMakeADecisionIsIgnored(t *testing.T) {
	t.Parallel()
	stack := devstack.StartForTest(t)
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true,
		SagaRetention: time.Hour}
	p, err := process.New(process.Config{Name: "customer", HTTPAddr: "127.0.0.1:0", Kafka: kafka,
		Types: []serde.Record{&contracts.CustomerRecord{}, &contracts.ReserveCredit{}, &contracts.ReleaseCredit{}}}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	decisions, err := process.NewStore(p, contracts.TopicCustomerState, func(c *store.Config[contracts.CustomerRecord]) {
		c.Expire = &store.Expire[contracts.CustomerRecord]{Ended: func(*contracts.CustomerRecord) bool { return false }}
	})
	if err != nil {
		t.Fatal(err)
	}
	decide := func(ctx context.Context, order, name string) error {
		return decisions.Update(ctx, order, func(v *contracts.CustomerRecord, _ bool) error {
			*v = contracts.CustomerRecord{CustomerID: order, Name: name}
			return nil
		})
	}
	err = p.Participate(contracts.TopicCustomerCommands, func(sp *saga.Participant) {
		saga.Handle(sp, contracts.ReserveCreditInteraction, func(ctx context.Context, c *contracts.ReserveCredit) (contracts.ReserveCreditReply, error) {
			return &contracts.CreditReserved{}, decide(ctx, c.OrderID, "reserved")
		})
		saga.Handle(sp, contracts.ReleaseCreditInteraction, func(ctx context.Context, c *contracts.ReleaseCredit) (contracts.ReleaseCreditReply, error) {
			return &contracts.CreditReleased{}, decide(ctx, c.OrderID, "released")
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
	// On one key, so one partition: read in this order.
	old, now := time.Now().Add(-55*time.Minute), time.Now()
	for _, c := range []struct {
		cmd     serde.Record
		order   string
		written time.Time
	}{
		{&contracts.ReserveCredit{CustomerID: "c1", OrderID: "kept", Amount: 1}, "kept", now},
		{&contracts.ReserveCredit{CustomerID: "c1", OrderID: "old", Amount: 1}, "old", old},
		{&contracts.ReleaseCredit{CustomerID: "c1", OrderID: "kept"}, "kept", old},
		{&contracts.ReserveCredit{CustomerID: "c1", OrderID: "new", Amount: 1}, "new", now},
	} {
		value, err := s.Encode(contracts.TopicCustomerCommands, c.cmd)
		if err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Topic: contracts.TopicCustomerCommands, Key: []byte("c1"), Value: value, Timestamp: c.written,
			Headers: []kgo.RecordHeader{{Key: saga.HeaderReplyTo, Value: []byte(contracts.TopicCreateOrderReplies)},
				{Key: saga.HeaderSagaID, Value: []byte(c.order)}, {Key: saga.HeaderCommandID, Value: []byte(fmt.Sprintf("%s:%T", c.order, c.cmd))}}}
		if err := client.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok, err := decisions.GetCommitted("new"); ok || err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
	for order, want := range map[string]string{"kept": "released", "old": "", "new": "reserved"} {
		got, ok, err := decisions.GetCommitted(order)
		if err != nil || (want == "") == ok || (ok && got.Name != want) {
			t.Errorf("decision of %s: got %+v (present %v, %v), want %q", order, got, ok, err, want)
		}
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
		t.Errorf("commands_stale_total: got %v, want 1 (the old command for a decision not there)", stale)
	}
}

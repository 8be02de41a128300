package messaging_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/saga"
)

// discardPublisher drops what it is sent, so the benchmark measures the
// participant's side of a command and not Kafka.
type discardPublisher struct{ published int }

func (p *discardPublisher) Send(string, string, *message.Message) error {
	p.published++
	return nil
}

// BenchmarkCommandsHandler: a participant handles one command: it decodes
// it with the real serde, runs the handler, encodes the reply and publishes
// it. The schemas come from the embedded registry on the first call and
// from the serde's cache after that.
func BenchmarkCommandsHandler(b *testing.B) {
	stack := devstack.StartForTest(b)
	sd, err := serde.New(srclient.NewSchemaRegistryClient(stack.RegistryURL()), serde.Config{AutoRegister: true}, &contracts.ReserveCredit{})
	if err != nil {
		b.Fatalf("serde.New: %v", err)
	}
	pub := &discardPublisher{}
	commands := saga.NewParticipant(contracts.TopicCustomerCommands, contracts.Interactions(), contracts.Carries, sd, pub.Send)
	saga.Handle(commands, contracts.ReserveCreditInteraction, func(_ context.Context, cmd *contracts.ReserveCredit) (contracts.ReserveCreditReply, error) {
		return &contracts.CreditReserved{CustomerID: cmd.CustomerID, OrderID: cmd.OrderID, Amount: cmd.Amount}, nil
	})
	saga.Handle(commands, contracts.ReleaseCreditInteraction, func(_ context.Context, cmd *contracts.ReleaseCredit) (contracts.ReleaseCreditReply, error) {
		return &contracts.CreditReleased{CustomerID: cmd.CustomerID, OrderID: cmd.OrderID}, nil
	})
	handle, err := commands.Handler()
	if err != nil {
		b.Fatal(err)
	}

	payload, err := sd.Encode(contracts.TopicCustomerCommands, &contracts.ReserveCredit{CustomerID: "c1", OrderID: "o1", Amount: 12_000})
	if err != nil {
		b.Fatalf("encode command: %v", err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	for h, v := range map[string]string{
		saga.HeaderSagaID: "o1", saga.HeaderSagaType: contracts.SagaTypeCreateOrder,
		saga.HeaderStep: "reserve_credit", saga.HeaderCommandID: "o1:reserve_credit:invoke",
		saga.HeaderAttempt: "1", saga.HeaderReplyTo: contracts.TopicCreateOrderReplies,
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", contracts.HeaderPartitionKey: "c1",
	} {
		msg.Metadata.Set(h, v)
	}
	// The first call registers the reply's schema and fetches the command's.
	if err := handle(msg); err != nil {
		b.Fatalf("first command: %v", err)
	}

	b.ReportAllocs()
	for b.Loop() {
		if err := handle(msg); err != nil {
			b.Fatalf("command: %v", err)
		}
	}
	b.StopTimer()
	if pub.published != b.N+1 {
		b.Fatalf("replies published: got %d, want one per command: %d", pub.published, b.N+1)
	}
}

// BenchmarkEmbeddedBrokerRoundTrip: one request to the embedded broker and
// its answer, over TCP, with nothing else running: the floor under each of
// a commit's three requests in a row (docs/performance.md, "Where a
// saga's time goes").
func BenchmarkEmbeddedBrokerRoundTrip(b *testing.B) {
	stack := devstack.StartForTest(b)
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.Brokers()...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrApiVersionsRequest()
	if _, err := req.RequestWith(b.Context(), cl); err != nil { // connects
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := req.RequestWith(b.Context(), cl); err != nil {
			b.Fatal(err)
		}
	}
}

package saga_test

import (
	"context"
	"log/slog"
	"strconv"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/saga/sagatest"
)

// lastPublisher keeps only the last message sent, so a benchmark's memory
// does not grow with b.N as the recording fake's would.
type lastPublisher struct{ last *message.Message }

func (p *lastPublisher) Send(_, _ string, msg *message.Message) error {
	p.last = msg
	return nil
}

// benchEngine is an engine of testDef on the sagatest fakes.
func benchEngine(b *testing.B) (*saga.Engine[data], *lastPublisher, *sagatest.Codec) {
	b.Helper()
	pub, codec := &lastPublisher{}, sagatest.NewCodec()
	e, err := saga.NewEngine(saga.Versions[data]{testDef()}, saga.EngineConfig{
		Instances: sagatest.NewInstances(pub), Codec: codec,
		Clock: sagatest.NewClock().Now,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatalf("new engine: %v", err)
	}
	return e, pub, codec
}

// BenchmarkStart: a saga starts: its instance is created and saved, and its
// first command encoded and published.
func BenchmarkStart(b *testing.B) {
	e, _, _ := benchEngine(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d := sagaData
		d.OrderID = "s" + strconv.Itoa(i)
		if err := e.Start(ctx, d.OrderID, d); err != nil {
			b.Fatalf("start saga %s: %v", d.OrderID, err)
		}
	}
}

// BenchmarkHandleReply: a reply advances a saga one step: it is decoded and
// matched to the pending command, the transition saved, and the next
// command encoded and published.
func BenchmarkHandleReply(b *testing.B) {
	e, pub, codec := benchEngine(b)
	ctx := context.Background()
	replies := make([]*message.Message, b.N)
	for i := range b.N {
		d := sagaData
		d.OrderID = "s" + strconv.Itoa(i)
		if err := e.Start(ctx, d.OrderID, d); err != nil {
			b.Fatalf("start saga %s: %v", d.OrderID, err)
		}
		r, err := sagatest.Reply(codec, pub.last, &CreditReserved{CustomerID: d.CustomerID, OrderID: d.OrderID, Amount: d.OrderTotal})
		if err != nil {
			b.Fatalf("reply: %v", err)
		}
		replies[i] = r
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := e.HandleReply(replies[i]); err != nil {
			b.Fatalf("handle reply %d: %v", i, err)
		}
	}
	b.StopTimer()
	if v, _, _ := e.Instance("s0"); v.Step != 2 {
		b.Fatalf("saga s0 after CreditReserved: got step %d, want 2 (approve)", v.Step)
	}
}

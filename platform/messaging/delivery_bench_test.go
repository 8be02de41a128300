package messaging

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

type nopDeadLetter struct{}

func (nopDeadLetter) Publish(string, ...*message.Message) error { return nil }
func (nopDeadLetter) Close() error                              { return nil }

// BenchmarkSessionDelivery: the loop hands a polled batch (pollMax records
// of 100 keys) to a handler that succeeds, through the middleware chain,
// and waits for all of it: the per-record cost of delivery, without Kafka.
func BenchmarkSessionDelivery(b *testing.B) {
	logger := slog.New(slog.DiscardHandler)
	s := NewSession(SessionConfig{Group: "bench"}, logger)
	s.AddTopic("in")
	hs, err := NewHandlers(HandlersConfig{DeadLetter: nopDeadLetter{}}, logger)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Handle("in", hs.Wrap("bench.in", "in", func(*message.Message) error { return nil })); err != nil {
		b.Fatal(err)
	}
	defer s.startWorkers()()
	ctx := b.Context()

	records := make([]*kgo.Record, pollMax)
	for i := range records {
		records[i] = &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", i%100), Value: []byte("v"), Offset: int64(i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if !s.handle(ctx, records) {
			b.Fatal("a record was not acked")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(records)), "ns/record")
}

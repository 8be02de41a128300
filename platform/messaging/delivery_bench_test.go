package messaging

import (
	"context"
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
	router, err := NewRouter(RouterConfig{DeadLetter: nopDeadLetter{}}, logger)
	if err != nil {
		b.Fatal(err)
	}
	router.AddNoPublisherHandler("bench.in", "in", s, func(*message.Message) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	<-router.Running()
	defer s.closeOuts()
	defer s.startWorkers()()

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

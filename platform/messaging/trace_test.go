package messaging_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// TestTraceContextCrossesKafka: a message published within a span is sent
// in a child span, whose W3C trace context travels in the record's headers,
// and is handled, in another process's provider, in a span whose parent is
// that send span; the handler's context holds the handling span. A message
// published outside any span carries no trace context, and its handling
// starts a trace of its own.
func TestTraceContextCrossesKafka(t *testing.T) {
	t.Parallel()
	const topic = "traced"
	kafka := startKafka(t, contracts.TopicSpec{Name: topic, Partitions: 1})
	sender, receiver := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	senderTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sender))
	receiverTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(receiver))

	pub, err := messaging.NewPublisher(kafka, "sender")
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { pub.Close() })
	handled := make(chan trace.SpanContext, 2)
	startRouter(t, kafka, receiverTP, topic, func(msg *message.Message) error {
		handled <- trace.SpanContextFromContext(msg.Context())
		return nil
	})

	ctx, request := senderTP.Tracer("test").Start(context.Background(), "POST /orders")
	traced := message.NewMessage(watermill.NewUUID(), []byte("traced"))
	traced.SetContext(ctx)
	traced.Metadata.Set(contracts.HeaderPartitionKey, "k")
	if err := pub.Publish(topic, traced); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	request.End()
	tracedHandler := awaitHandled(t, handled)
	untraced := message.NewMessage(watermill.NewUUID(), []byte("untraced"))
	untraced.Metadata.Set(contracts.HeaderPartitionKey, "k")
	if err := pub.Publish(topic, untraced); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	untracedHandler := awaitHandled(t, handled)

	sends := sender.Ended()
	if len(sends) != 2 { // the request and one send
		t.Fatalf("sender's spans: got %d, want the request's and one send's", len(sends))
	}
	send := sends[0]
	if got, want := send.Name(), "send "+topic; got != want {
		t.Fatalf("send span: got %q, want %q", got, want)
	}
	if send.Parent().SpanID() != request.SpanContext().SpanID() || send.SpanKind() != trace.SpanKindProducer {
		t.Errorf("send span: got parent %s, kind %s, want parent %s (the request), kind producer",
			send.Parent().SpanID(), send.SpanKind(), request.SpanContext().SpanID())
	}

	records := readUntil(t, kafka, topic, func(r []*kgo.Record) bool { return len(r) == 2 })
	want := fmt.Sprintf("00-%s-%s-01", send.SpanContext().TraceID(), send.SpanContext().SpanID())
	if got := header(records[0], "traceparent"); got != want {
		t.Errorf("traced record's traceparent: got %q, want the send span's, %q", got, want)
	}
	if got := header(records[1], "traceparent"); got != "" {
		t.Errorf("untraced record's traceparent: got %q, want none", got)
	}

	var handlings []sdktrace.ReadOnlySpan
	eventually(t, "two handling spans to end", func() bool { handlings = receiver.Ended(); return len(handlings) == 2 })
	h := handlings[0]
	if h.Name() != "process "+topic || h.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("handling span: got %q of kind %s, want %q of kind consumer", h.Name(), h.SpanKind(), "process "+topic)
	}
	if h.Parent().SpanID() != send.SpanContext().SpanID() || !h.Parent().IsRemote() || h.SpanContext().TraceID() != request.SpanContext().TraceID() {
		t.Errorf("handling span: got parent %s (remote %v) in trace %s, want the send span %s in trace %s",
			h.Parent().SpanID(), h.Parent().IsRemote(), h.SpanContext().TraceID(), send.SpanContext().SpanID(), request.SpanContext().TraceID())
	}
	if tracedHandler.SpanID() != h.SpanContext().SpanID() {
		t.Errorf("handler's context: got span %s, want the handling span %s", tracedHandler.SpanID(), h.SpanContext().SpanID())
	}
	if u := handlings[1]; u.Parent().IsValid() || !u.SpanContext().Equal(untracedHandler) || u.SpanContext().TraceID() == request.SpanContext().TraceID() {
		t.Errorf("untraced message's handling span: got parent %v, trace %s, want a root of a trace of its own, in the handler's context",
			u.Parent().SpanID(), u.SpanContext().TraceID())
	}
}

func awaitHandled(t *testing.T, handled <-chan trace.SpanContext) trace.SpanContext {
	t.Helper()
	select {
	case sc := <-handled:
		return sc
	case <-time.After(20 * time.Second):
		t.Fatal("message not handled within 20s")
		return trace.SpanContext{}
	}
}

// startRouter runs a router that hands topic's messages to handler behind
// the chain, which traces with traces, until the test ends.
func startRouter(t *testing.T, kafka config.Kafka, traces trace.TracerProvider, topic string, handler message.NoPublishHandlerFunc) {
	t.Helper()
	sub, err := messaging.NewSubscriber(kafka, "receiver", wlog())
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	handlers, err := messaging.NewHandlers(messaging.HandlersConfig{DeadLetter: nopPublisher{}, Traces: traces}, quiet())
	if err != nil {
		t.Fatalf("NewHandlers: %v", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog())
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	router.AddNoPublisherHandler("traced", topic, sub, handlers.Wrap("traced", topic, handler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router.Run: %v", err)
		}
	})
	<-router.Running()
}

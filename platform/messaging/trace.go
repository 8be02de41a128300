package messaging

import (
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/telemetry"
	"github.com/kafkasaga/kafkasaga/saga"
)

// tracerName is the instrumentation scope of the spans of sends and handlings.
const tracerName = "github.com/kafkasaga/kafkasaga/platform/messaging"

// traceSend records the send of msg to topic as a span, child of the span
// of msg's context, and writes that span's W3C trace context into msg's
// headers, so the record's handler continues the trace. A message whose
// context holds no span (no tracing, or written by a timer) is left as it
// is, at the cost of a context lookup: a dead letter, a copy, keeps the
// trace context of the message it copies.
//
// The span comes from the provider of the span in the context, the
// process's own: NewRecord needs no provider passed to it.
func traceSend(topic string, msg *message.Message) {
	ctx := msg.Context()
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return
	}
	ctx, span := parent.TracerProvider().Tracer(tracerName).Start(ctx, "send "+topic,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(messageAttributes(topic, msg, semconv.MessagingOperationTypeSend,
			msg.Metadata.Get(contracts.HeaderPartitionKey))...))
	defer span.End()
	telemetry.Propagator().Inject(ctx, propagation.MapCarrier(msg.Metadata))
}

// traceHandling continues, in a span of its handling, the trace of each
// consumed message of topic: a child of the span that sent it, in another
// process. The handler gets the span in msg.Context(), so what it sends is
// the span's child. With no traces, it leaves the handler as it is.
func traceHandling(traces trace.TracerProvider, topic string) message.HandlerMiddleware {
	if traces == nil {
		return func(h message.HandlerFunc) message.HandlerFunc { return h }
	}
	tracer := traces.Tracer(tracerName)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := telemetry.Propagator().Extract(msg.Context(), propagation.MapCarrier(msg.Metadata))
			record, _ := RecordFromCtx(ctx)
			attrs := append(messageAttributes(topic, msg, semconv.MessagingOperationTypeProcess, string(record.Key)),
				semconv.MessagingDestinationPartitionID(strconv.Itoa(int(record.Partition))),
				semconv.MessagingKafkaOffset(int(record.Offset)))
			ctx, span := tracer.Start(ctx, "process "+topic, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
			defer span.End()
			msg.SetContext(ctx)
			out, err := h(msg)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			return out, err
		}
	}
}

// messageAttributes describes a message: OpenTelemetry's messaging
// attributes, and the saga it belongs to, if any, for finding its traces.
func messageAttributes(topic string, msg *message.Message, op attribute.KeyValue, key string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.MessagingSystemKafka, op, semconv.MessagingDestinationName(topic),
		semconv.MessagingMessageID(msg.UUID), semconv.MessagingKafkaMessageKey(key)}
	for _, h := range [][2]string{{"saga.id", saga.HeaderSagaID}, {"saga.step", saga.HeaderStep}, {"saga.attempt", saga.HeaderAttempt}} {
		if v := msg.Metadata.Get(h[1]); v != "" {
			attrs = append(attrs, attribute.String(h[0], v))
		}
	}
	return attrs
}

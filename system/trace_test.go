package system_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/system"
)

// TestOneTraceFollowsASaga runs the system with an in-memory span recorder
// in every process's tracer provider, places one order and, once its saga
// has completed, checks its trace: one trace id; spans of every process,
// each reporting its own service.name (the all-in-one system ignores one
// set for all); one tree rooted at the POST /orders
// server span, through the order event, the saga's start, each command,
// its handling, its reply and the transition the reply leads to; and every
// handling span a child of the span that sent its message, in another
// process.
func TestOneTraceFollowsASaga(t *testing.T) {
	recorders := map[string]*tracetest.SpanRecorder{}
	r := startSystem(t, func(cfg *system.Config) {
		for _, p := range system.Processes {
			recorders[p.Name] = tracetest.NewSpanRecorder()
			p.Telemetry(cfg).Processor = recorders[p.Name]
			// As OTEL_SERVICE_NAME would: each process still names itself.
			p.Telemetry(cfg).ServiceName = "kafkasaga"
		}
	})
	customer := r.createCustomer(t, "Ada", 500_000)
	order := r.createOrder(t, customer, 12_000)
	if s := r.awaitSagaEnd(t, order, 30*time.Second); s.State != "COMPLETED" {
		t.Fatalf("saga %s: got %s, want COMPLETED", order, s.State)
	}

	root := postOrdersSpan(t, recorders["order"])
	service := map[trace.SpanID]string{} // the process of each span of the trace
	var spans map[trace.SpanID]sdktrace.ReadOnlySpan
	// The spans of the saga's last exchanges end just after it is stored
	// COMPLETED: poll until the tree is whole.
	eventually(t, 20*time.Second, func() error {
		spans = map[trace.SpanID]sdktrace.ReadOnlySpan{}
		for name, rec := range recorders {
			for _, s := range rec.Ended() {
				if got, _ := s.Resource().Set().Value(semconv.ServiceNameKey); got.AsString() != name {
					return fmt.Errorf("a span %q of %s: got service.name %q, want %q", s.Name(), name, got.AsString(), name)
				}
				if s.SpanContext().TraceID() == root.SpanContext().TraceID() {
					spans[s.SpanContext().SpanID()] = s
					service[s.SpanContext().SpanID()] = name
				}
			}
		}
		return wholeTree(spans, root, "CreateOrder OrderApproved")
	})

	var services []string
	for _, s := range service {
		if !slices.Contains(services, s) {
			services = append(services, s)
		}
	}
	slices.Sort(services)
	if want := []string{"customer", "orchestrator", "order", "payment"}; !inOrder(services, want) {
		t.Errorf("processes in the trace: got %v, want %v among them", services, want)
	}

	for _, s := range spans {
		if s.SpanKind() != trace.SpanKindConsumer {
			continue
		}
		parent := spans[s.Parent().SpanID()]
		topic := strings.TrimPrefix(s.Name(), "process ")
		if parent.Name() != "send "+topic || parent.SpanKind() != trace.SpanKindProducer ||
			service[parent.SpanContext().SpanID()] == service[s.SpanContext().SpanID()] {
			t.Errorf("%s in %s: got parent %q (%s) in %s, want the send to %s in another process", s.Name(), service[s.SpanContext().SpanID()],
				parent.Name(), parent.SpanKind(), service[parent.SpanContext().SpanID()], topic)
		}
	}

	// The path from the saga's end up to the request, read downwards.
	var path []string
	for _, s := range spans {
		if s.Name() == "CreateOrder OrderApproved" {
			for ; s != nil; s = spans[s.Parent().SpanID()] {
				path = append(path, service[s.SpanContext().SpanID()]+": "+s.Name())
			}
		}
	}
	slices.Reverse(path)
	exchange := func(topic, participant, reply string) []string {
		return []string{"orchestrator: send " + topic, participant + ": process " + topic,
			participant + ": send " + contracts.TopicCreateOrderReplies,
			"orchestrator: process " + contracts.TopicCreateOrderReplies, "orchestrator: CreateOrder " + reply}
	}
	want := slices.Concat([]string{"order: POST /orders", "order: send " + contracts.TopicOrderEvents,
		"orchestrator: process " + contracts.TopicOrderEvents, "orchestrator: CreateOrder started"},
		exchange(contracts.TopicCustomerCommands, "customer", "CreditReserved"),
		exchange(contracts.TopicPaymentCommands, "payment", "PaymentAuthorized"),
		exchange(contracts.TopicOrderCommands, "order", "OrderApproved"))
	// In this order, whatever comes between: a step a user adds to the
	// saga adds an exchange of its own (docs/adding-a-saga-step.md).
	rest := want
	for _, p := range path {
		if len(rest) > 0 && p == rest[0] {
			rest = rest[1:]
		}
	}
	if len(rest) > 0 || len(path) < len(want) {
		t.Errorf("from the request to the saga's end:\n got %s\nwant %s, in this order", strings.Join(path, "\n     "), strings.Join(want, "\n     "))
	}
}

// postOrdersSpan returns the server span of the POST /orders that placed
// an order (201): the test's one.
func postOrdersSpan(t *testing.T, rec *tracetest.SpanRecorder) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range rec.Ended() {
		if s.Name() != "POST /orders" || s.SpanKind() != trace.SpanKindServer {
			continue
		}
		for _, a := range s.Attributes() {
			if a.Key == semconv.HTTPResponseStatusCodeKey && a.Value.AsInt64() == 201 {
				return s
			}
		}
	}
	t.Fatal("order: got no server span of a POST /orders answered 201")
	return nil
}

// wholeTree says why spans are not yet one tree under root that holds a
// span named last.
func wholeTree(spans map[trace.SpanID]sdktrace.ReadOnlySpan, root sdktrace.ReadOnlySpan, last string) error {
	if root.Parent().IsValid() {
		return fmt.Errorf("root %q has parent %s, want none", root.Name(), root.Parent().SpanID())
	}
	found := false
	for _, s := range spans {
		found = found || s.Name() == last
		if s.SpanContext().SpanID() == root.SpanContext().SpanID() {
			continue
		}
		if _, ok := spans[s.Parent().SpanID()]; !ok {
			return fmt.Errorf("span %q: parent %s not in the trace", s.Name(), s.Parent().SpanID())
		}
	}
	if !found {
		return fmt.Errorf("no span %q yet", last)
	}
	return nil
}

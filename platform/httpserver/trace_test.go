package httpserver_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
)

// TestRequestsAreTraced: an API request is served in a server span named
// after its route, a child of the caller's W3C trace context, which the
// handler's context holds; /healthz, /readyz and /metrics are not traced.
func TestRequestsAreTraced(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	s := newServer(t, httpserver.Config{Traces: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))})
	var inHandler trace.SpanContext
	s.Handle("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		inHandler = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusOK)
	})
	s.MarkReady()

	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, path := range []string{"/orders/o1", "/healthz", "/metrics"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("traceparent", caller)
		s.Handler().ServeHTTP(httptest.NewRecorder(), req)
	}

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("spans: got %d, want 1, of GET /orders/o1 alone", len(spans))
	}
	span := spans[0]
	if span.Name() != "GET /orders/{id}" || span.SpanKind() != trace.SpanKindServer {
		t.Errorf("span: got %q of kind %s, want %q of kind server", span.Name(), span.SpanKind(), "GET /orders/{id}")
	}
	if got := span.Parent(); got.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || got.SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("span's parent: got %s/%s, want the caller's traceparent %s", got.TraceID(), got.SpanID(), caller)
	}
	if inHandler.SpanID() != span.SpanContext().SpanID() {
		t.Errorf("handler's context: got span %s, want the server span %s", inHandler.SpanID(), span.SpanContext().SpanID())
	}
}

// TestForwardedRequestsContinueTheTrace: a keyed request forwarded to its
// owner is served there in a span whose parent is the forwarding
// instance's client span, itself a child of its server span.
func TestForwardedRequestsContinueTheTrace(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	traces := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	lnA, lnB := listen(t), listen(t)
	keyed := func(o owners) *httpserver.Server {
		s := newServer(t, httpserver.Config{Owners: o, Traces: traces})
		s.HandleKeyed("GET /orders/{id}", idInPath, echo("x"))
		s.MarkReady()
		return s
	}
	urlA := serveOn(t, keyed(owners{"b1": {Addr: lnB.Addr().String()}}), lnA)
	serveOn(t, keyed(owners{"b1": {Self: true}}), lnB)

	if resp, body := send(t, http.MethodGet, urlA+"/orders/b1", "", false); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /orders/b1 on a: got %d %s, want 200 from b", resp.StatusCode, body)
	}
	byKind := map[trace.SpanKind][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byKind[s.SpanKind()] = append(byKind[s.SpanKind()], s)
	}
	servers, clients := byKind[trace.SpanKindServer], byKind[trace.SpanKindClient]
	if len(servers) != 2 || len(clients) != 1 {
		t.Fatalf("spans: got %d server and %d client spans, want 2 and 1", len(servers), len(clients))
	}
	owner, forwarder := servers[0], servers[1] // the owner's ends first
	if owner.Parent().SpanID() != clients[0].SpanContext().SpanID() || clients[0].Parent().SpanID() != forwarder.SpanContext().SpanID() {
		t.Errorf("got owner's parent %s, client's parent %s, want the client %s and the forwarder's server span %s",
			owner.Parent().SpanID(), clients[0].Parent().SpanID(), clients[0].SpanContext().SpanID(), forwarder.SpanContext().SpanID())
	}
}

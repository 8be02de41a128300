package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/telemetry"
)

// otelVars are the variables telemetry.Config reads; each test starts with
// them unset.
var otelVars = []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"}

func load(t *testing.T, vars map[string]string) telemetry.Config {
	t.Helper()
	for _, name := range otelVars {
		t.Setenv(name, "")
	}
	for name, v := range vars {
		t.Setenv(name, v)
	}
	var cfg telemetry.Config
	if err := config.Load(&cfg); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestWhichSettingsExport(t *testing.T) {
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		exports bool
		err     string
	}{
		{name: "nothing set", exports: false},
		{name: "none", vars: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, exports: false},
		{name: "an endpoint", vars: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, exports: true},
		{name: "a traces endpoint", vars: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, exports: true},
		{name: "otlp", vars: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, exports: true},
		{name: "otlp over grpc", vars: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, exports: true},
		{name: "traces protocol", vars: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, exports: true},
		{name: "unknown exporter", vars: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: `OTEL_TRACES_EXPORTER "zipkin"`},
		{name: "unknown protocol", vars: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, err: `OTEL_EXPORTER_OTLP_PROTOCOL "http/json"`},
		{name: "unknown traces protocol", vars: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
			err: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL "http/json"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := telemetry.NewTracerProvider(t.Context(), load(t, tc.vars), "order")
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one naming %s", err, tc.err)
				}
				return
			case err != nil:
				t.Fatalf("NewTracerProvider: %v", err)
			}
			if got := tp != nil; got != tc.exports {
				t.Errorf("got a provider: %v, want %v", got, tc.exports)
			}
			if tp != nil {
				_ = tp.Shutdown(t.Context())
			}
		})
	}
}

func TestSpansNameTheProcess(t *testing.T) {
	for _, tc := range []struct {
		serviceName, want string
	}{
		{serviceName: "", want: "payment"},
		{serviceName: "payments-eu", want: "payments-eu"},
	} {
		cfg := load(t, map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=other,deployment.environment.name=test"})
		cfg.ServiceName = tc.serviceName
		rec := tracetest.NewSpanRecorder()
		cfg.Processor = rec
		tp, err := telemetry.NewTracerProvider(t.Context(), cfg, "payment", semconv.ServiceInstanceID("payment-1:8083"))
		if err != nil {
			t.Fatal(err)
		}
		_, span := tp.Tracer("test").Start(t.Context(), "work")
		span.End()
		spans := rec.Ended()
		if len(spans) != 1 {
			t.Fatalf("ServiceName %q: got %d spans, want 1", tc.serviceName, len(spans))
		}
		res := spans[0].Resource()
		for key, want := range map[attribute.Key]string{
			semconv.ServiceNameKey: tc.want, semconv.ServiceInstanceIDKey: "payment-1:8083", "deployment.environment.name": "test",
		} {
			if got, _ := res.Set().Value(key); got.AsString() != want {
				t.Errorf("ServiceName %q: %s: got %q, want %q", tc.serviceName, key, got.AsString(), want)
			}
		}
	}
}

// TestOTLPOverHTTPSendsToTheEndpoint: spans reach the collector at
// OTEL_EXPORTER_OTLP_ENDPOINT, at the latest when the provider shuts down.
func TestOTLPOverHTTPSendsToTheEndpoint(t *testing.T) {
	got := make(chan string, 10)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type") + " " + string(body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	tp, err := telemetry.NewTracerProvider(t.Context(), load(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL}), "customer")
	if err != nil || tp == nil {
		t.Fatalf("NewTracerProvider: got %v, %v, want a provider", tp, err)
	}
	_, span := tp.Tracer("test").Start(t.Context(), "reserve credit")
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case req := <-got:
		// The body is protobuf: the strings it holds show as they are.
		for _, want := range []string{"POST /v1/traces application/x-protobuf", "reserve credit", "customer"} {
			if !strings.Contains(req, want) {
				t.Errorf("collector got %q, want it to hold %q", req, want)
			}
		}
	default:
		t.Fatal("collector got nothing, want the span")
	}
}

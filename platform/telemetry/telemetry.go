// Package telemetry sets up a process's traces: an OpenTelemetry tracer
// provider of its own, which names the process (service.name) and exports
// over OTLP when the standard OTEL_ variables ask for it, and the W3C trace
// context propagator that every hop (HTTP, Kafka headers) uses.
//
// With no exporter there is no provider at all: the HTTP server, the router
// and the saga engine then start no spans, so tracing costs nothing.
package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Exporter values of OTEL_TRACES_EXPORTER.
const (
	ExporterOTLP = "otlp"
	ExporterNone = "none"
)

// Protocol values of OTEL_EXPORTER_OTLP_PROTOCOL.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Config holds the standard OpenTelemetry variables a process reads. The
// exporters read the rest of OTEL_EXPORTER_OTLP_* (headers, timeout,
// certificates) and the SDK OTEL_TRACES_SAMPLER and OTEL_BSP_* themselves.
type Config struct {
	// Exporter is otlp or none. Unset, it is otlp if an OTLP endpoint is
	// set and none otherwise, so a process exports nothing, and tries to
	// reach no collector, unless told where to send.
	Exporter string `env:"OTEL_TRACES_EXPORTER"`
	// Protocol is http/protobuf (port 4318) or grpc (port 4317);
	// TracesProtocol, when set, overrides it for traces.
	Protocol       string `env:"OTEL_EXPORTER_OTLP_PROTOCOL" envDefault:"http/protobuf"`
	TracesProtocol string `env:"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"`
	// Endpoint and TracesEndpoint are where the exporter sends (it reads
	// them itself); either one set turns the exporter on.
	Endpoint       string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	TracesEndpoint string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`
	// ServiceName is the service.name the process reports; empty, its own
	// name (order, customer, payment, orchestrator).
	ServiceName string `env:"OTEL_SERVICE_NAME"`

	// Processor, when set, receives every span instead of an exporter,
	// whatever the variables say: a test's tracetest.SpanRecorder.
	Processor sdktrace.SpanProcessor
}

// exporter returns the exporter the settings ask for, "" for none.
func (c Config) exporter() string {
	switch {
	case c.Exporter != "":
		return c.Exporter
	case c.Endpoint != "" || c.TracesEndpoint != "":
		return ExporterOTLP
	}
	return ExporterNone
}

// Validate reports every unsupported setting at once.
func (c Config) Validate() error {
	var errs []error
	if e := c.exporter(); e != ExporterOTLP && e != ExporterNone {
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER %q: want %s or %s", e, ExporterOTLP, ExporterNone))
	}
	if p := c.protocol(); p != ProtocolHTTP && p != ProtocolGRPC {
		name := "OTEL_EXPORTER_OTLP_PROTOCOL"
		if c.TracesProtocol != "" {
			name = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" // the one read
		}
		errs = append(errs, fmt.Errorf("%s %q: want %s or %s", name, p, ProtocolHTTP, ProtocolGRPC))
	}
	return errors.Join(errs...)
}

func (c Config) protocol() string { return cmp.Or(c.TracesProtocol, c.Protocol, ProtocolHTTP) }

// NewTracerProvider returns the tracer provider of the process named
// service (unless cfg.ServiceName names it otherwise), whose resource
// carries attrs too; nil, and no error, when it exports nothing. Shut it
// down when the process stops: that sends the spans still buffered.
func NewTracerProvider(ctx context.Context, cfg Config, service string, attrs ...attribute.KeyValue) (*sdktrace.TracerProvider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var processor sdktrace.SpanProcessor
	switch {
	case cfg.Processor != nil:
		processor = cfg.Processor
	case cfg.exporter() == ExporterNone:
		return nil, nil
	default:
		var (
			exporter sdktrace.SpanExporter
			err      error
		)
		if cfg.protocol() == ProtocolGRPC {
			exporter, err = otlptracegrpc.New(ctx)
		} else {
			exporter, err = otlptracehttp.New(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("create the OTLP trace exporter: %w", err)
		}
		processor = sdktrace.NewBatchSpanProcessor(exporter)
	}
	// The variables' attributes (OTEL_RESOURCE_ATTRIBUTES) first: the
	// process's name and attrs win over them.
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(),
		resource.WithAttributes(append(attrs, semconv.ServiceName(cmp.Or(cfg.ServiceName, service)))...))
	if err != nil {
		return nil, fmt.Errorf("describe the process for its traces: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(processor), sdktrace.WithResource(res)), nil
}

// Propagator carries the trace context across processes: W3C traceparent
// and tracestate, in HTTP headers and in Kafka record headers.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

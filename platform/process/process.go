// Package process wires what every process of the system has: the schema
// registry client and serde, one Kafka producer for its publisher and its
// stores, the watermill router with its subscriptions, the Kafka-backed
// stores, and the HTTP server with health, readiness and metrics. A
// service's main builds one Process, adds its stores, handlers and routes,
// and calls Run.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riferrei/srclient"
	"golang.org/x/sync/errgroup"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
)

// Config configures New.
type Config struct {
	// Name is the process's name: its consumer group and Kafka client id.
	Name     string
	HTTPAddr string
	Kafka    config.Kafka
	// Types are the records this process decodes (commands, replies, events
	// and its state records).
	Types []serde.Record
}

// Validate reports every missing setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("process: Name is required"))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("process: HTTPAddr is required"))
	}
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("process: Kafka.Brokers is required (KAFKA_BROKERS)"))
	}
	if c.Kafka.SchemaRegistryURL == "" {
		errs = append(errs, errors.New("process: Kafka.SchemaRegistryURL is required (SCHEMA_REGISTRY_URL)"))
	}
	return errors.Join(errs...)
}

// Process is one running service or orchestrator.
type Process struct {
	cfg     Config
	Logger  *slog.Logger
	Metrics *prometheus.Registry
	Serde   *serde.Serde
	// Publisher publishes messages (commands, replies, events) to Kafka
	// through the producer the stores write with.
	Publisher message.Publisher
	Router    *message.Router
	HTTP      *httpserver.Server

	sarama   *sarama.Config
	client   sarama.Client
	producer sarama.SyncProducer
	restores []func(context.Context) error
	loops    []func(context.Context) error
	closers  []func() error // in the order of creation; closed in reverse
}

// New connects to Kafka and the registry and creates the topics that are
// missing. It fails if Kafka does not answer; the caller decides whether to
// try again.
func New(cfg Config, logger *slog.Logger) (*Process, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Process{cfg: cfg, Logger: logger, Metrics: prometheus.NewRegistry()}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()

	registry := srclient.NewSchemaRegistryClient(cfg.Kafka.SchemaRegistryURL,
		srclient.WithClient(&http.Client{Timeout: 5 * time.Second}))
	if cfg.Kafka.RegistryUser != "" {
		registry.SetCredentials(cfg.Kafka.RegistryUser, cfg.Kafka.RegistryPassword)
	}
	var err error
	if p.Serde, err = serde.New(registry, serde.Config{AutoRegister: cfg.Kafka.AutoRegisterSchemas}, cfg.Types...); err != nil {
		return nil, err
	}
	if p.sarama, err = messaging.SaramaConfig(cfg.Kafka, cfg.Name); err != nil {
		return nil, err
	}
	if err = messaging.EnsureTopics(cfg.Kafka, contracts.Topics()); err != nil {
		return nil, err
	}
	if p.client, err = sarama.NewClient(cfg.Kafka.Brokers, p.sarama); err != nil {
		return nil, fmt.Errorf("connect to kafka: %w", err)
	}
	p.closers = append(p.closers, p.client.Close)
	if p.producer, err = sarama.NewSyncProducerFromClient(p.client); err != nil {
		return nil, fmt.Errorf("create producer: %w", err)
	}
	p.closers = append(p.closers, p.producer.Close)
	p.Publisher = messaging.PublisherOn(p.producer)
	if p.Router, err = messaging.NewRouter(messaging.RouterConfig{DeadLetter: p.Publisher, Metrics: p.Metrics}, logger); err != nil {
		return nil, err
	}
	p.HTTP, err = httpserver.New(httpserver.Config{
		Addr:    cfg.HTTPAddr,
		Metrics: p.Metrics,
		Checks: map[string]httpserver.Check{
			"kafka": func(context.Context) error { return p.client.RefreshMetadata() },
			// Through the serde's client, so with its credentials.
			"schema registry": func(context.Context) error { _, err := registry.GetGlobalCompatibilityLevel(); return err },
		},
	}, logger)
	if err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// RunFromEnv is a service's main: it reads the service's configuration C
// from the environment (its env tags and their defaults), builds the process
// and runs it until ctx ends.
func RunFromEnv[C any](ctx context.Context, name string, build func(C, *slog.Logger) (*Process, error)) error {
	var cfg C
	if err := config.Load(&cfg); err != nil {
		return err
	}
	p, err := build(cfg, config.Logger(name))
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// Build creates a process and lets wire add its stores, handlers, routes and
// loops. If anything fails, the process is closed and the error names it.
func Build(cfg Config, logger *slog.Logger, wire func(p *Process) error) (*Process, error) {
	p, err := New(cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	if err := wire(p); err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	return p, nil
}

// Subscribe routes every message of topic to handler. Each topic has its own
// consumer group, <process name>.<topic>, so a rebalance of one topic's
// consumers never waits on a handler busy with another topic.
func (p *Process) Subscribe(topic string, handler message.NoPublishHandlerFunc) error {
	group := p.cfg.Name + "." + topic
	sub, err := messaging.NewSubscriber(p.cfg.Kafka, group, messaging.Logger(p.Logger))
	if err != nil {
		return err
	}
	p.closers = append(p.closers, sub.Close)
	p.Router.AddNoPublisherHandler(group, topic, sub, handler)
	return nil
}

// OnRestored runs fn at start, once the stores made before this call are
// restored and before any message is handled: to rebuild what a service
// derives from its stores.
func (p *Process) OnRestored(fn func(ctx context.Context) error) { p.restores = append(p.restores, fn) }

// Go runs loop beside the router and the HTTP server, after the state is
// restored, until the process stops.
func (p *Process) Go(loop func(ctx context.Context) error) { p.loops = append(p.loops, loop) }

// NewStore returns a store on the compacted topic, restored when Run starts.
func NewStore[T any](p *Process, topic string) (*store.Store[T], error) {
	codec, err := store.AvroCodec[T](p.Serde, topic)
	if err != nil {
		return nil, err
	}
	s, err := store.New(store.Config[T]{
		Topic: topic, Brokers: p.cfg.Kafka.Brokers, Sarama: p.sarama, Producer: p.producer, Codec: codec,
	}, p.Logger)
	if err != nil {
		return nil, err
	}
	p.restores = append(p.restores, s.Restore)
	return s, nil
}

// Run restores every store, then consumes, serves HTTP and runs the loops
// until ctx ends or one of them fails; then it stops them all and closes the
// Kafka clients.
func (p *Process) Run(ctx context.Context) error {
	defer p.Close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.HTTP.Run(ctx) })
	restored := make(chan struct{}) // closed before the router runs
	g.Go(func() error {
		for _, restore := range p.restores {
			if err := restore(ctx); err != nil {
				return err
			}
		}
		close(restored)
		for _, loop := range p.loops {
			g.Go(func() error { return loop(ctx) })
		}
		if err := p.Router.Run(ctx); err != nil {
			return fmt.Errorf("router: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		select {
		case <-p.Router.Running():
			p.HTTP.MarkReady()
			p.Logger.Info("ready")
		case <-ctx.Done():
		}
		<-ctx.Done()
		select {
		case <-restored:
			// A router without handlers does not stop with its context.
			return p.Router.Close()
		default:
			// The router never ran: Close would wait its CloseTimeout for
			// handlers that never started.
			return nil
		}
	})
	return g.Wait()
}

// Close closes the Kafka clients; Run calls it when it returns, so only a
// process that is never run needs it.
func (p *Process) Close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil {
			p.Logger.Debug("close kafka client", "error", err)
		}
	}
	p.closers = nil
}

// Package process wires what every process of the system has: the schema
// registry client and serde, one Kafka producer for its publisher and its
// stores, its watermill handlers behind the middleware chain, the Kafka-backed
// stores, and the HTTP server with health, readiness and metrics. A
// service's main builds one Process, adds its stores, handlers and routes,
// and calls Run.
package process

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/platform/telemetry"
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
	// Telemetry says where the process's traces go; by default nowhere.
	Telemetry telemetry.Config
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
	HTTP      *httpserver.Server
	// Traces is the process's own tracer provider, which names it
	// (service.name); nil when it exports no traces, and then nothing
	// starts a span.
	Traces trace.TracerProvider

	registry   srclient.ISchemaRegistryClient
	kgo        []kgo.Opt
	admin      *kgo.Client         // for the group's description, the evictions and the topics' partitions
	session    *messaging.Session  // the process's one consumer group and producer
	handlers   *messaging.Handlers // the chain every handler runs behind
	topics     []string            // it reads
	db         *store.DB           // the local state of every store
	stores     []assignable
	archives   []string               // the archive topics of the stores
	stale      *prometheus.CounterVec // the commands Participate ignores as too old
	restores   []func(context.Context) error
	losses     []func()
	loops      []func(context.Context) error
	closers    []func() error // in the order of creation; closed in reverse
	advertised string
	member     string        // what it advertises in its group membership (memberData)
	ready      chan struct{} // closed once the first partitions are restored and writes open
	opened     sync.Once     // writes first opened (towardReady)
	readiness  atomic.Int32  // of the two steps of towardReady, those taken

	partitions     *partitions
	partitionCount int32 // of every topic the process reads or keeps state in
}

// registryTimeout bounds a request to the schema registry. A handler that
// waits for one is retried until half the transaction timeout (5 s by
// default) at most, and the transaction must end before the broker aborts
// it: a request begun just before must be answered well within the rest.
const registryTimeout = 2 * time.Second

// registryClient is the schema registry's client. Every worker of the
// session may ask it at once (a start with no schema cached): srclient
// lets 16 requests through at a time unless told, and with a registry
// that does not answer, the last of 64 would wait four timeouts, past the
// transaction's.
func registryClient(k config.Kafka) *srclient.SchemaRegistryClient {
	registry := srclient.NewSchemaRegistryClient(k.SchemaRegistryURL,
		srclient.WithClient(&http.Client{Timeout: registryTimeout}),
		srclient.WithSemaphoreWeight(messaging.Workers))
	if k.RegistryUser != "" {
		registry.SetCredentials(k.RegistryUser, k.RegistryPassword)
	}
	return registry
}

// New connects to Kafka and the registry and creates the topics that are
// missing. It fails if Kafka does not answer; the caller decides whether to
// try again.
func New(cfg Config, logger *slog.Logger) (*Process, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Process{cfg: cfg, Logger: logger, Metrics: prometheus.NewRegistry(), ready: make(chan struct{})}
	p.partitions = &partitions{p: p, gen: -1, assignedGen: -1}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()

	registry := registryClient(cfg.Kafka)
	p.registry = registry
	var err error
	if p.Serde, err = serde.New(registry, serde.Config{AutoRegister: cfg.Kafka.AutoRegisterSchemas}, cfg.Types...); err != nil {
		return nil, err
	}
	if p.advertised, err = advertisedAddr(cfg.Kafka.AdvertisedHTTPAddr, cfg.HTTPAddr); err != nil {
		return nil, err
	}
	traces, err := telemetry.NewTracerProvider(context.Background(), cfg.Telemetry, cfg.Name, semconv.ServiceInstanceID(p.advertised))
	if err != nil {
		return nil, err
	}
	if traces != nil {
		p.Traces = traces
		// Closed last: it sends the spans of everything closed before it.
		p.closers = append(p.closers, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := traces.Shutdown(ctx); err != nil {
				return fmt.Errorf("send the spans still buffered (they are lost): %w", err)
			}
			return nil
		})
	}
	p.member = memberData(p.advertised)
	if p.kgo, err = messaging.KgoOptions(cfg.Kafka); err != nil {
		return nil, err
	}
	if err = messaging.EnsureTopics(cfg.Kafka, contracts.Topics()); err != nil {
		return nil, err
	}
	// Opened before the session, so closed after it.
	if p.db, err = store.OpenDB(cfg.Kafka.StateDir, "kafkasaga-"+cfg.Name, false); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, p.db.Close)
	if p.admin, err = kgo.NewClient(append(slices.Clone(p.kgo), kgo.ClientID(cfg.Name+"-admin"))...); err != nil {
		return nil, fmt.Errorf("connect to kafka: %w", err)
	}
	p.closers = append(p.closers, func() error { p.admin.Close(); return nil })
	p.session = messaging.NewSession(messaging.SessionConfig{
		Kafka: cfg.Kafka,
		Group: cfg.Name,
		// One transactional id per instance, the same after a restart:
		// the restarted instance aborts what its predecessor left open at
		// once, instead of its readers waiting for the transaction to
		// time out.
		TransactionalID:    transactionalID(cfg.Name, p.advertised),
		TransactionTimeout: transactionTimeout,
		UserData:           []byte(p.member),
		Owner:              p.partitions,
		Metrics:            p.Metrics,
		Opened:             func() { p.opened.Do(p.towardReady) },
	}, logger)
	p.closers = append(p.closers, p.session.Close)
	p.Publisher = messaging.PublisherOn(p.session)
	if p.handlers, err = messaging.NewHandlers(messaging.HandlersConfig{DeadLetter: p.Publisher, Metrics: p.Metrics,
		Subscriber: "messaging.Session", Traces: p.Traces}, logger); err != nil {
		return nil, err
	}
	p.HTTP, err = httpserver.New(httpserver.Config{
		Addr:    cfg.HTTPAddr,
		Metrics: p.Metrics,
		Owners:  p.partitions,
		Traces:  p.Traces,
		Checks: map[string]httpserver.Check{
			"kafka": func(ctx context.Context) error { return p.admin.Ping(ctx) },
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

// Main is a service's main: it reads the service's configuration C from
// the environment (its env tags and their defaults), builds the process and
// runs it until SIGINT or SIGTERM; if anything fails, it prints why and
// exits 1.
func Main[C any](name string, build func(C, *slog.Logger) (*Process, error)) {
	limitMemory()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runFromEnv(ctx, name, build)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// MemoryLimit is the soft limit of the Go runtime's memory that a process
// started on its own sets when GOMEMLIMIT does not. What it holds for
// good is small (its records live in Pebble, on disk: 20 to 60 MB with
// Pebble's cache); without a limit the runtime lets the heap grow to twice
// that between collections and gives freed pages back slowly, so that a
// restart's reads, a burst of garbage, leave the process at two to four
// times what it holds. Near the limit the runtime collects more often
// instead. GOMEMLIMIT=off lifts it; set GOMEMLIMIT to about three
// quarters of a container's memory limit when that is larger.
const MemoryLimit = 160 << 20

// limitMemory sets MemoryLimit unless GOMEMLIMIT is set.
func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit)
	}
}

func runFromEnv[C any](ctx context.Context, name string, build func(C, *slog.Logger) (*Process, error)) error {
	var cfg C
	if err := config.Load(&cfg); err != nil {
		return err
	}
	logger, err := config.Logger(name)
	if err != nil {
		return err
	}
	p, err := build(cfg, logger)
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
	if len(p.archives) > 0 {
		if err := messaging.SetRetention(cfg.Kafka, p.retention(), p.archives...); err != nil {
			p.Close()
			return nil, fmt.Errorf("%s: %w", cfg.Name, err)
		}
	}
	return p, nil
}

// defaultSagaRetention is SAGA_RETENTION's default, for a Config made in
// code that leaves it out: a retention of nothing would drop every
// archived record at once, and every message would be too old.
const defaultSagaRetention = 7 * 24 * time.Hour

func (p *Process) retention() time.Duration {
	return cmp.Or(p.cfg.Kafka.SagaRetention, defaultSagaRetention)
}

// Within is how long ago a message may have been written and still be
// acted on: SAGA_RETENTION less a tenth, a margin for the clocks of its
// writer and of this process. What an older one asks about (a saga, a
// participant's decision) may have ended and been forgotten, so that it
// would be decided again as new (an event read again once the group's
// offsets expired, a dead letter replayed late). One written within it
// finds what it asks about, if that was: it ended later still, and is
// kept longer than Within after.
func (p *Process) Within() time.Duration {
	r := p.retention()
	return r - r/10
}

// NewSerde returns a serde on the process's registry client that decodes
// into types, for a reader of records the process does not consume (the
// dead letters of every topic, say). It encodes as the process's does.
func (p *Process) NewSerde(types ...serde.Record) (*serde.Serde, error) {
	return serde.New(p.registry, serde.Config{AutoRegister: p.cfg.Kafka.AutoRegisterSchemas}, types...)
}

// KgoOptions are the franz-go client options of the process's Kafka
// connection (messaging.KgoOptions), for a reader outside its consumer
// group.
func (p *Process) KgoOptions() []kgo.Opt { return slices.Clone(p.kgo) }

// Subscribe hands every message of topic to handler, behind the
// middleware chain (messaging.Handlers). The process reads all its topics
// in one consumer group, named after it, so an instance is assigned the
// same partitions of each: the commands, state and replies of the keys it
// owns.
func (p *Process) Subscribe(topic string, handler message.NoPublishHandlerFunc) error {
	p.session.AddTopic(topic)
	if err := p.session.Handle(topic, p.handlers.Wrap(p.cfg.Name+"."+topic, topic, handler)); err != nil {
		return err
	}
	p.topics = append(p.topics, topic)
	return nil
}

// Send publishes msg to topic as a record keyed by key: a saga.Send.
func (p *Process) Send(topic, key string, msg *message.Message) error {
	msg.Metadata.Set(contracts.HeaderPartitionKey, key)
	return p.Publisher.Publish(topic, msg)
}

// OnRestored runs fn whenever the owned partitions change, once the stores
// hold the newly assigned ones and before any message of them is handled:
// to rebuild what a service derives from its stores.
func (p *Process) OnRestored(fn func(ctx context.Context) error) { p.restores = append(p.restores, fn) }

// OnLost runs fn when the partitions are lost (the instance learns that
// its group went on without it: another instance may have written to them
// since), after their state is dropped: to forget what a service derived
// from them. It must not wait for a handler.
func (p *Process) OnLost(fn func()) { p.losses = append(p.losses, fn) }

// Go runs loop beside the consumer and the HTTP server, after the state is
// restored, until the process stops.
func (p *Process) Go(loop func(ctx context.Context) error) { p.loops = append(p.loops, loop) }

// NewStore returns a store on the compacted topic, holding the partitions
// this instance is assigned. A record whose partition is chosen by another
// key than its own (store.Config.PartitionKey), an archive or an expiry is
// set with opts; an expiry's After left out is SAGA_RETENTION. A store
// that archives or expires is pruned every minute.
func NewStore[T any](p *Process, topic string, opts ...func(*store.Config[T])) (*store.Store[T], error) {
	codec, err := store.AvroCodec[T](p.Serde, topic)
	if err != nil {
		return nil, err
	}
	cfg := store.Config[T]{Topic: topic, Kgo: p.kgo, Producer: p.session, Codec: codec, DB: p.db}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.Expire != nil && cfg.Expire.After == 0 {
		cfg.Expire.After = p.retention()
	}
	s, err := store.New(cfg, p.Logger)
	if err != nil {
		return nil, err
	}
	p.stores = append(p.stores, s)
	p.closers = append(p.closers, s.Close)
	if cfg.Archive != nil {
		p.archives = append(p.archives, cfg.Archive.Topic)
	}
	if cfg.Archive != nil || cfg.Expire != nil {
		p.loops = append(p.loops, func(ctx context.Context) error {
			return Every(ctx, time.Minute, func() { p.prune(ctx, s) })
		})
	}
	return s, nil
}

// Every calls fn every interval until ctx ends, the first time one
// interval from now: the loop of a process's periodic work.
func Every(ctx context.Context, interval time.Duration, fn func()) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			fn()
		}
	}
}

// prune deletes the pointers of the store's archived records that their
// topic's retention dropped; a failure is tried again at the next call.
func (p *Process) prune(ctx context.Context, s interface {
	Topic() string
	Prune(context.Context) (int, error)
}) {
	if n, err := s.Prune(ctx); err != nil {
		p.Logger.Warn("prune the records over; again at the next tick", "topic", s.Topic(), "error", err)
	} else if n > 0 {
		p.Logger.Info("records over past their retention forgotten", "topic", s.Topic(), "records", n)
	}
}

// Run joins the process's consumer group, restores the partitions it is
// assigned, then consumes, serves HTTP and runs the loops until ctx ends or
// one of them fails; then it stops them all and closes the Kafka clients.
func (p *Process) Run(ctx context.Context) error {
	defer p.Close()
	// The port first: a start that cannot have it (another instance's, a
	// live one) evicts nobody from the group as its predecessor.
	ln, err := p.HTTP.Listen()
	if err != nil {
		return fmt.Errorf("%s: %w", p.cfg.Name, err)
	}
	served := false
	defer func() {
		if !served {
			ln.Close()
		}
	}()
	topics := append(slices.Clone(p.topics), p.archives...)
	for _, s := range p.stores {
		topics = append(topics, s.Topic())
	}
	if err := p.checkCoPartitioned(ctx, topics); err != nil {
		return fmt.Errorf("%s: %w", p.cfg.Name, err)
	}
	watch := newPeers()
	if len(p.topics) > 0 {
		p.partitions.lease = newLease(cmp.Or(p.cfg.Kafka.SessionTimeout, 10*time.Second), p.session.Heartbeat, p.Logger)
		look, cancel := context.WithTimeout(ctx, 2*adminTimeout)
		err := p.evictBeforeJoining(look, watch)
		cancel()
		if err != nil {
			return err
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	p.partitions.stopping = ctx
	// The port stays open until the session has left the group: its peers
	// take a refused connection for a dead instance, evict it and fence its
	// transactional ids, which would abort the last commit of what it has
	// in flight. Meanwhile its keys are answered 503 (it serves none).
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHTTP()
	served = true
	g.Go(func() error { return p.HTTP.Serve(httpCtx, ln) })
	if len(p.topics) == 0 {
		// Nothing to consume, so no group to share partitions in: it owns
		// them all, as the one instance.
		g.Go(func() error { return p.partitions.ownAll(ctx) })
	}
	if len(p.topics) > 0 {
		g.Go(func() error { return p.watchPeers(ctx, watch) })
		g.Go(func() error { return p.partitions.lease.run(ctx) })
		if p.cfg.Kafka.Standby {
			for _, s := range p.stores {
				g.Go(func() error { return s.Follow(ctx) })
			}
			lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "standby_lag_records",
				Help: "Records of the partitions other instances own that this one's standby replicas have not read yet (-1: unknown).",
			}, p.standbyLag)
			if err := p.Metrics.Register(lag); err != nil {
				p.Logger.Warn("register the standby lag metric", "error", err)
			}
		}
	}
	g.Go(func() error {
		defer stopHTTP()
		if err := p.session.Run(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.cfg.Name, err)
		}
		return nil
	})
	g.Go(func() error {
		select {
		case <-p.ready:
		case <-ctx.Done():
			return nil
		}
		for _, loop := range p.loops {
			g.Go(func() error { return loop(ctx) })
		}
		return nil
	})
	return g.Wait()
}

// standbyLag sums what the stores' standby replicas have not read yet;
// -1 if one of them cannot say.
func (p *Process) standbyLag() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var sum int64
	for _, s := range p.stores {
		lag, err := s.StandbyLag(ctx)
		if err != nil {
			return -1
		}
		sum += lag
	}
	return float64(sum)
}

// towardReady runs once when the first partitions are restored, and once
// when writes first open: the process is ready after both, when it can
// answer and write. Ready at the restore alone, the writes of the moment
// before the first transaction began (a loop's first, a request's) were
// refused as a rebalance's.
func (p *Process) towardReady() {
	if p.readiness.Add(1) < 2 {
		return
	}
	p.HTTP.MarkReady()
	close(p.ready)
	p.Logger.Info("ready", "advertised", p.advertised)
}

// advertisedAddr is the address the other instances reach this one at:
// the one configured, else the HTTP address, or, if that names no host,
// its port on this host's name.
func advertisedAddr(configured, httpAddr string) (string, error) {
	if configured != "" {
		// Others dial it as it is: no scheme, a host, a port.
		host, port, err := net.SplitHostPort(configured)
		if err == nil {
			if n, perr := strconv.ParseUint(port, 10, 16); perr != nil || n == 0 {
				err = fmt.Errorf("port %q is no port number", port)
			} else if host == "" || host == "0.0.0.0" || host == "::" {
				err = errors.New("it names no host the others can reach")
			}
		}
		if err != nil {
			return "", fmt.Errorf("ADVERTISED_HTTP_ADDR %q: want host:port: %w", configured, err)
		}
		return configured, nil
	}
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", fmt.Errorf("HTTP_ADDR %q: %w", httpAddr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("ADVERTISED_HTTP_ADDR unset and no host name: %w", err)
		}
	}
	return net.JoinHostPort(host, port), nil
}

// Close closes the Kafka clients, the local state and the tracer provider;
// Run calls it when it returns, so only a process that is never run needs
// it. What fails to close is logged: the spans lost, a state directory
// left on disk.
func (p *Process) Close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil {
			p.Logger.Warn("close", "error", err)
		}
	}
	p.closers = nil
}

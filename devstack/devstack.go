// Package devstack runs Kafka and a schema registry inside the process, for
// development and tests without Docker or a JVM: a one-broker franz-go kfake
// cluster and the registry of package registry, whose schemas live in the
// broker's compacted _schemas topic as they would with Confluent's.
//
// Topics are not created automatically, as on a production cluster: the
// code that uses a topic must create it. The broker compacts compacted topics
// and deletes what retention no longer keeps, as Kafka would
// (Config.MaintainEvery).
package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafkasaga/kafkasaga/devstack/registry"
)

// Config configures a Stack.
type Config struct {
	KafkaAddr    string // default "127.0.0.1:9092"; "127.0.0.1:0" picks a free port
	RegistryAddr string // default "127.0.0.1:8081"; "127.0.0.1:0" picks a free port
	DataDir      string // "" keeps the broker's data in memory
	// Brokers, when set, names a running Kafka: no embedded broker starts,
	// and the registry keeps its schemas on that Kafka. The real-Kafka test
	// suite runs this way, since Confluent's registry is not at hand there.
	Brokers []string
	Logger  *slog.Logger
	// MaintainEvery is how often the embedded broker compacts its compacted
	// topics and deletes the records their retention no longer keeps, as
	// Kafka's log cleaner and retention would (see maintain.go). Default
	// 30s; negative turns it off, leaving only kfake's own hourly pass.
	MaintainEvery time.Duration
	// Retention is how long the embedded broker keeps the records of the
	// delete-policy topics that set no retention.ms: Kafka's
	// log.retention.ms, 7 days by default; negative forever.
	Retention time.Duration
}

func (c *Config) setDefaults() {
	if c.KafkaAddr == "" {
		c.KafkaAddr = "127.0.0.1:9092"
	}
	if c.RegistryAddr == "" {
		c.RegistryAddr = "127.0.0.1:8081"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaintainEvery == 0 {
		c.MaintainEvery = 30 * time.Second
	}
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	for _, a := range []struct{ name, addr string }{{"kafka address", c.KafkaAddr}, {"registry address", c.RegistryAddr}} {
		name, addr := a.name, a.addr
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, addr, err))
			continue
		}
		// The broker tells clients to reconnect to the address it listens
		// on; an unspecified one would send them nowhere.
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			errs = append(errs, fmt.Errorf("%s %q: needs a concrete host, such as 127.0.0.1", name, addr))
		}
	}
	return errors.Join(errs...)
}

// Stack is a running broker and registry.
type Stack struct {
	cluster  *kfake.Cluster // nil with Config.Brokers
	brokers  []string
	registry *registry.Registry
	regURL   string
	stop     context.CancelFunc
	served   chan error
	// maintained is closed when maintenance has stopped; nil without it.
	maintained chan struct{}
	maintainer *maintainer
	// closeBroker closes the embedded broker, and lets go of its data
	// directory's lock.
	closeBroker func()

	closeOnce sync.Once
	closeErr  error
}

// Start starts the broker and then the registry, which restores its schemas
// from the broker before Start returns. ctx bounds the start-up; Close
// stops the stack.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("devstack config: %w", err)
	}
	brokers := cfg.Brokers
	var cluster *kfake.Cluster
	unlock := func() {}
	if len(brokers) == 0 {
		var err error
		if cluster, unlock, err = startBroker(cfg); err != nil {
			return nil, err
		}
		brokers = cluster.ListenAddrs()
	}
	closeBroker := func() {
		if cluster != nil {
			cluster.Close()
		}
		unlock()
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.RegistryAddr)
	if err != nil {
		closeBroker()
		return nil, fmt.Errorf("devstack: schema registry: %w", err)
	}
	reg, err := registry.New(ctx, registry.Config{Brokers: brokers}, cfg.Logger.With("component", "schema-registry"))
	if err != nil {
		ln.Close()
		closeBroker()
		return nil, fmt.Errorf("devstack: %w", err)
	}
	var m *maintainer
	if cluster != nil && cfg.MaintainEvery > 0 {
		if m, err = newMaintainer(cluster, cfg); err != nil {
			reg.Close()
			ln.Close()
			closeBroker()
			return nil, fmt.Errorf("devstack: %w", err)
		}
	}
	serveCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &Stack{cluster: cluster, brokers: brokers, registry: reg, regURL: "http://" + ln.Addr().String(), stop: stop, served: make(chan error, 1),
		maintainer: m, closeBroker: closeBroker}
	go func() { s.served <- reg.Serve(serveCtx, ln) }()
	if m != nil {
		s.maintained = make(chan struct{})
		go func() {
			defer close(s.maintained)
			m.run(serveCtx, cfg.MaintainEvery)
		}()
	}
	return s, nil
}

// startBroker starts the embedded broker, on its data directory, whose
// lock it holds until unlock.
func startBroker(cfg Config) (_ *kfake.Cluster, unlock func(), err error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, cfg.KafkaAddr) }),
		kfake.WithLogger(kfakeLogger{cfg.Logger.With("component", "kfake")}),
		// Kafka's default minimum is 6s; tests that watch a consumer
		// group notice a dead member sooner with a shorter session.
		kfake.GroupMinSessionTimeout(500 * time.Millisecond),
		// Kafka's default maximum (group.max.session.timeout.ms), where
		// kfake's is 5 minutes: a longer KAFKA_SESSION_TIMEOUT, which
		// Kafka takes, failed every join.
		kfake.GroupMaxSessionTimeout(30 * time.Minute),
		// Retention of topics without their own retention.ms is the
		// stack's (Config.Retention): kfake would apply it to compacted
		// topics too.
		kfake.BrokerConfigs(map[string]string{"log.retention.ms": "-1"}),
	}
	unlock = func() {}
	if cfg.DataDir != "" {
		if unlock, err = lockDataDir(cfg.DataDir); err != nil {
			return nil, nil, fmt.Errorf("devstack: %w", err)
		}
		restored, err := restoreCompacting(cfg.DataDir)
		if err != nil {
			unlock()
			return nil, nil, fmt.Errorf("devstack: put back the partitions a compaction kept: %w", err)
		}
		if restored {
			cfg.Logger.Warn("a crash ended a compaction: the broker's partitions are back as they were before it", "data_dir", cfg.DataDir)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.MaintainEvery > 0 {
		// The stack's maintenance compacts (maintain.go): kfake's own
		// pass would compact past transactions still open.
		opts = append(opts, kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": strconv.FormatInt(100*365*24*3600*1000, 10)}))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("devstack: start kafka on %s: %w", cfg.KafkaAddr, err)
	}
	return cluster, unlock, nil
}

// StartForTest starts a stack on free ports, with its data in memory, and
// closes it when the test ends. If KAFKA_BROKERS is set, the registry runs on
// that Kafka and no embedded broker starts.
func StartForTest(t testing.TB) *Stack {
	t.Helper()
	// Warnings only, to stderr: go test shows them for failing packages,
	// and unlike t.Log they are safe from goroutines that outlive the test.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Logger: logger}
	if brokers := os.Getenv("KAFKA_BROKERS"); brokers != "" {
		cfg.Brokers = strings.Split(brokers, ",")
	}
	s, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start devstack: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close devstack: %v", err)
		}
	})
	return s
}

// Brokers returns the address of the broker, for a client's seed brokers.
func (s *Stack) Brokers() []string { return s.brokers }

// RegistryURL returns the base URL of the schema registry.
func (s *Stack) RegistryURL() string { return s.regURL }

// Cluster returns the embedded broker, for tests that inject faults or
// inspect it; nil when the stack runs on an external Kafka.
func (s *Stack) Cluster() *kfake.Cluster { return s.cluster }

// Close stops the registry and the broker's maintenance, then the broker,
// and frees their ports. With a DataDir, the broker saves its data there
// first.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.closeErr = <-s.served
		s.registry.Close()
		if s.maintained != nil {
			<-s.maintained
			// What a compaction kept and could not drop would be put
			// back at the next start, over what was written since.
			if dir := s.maintainer.dataDir; dir != "" {
				s.closeErr = errors.Join(s.closeErr, dropKept(dir))
			}
		}
		s.closeBroker()
	})
	return s.closeErr
}

var _ kfake.Logger = kfakeLogger{}

// kfakeLogger passes kfake's logs to slog. kfake logs every request at info
// level, which is debug detail here.
type kfakeLogger struct{ logger *slog.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	lvl := slog.LevelDebug
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	}
	ctx := context.Background()
	if l.logger.Enabled(ctx, lvl) {
		l.logger.Log(ctx, lvl, fmt.Sprintf(format, args...))
	}
}

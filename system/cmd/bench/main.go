// Command bench measures the whole system on this machine: it starts the
// embedded broker and registry (or uses KAFKA_BROKERS and
// SCHEMA_REGISTRY_URL) and the four processes in-process, measures the
// ceiling of the Kafka client the services use, runs SAGAS Create Order
// sagas over HTTP, checks that every one ended as its input dictates and
// that the credit invariant holds, and prints a table, then one JSON object
// as the last line of its output. `make bench` runs it.
//
// Environment: SAGAS (default 20000), WARMUP (sagas run first and left out
// of the figures, default 1000), CONCURRENCY (HTTP clients, default
// 128), RATE (sagas per second: open loop; unset: closed loop), INSTANCES
// (instances of every process, default 1), CLIENT_KEYS (true: the clients
// send each POST under an Idempotency-Key of their own, forwarded when
// another instance owns it), PROFILE (a file for the CPU
// profile of the saga phase, which is taken anyway to tell the bench's own
// share of the CPU), BOUND_RECORDS and
// BOUND_ROUNDTRIPS (the size of the ceiling measurements), and the
// variables of `make run` (KAFKA_BROKERS, PAYMENT_LIMIT, ...).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/system"
	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := loadConfig()
	if err == nil {
		err = run(ctx, cfg, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Config says what to measure and how hard to push.
type Config struct {
	Sagas int `env:"SAGAS" envDefault:"20000"`
	// Warmup sagas run first, the same way, and are verified but not
	// measured.
	Warmup      int     `env:"WARMUP" envDefault:"1000"`
	Concurrency int     `env:"CONCURRENCY" envDefault:"128"` // HTTP clients posting orders
	Rate        float64 `env:"RATE"`                         // sagas per second, open loop; 0: closed loop
	// Instances is how many instances of every process run, sharing the
	// work by partition; the HTTP clients send to them in turn.
	Instances int `env:"INSTANCES" envDefault:"1"`
	// ClientKeys makes the HTTP clients send each POST under an
	// Idempotency-Key of their own, so that one for a key another
	// instance owns is forwarded there; without it they send none, and
	// the instance that gets an order makes it.
	ClientKeys bool `env:"CLIENT_KEYS"`
	// BoundRecords records are written to measure records_per_s, and
	// BoundRoundtrips request/reply pairs exchanged for roundtrips_per_s.
	BoundRecords    int `env:"BOUND_RECORDS" envDefault:"100000"`
	BoundRoundtrips int `env:"BOUND_ROUNDTRIPS" envDefault:"20000"`
	// Profile names a file to write a CPU profile of the whole process to,
	// taken during the saga phase.
	Profile string `env:"PROFILE"`
	// Stall is how long the run waits without any saga ending before it
	// gives up on the ones still running.
	Stall time.Duration `env:"STALL_TIMEOUT" envDefault:"60s"`

	// System configures the processes as `make run` does; HTTP addresses
	// and Kafka are set by the bench.
	System system.Config `env:"-"`
	// ExternalKafka and ExternalRegistry: KAFKA_BROKERS and
	// SCHEMA_REGISTRY_URL were set, so the bench runs on them instead of
	// the embedded broker and registry.
	ExternalKafka    bool `env:"-"`
	ExternalRegistry bool `env:"-"`
}

// loadConfig reads the environment, as `make run` does for the system.
func loadConfig() (Config, error) {
	var cfg Config
	if err := config.Load(&cfg); err != nil {
		return cfg, err
	}
	for _, part := range []any{&cfg.System.Kafka, &cfg.System.Payment, &cfg.System.Orchestrator} {
		if err := config.Load(part, "HTTP_ADDR"); err != nil {
			return cfg, err
		}
	}
	_, cfg.ExternalKafka = os.LookupEnv("KAFKA_BROKERS")
	_, cfg.ExternalRegistry = os.LookupEnv("SCHEMA_REGISTRY_URL")
	return cfg, cfg.Validate()
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Sagas < 1 {
		errs = append(errs, fmt.Errorf("SAGAS is %d, want at least 1", c.Sagas))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("WARMUP is %d, want 0 or more", c.Warmup))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("CONCURRENCY is %d, want at least 1", c.Concurrency))
	}
	if c.Instances < 1 {
		errs = append(errs, fmt.Errorf("INSTANCES is %d, want at least 1", c.Instances))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("RATE is %g, want a positive number of sagas per second (or unset for a closed loop)", c.Rate))
	}
	if c.BoundRecords < partitions || c.BoundRoundtrips < partitions {
		errs = append(errs, fmt.Errorf("BOUND_RECORDS %d and BOUND_ROUNDTRIPS %d must each be at least %d", c.BoundRecords, c.BoundRoundtrips, partitions))
	}
	if c.Stall <= 0 {
		errs = append(errs, fmt.Errorf("STALL_TIMEOUT is %s, want > 0", c.Stall))
	}
	// The bench's own observers (franz-go) are not wired for a secured
	// cluster; the services are.
	if c.ExternalKafka && (c.System.Kafka.TLS || c.System.Kafka.SASLMechanism != "") {
		errs = append(errs, errors.New("the bench does not support KAFKA_TLS or KAFKA_SASL_MECHANISM: run it on a plaintext cluster"))
	}
	return errors.Join(errs...)
}

// run measures the bound, starts the system, runs the sagas, checks the
// answers and reports to out; the progress bar goes to progress.
func run(ctx context.Context, cfg Config, out, progress io.Writer) error {
	// The system runs with a spare P (system.Run); the bound, measured
	// before and after it, with the same.
	system.SpareP()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t, err := startStack(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer t.stop(logger)

	// The bound is measured with the processes stopped, before the sagas
	// and again after them, so that nothing else shares the cores.
	fmt.Fprintf(progress, "bench: %s ready; measuring the bound\n", t.kafkaName)
	suffix := runSuffix()
	b, err := measureBound(ctx, t, cfg, suffix, logger)
	if err != nil {
		return err
	}
	if err := t.startSystem(ctx, cfg, logger); err != nil {
		return err
	}
	fmt.Fprintf(progress, "bench: bound %.0f records/s, %.0f roundtrips/s; system ready, running %d sagas\n", b.recordsPerS, b.roundtripsPerS, cfg.Sagas)
	a := load.NewAPI(t.order, t.customer, cfg.Concurrency)
	a.Keys = cfg.ClientKeys
	defer a.Close()
	var ph *sagaPhase
	asHarness(ctx, func(ctx context.Context) { ph, err = runSagas(ctx, cfg, t, a, progress) })
	if err != nil {
		return err
	}
	v, verr := verify(ctx, a, ph)
	if verr != nil && !errors.Is(verr, errWrongAnswer) {
		return fmt.Errorf("verify: %w", verr)
	}
	t.stopSystem(logger)
	if err := b.sampleRecords(ctx, t, cfg, "bench."+suffix+".records-after", logger); err != nil {
		return err
	}
	s := summarize(cfg, b, ph)
	writeTable(out, cfg, t, b, ph, v, s, verr)
	if verr != nil {
		return verr
	}
	if err := s.check(); err != nil {
		return err
	}
	return writeJSON(out, s)
}

// loop is how the sagas are posted.
func (c Config) loop() load.Loop { return load.Loop{Concurrency: c.Concurrency, Rate: c.Rate} }

// runSuffix names this run's scratch topics and groups, so runs on one
// cluster never share them.
func runSuffix() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36)
}

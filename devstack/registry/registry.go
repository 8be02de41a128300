// Package registry is a development stand-in for Confluent Schema Registry:
// an HTTP server that speaks the subset of its REST API that Confluent's
// serializers, riferrei/srclient and franz-go's sr client use, for Avro
// schemas only.
//
// Like Confluent's registry it keeps its state in a compacted Kafka topic
// (_schemas), in Confluent's own record format: every change is written to
// the topic first and applied to memory after Kafka acknowledged it, and a
// new registry reads the whole topic before it serves. So a registry
// restarted on the same broker serves the same ids and versions.
//
// Only one registry may write to a topic: an instance reads the topic once,
// at start, and does not follow what another instance writes (Confluent
// elects a leader for this; a development stand-in does not need one).
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Config configures a Registry.
type Config struct {
	Brokers []string // Kafka brokers that hold the schemas topic
	Topic   string   // the compacted topic the state lives in; default "_schemas"
}

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = "_schemas"
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one is required"))
	}
	for i, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("brokers[%d] %q: %w", i, b, err))
		}
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("topic: required"))
	}
	return errors.Join(errs...)
}

// writeTimeout bounds a write to Kafka. Writes do not stop with the request
// that asked for them: a write abandoned halfway could land in the topic
// without reaching memory.
const writeTimeout = 30 * time.Second

// shutdownGrace is how long Serve waits for requests in flight at shutdown.
const shutdownGrace = 2 * time.Second

// Registry serves the schemas stored in its Kafka topic.
type Registry struct {
	cfg    Config
	logger *slog.Logger
	log    *changelog
	mux    *http.ServeMux

	writeMu sync.Mutex   // one change at a time: plan, write to Kafka, apply
	mu      sync.RWMutex // guards st
	st      *state
}

// New connects to Kafka, creates the topic if it is missing and restores
// the state from it. ctx bounds the start-up only.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Registry, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("schema registry config: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	log, err := openChangelog(ctx, cfg.Brokers, cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	r := &Registry{cfg: cfg, logger: logger, log: log, st: newState()}
	err = log.replay(ctx, func(key, value []byte) {
		if err := r.st.apply(key, value); err != nil {
			logger.Warn("schema registry skipped a record it cannot read", "topic", cfg.Topic, "error", err)
		}
	})
	if err != nil {
		log.close()
		return nil, fmt.Errorf("schema registry: restore: %w", err)
	}
	r.mux = r.routes()
	logger.Info("schema registry restored", "topic", cfg.Topic, "schemas", len(r.st.byID), "subjects", len(r.st.subjects))
	return r, nil
}

// Serve serves the REST API on ln until ctx ends, then shuts down gracefully.
func (r *Registry) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           r.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(r.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("schema registry: serve: %w", err)
	case <-ctx.Done():
	}
	// Requests take milliseconds; what is left after the grace period is
	// mostly connections clients opened but never used, which Shutdown
	// would wait seconds for.
	graceCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(graceCtx); err != nil {
		_ = srv.Close() // the listener is closed; only connections remain to drop
	}
	<-errc
	return nil
}

// Close releases the Kafka clients. Stop Serve first.
func (r *Registry) Close() {
	r.log.close()
}

// change plans a change on the current state and carries it out: the
// planned records are written to Kafka and only then applied to memory.
func (r *Registry) change(ctx context.Context, plan func(*state) ([]record, error)) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	recs, err := func() ([]record, error) {
		r.mu.RLock()
		defer r.mu.RUnlock() // a plan that panics (the server recovers) leaves no lock held
		return plan(r.st)
	}()
	if err != nil || len(recs) == 0 {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := r.log.append(ctx, recs); err != nil {
		// They may have landed all the same: hand out none of their schema
		// ids again, or a restart could find two schemas under one id.
		r.mu.Lock()
		r.st.burnIDs(recs)
		r.mu.Unlock()
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		if err := r.st.apply(rec.key, rec.value); err != nil {
			return fmt.Errorf("apply written record: %w", err)
		}
	}
	return nil
}

// read runs fn on the current state.
func (r *Registry) read(fn func(*state) (any, error)) (any, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return fn(r.st)
}

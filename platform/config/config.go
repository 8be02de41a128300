// Package config reads the settings every process shares from the
// environment. Only main calls it; everything below main gets a struct.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Kafka holds the settings of the Kafka clients and the schema registry.
type Kafka struct {
	Brokers           []string `env:"KAFKA_BROKERS" envDefault:"127.0.0.1:9092" envSeparator:","`
	SchemaRegistryURL string   `env:"SCHEMA_REGISTRY_URL" envDefault:"http://127.0.0.1:8081"`
	// AutoRegisterSchemas registers a schema on first use. Production
	// registries usually forbid it: set it to false and run `make schemas`.
	AutoRegisterSchemas bool `env:"AUTO_REGISTER_SCHEMAS" envDefault:"true"`
	// TLS and SASL settings for a secured cluster; empty means plaintext.
	TLS           bool   `env:"KAFKA_TLS" envDefault:"false"`
	TLSCAFile     string `env:"KAFKA_TLS_CA_FILE"`
	SASLMechanism string `env:"KAFKA_SASL_MECHANISM"` // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	SASLUser      string `env:"KAFKA_SASL_USER"`
	SASLPassword  string `env:"KAFKA_SASL_PASSWORD"`
	// SessionTimeout is how long a consumer may be silent before the group
	// hands its partitions to the others: how soon an instance that stopped
	// answering without dying loses its work (its peers evict a dead one
	// sooner). Kafka accepts 6s to 30m by default.
	SessionTimeout time.Duration `env:"KAFKA_SESSION_TIMEOUT" envDefault:"10s" min:"1s"`
	// FetchMinBytes and FetchMaxWait trade latency for throughput: a fetch
	// answers once FetchMinBytes are ready or FetchMaxWait has passed. The
	// defaults answer at once (lowest latency) and cost nearly nothing when
	// idle; a short FetchMaxWait means a fetch that often, busy or not.
	// docs/performance.md measures both ends.
	FetchMinBytes int32         `env:"KAFKA_FETCH_MIN_BYTES" envDefault:"1" min:"1"`
	FetchMaxWait  time.Duration `env:"KAFKA_FETCH_MAX_WAIT" envDefault:"500ms" min:"10ms" max:"596h"` // franz-go's least; its most, in int32 ms
	// AdvertisedHTTPAddr is the HTTP address (host:port) at which the other
	// instances of a process reach this one, to forward the requests for
	// the keys it owns. Empty means HTTP_ADDR itself, or, when HTTP_ADDR
	// names no host (":8080", 0.0.0.0, ::), its port on this host's name.
	// It also names the instance's transactions, so it must be unique
	// among the instances and stay the same across a restart.
	AdvertisedHTTPAddr string `env:"ADVERTISED_HTTP_ADDR"`
	// StateDir is where an instance keeps the records of the state
	// partitions it owns, on local disk, so that its memory does not grow
	// with them: a directory of its own under StateDir (the system's
	// temporary directory if empty), emptied at start and removed at exit.
	// It is a cache of Kafka's changelogs, rebuilt from them on every
	// start and assignment: an ephemeral volume will do.
	StateDir string `env:"STATE_DIR"`
	// Standby keeps, in StateDir, a copy of the state of the partitions
	// the other instances own, following their changelogs as they are
	// committed (Kafka Streams' standby replicas), so that an instance
	// that takes partitions over reads only what it has not followed yet.
	// It costs each instance the reading of the others' state writes.
	Standby bool `env:"STANDBY" envDefault:"true"`
	// SagaRetention is how long what ended stays readable: an ended saga
	// (GET /sagas/{id}; the retention.ms of the archive topics), and a
	// participant's decision that holds nothing any more (a credit
	// refused or released, a payment declined), which answers a command
	// sent again (store.Expire). Then it is gone. An event that would
	// start a saga, or a command that would make a decision, written
	// longer ago than it less a tenth is ignored: the saga or the decision
	// may have been and be gone. At least a minute.
	SagaRetention time.Duration `env:"SAGA_RETENTION" envDefault:"168h" min:"1m"`
	// RegistryUser and RegistryPassword are HTTP basic auth for the registry.
	RegistryUser     string `env:"SCHEMA_REGISTRY_USER"`
	RegistryPassword string `env:"SCHEMA_REGISTRY_PASSWORD"`
}

// Load fills cfg, a pointer to a struct with `env` tags, from the
// environment, applying the defaults in the tags. Variables named in ignore
// are treated as unset, so their defaults apply. Lists are comma-separated;
// spaces around an item and empty items are dropped ("a:9092, b:9092,").
// An unparsable value is reported under its variable's name, and so is a
// number or duration below the `min` tag of its field (`min:"1ms"`) or
// above its `max` tag: a zero or negative one is refused, not taken for the
// default or left to fail later under a Go field's name.
func Load(cfg any, ignore ...string) error {
	environ := env.ToMap(os.Environ())
	for _, name := range ignore {
		delete(environ, name)
	}
	opts := env.Options{Environment: environ, FuncMap: map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[[]string](): func(v string) (any, error) { return splitList(v), nil },
	}}
	if err := env.ParseWithOptions(cfg, opts); err != nil {
		return fmt.Errorf("read configuration from the environment: %w", nameVariables(err, reflect.TypeOf(cfg)))
	}
	if err := checkBounds(reflect.ValueOf(cfg)); err != nil {
		return fmt.Errorf("read configuration from the environment: %w", err)
	}
	return nil
}

// checkBounds reports every field of v, and of the structs it holds, that
// is below its `min` tag or above its `max` tag, under its variable's name.
func checkBounds(v reflect.Value) error {
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	var errs []error
	for i := range v.NumField() {
		f, field := v.Type().Field(i), v.Field(i)
		if f.Tag.Get("env") == "-" {
			continue // not read from the environment
		}
		least, hasMin := f.Tag.Lookup("min")
		most, hasMax := f.Tag.Lookup("max")
		if !hasMin && !hasMax {
			errs = append(errs, checkBounds(field))
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		parse := func(bound string) int64 {
			switch {
			case f.Type == reflect.TypeFor[time.Duration]():
				return int64(must(time.ParseDuration(bound)))
			case field.CanInt():
				return must(strconv.ParseInt(bound, 10, 64))
			}
			panic(fmt.Sprintf("config: bound tag on %s, of type %s", f.Name, f.Type))
		}
		if hasMin && field.Int() < parse(least) {
			errs = append(errs, fmt.Errorf("%s: %v is less than %s, the least it may be", name, field.Interface(), least))
		}
		if hasMax && field.Int() > parse(most) {
			errs = append(errs, fmt.Errorf("%s: %v is more than %s, the most it may be", name, field.Interface(), most))
		}
	}
	return errors.Join(errs...)
}

// must returns v, or panics on a `min` or `max` tag that does not parse: a
// mistake in the code, not in the environment.
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("config: bound tag: %v", err))
	}
	return v
}

func splitList(v string) []string {
	var items []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// nameVariables rewrites env's parse errors, which name the Go field, to
// name the variable a user set, where the field's name says which.
func nameVariables(err error, cfg reflect.Type) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	errs := make([]error, len(agg.Errors))
	for i, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			vars := variablesOf(cfg, pe.Name, map[reflect.Type]bool{})
			slices.Sort(vars)
			if vars = slices.Compact(vars); len(vars) == 1 {
				e = fmt.Errorf("%s: %w", vars[0], pe.Err)
			}
		}
		errs[i] = e
	}
	return errors.Join(errs...)
}

// variablesOf lists the variable of every field named field in t and the
// structs it holds.
func variablesOf(t reflect.Type, field string, seen map[reflect.Type]bool) []string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return nil
	}
	seen[t] = true
	var names []string
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); f.Name == field && name != "" {
			names = append(names, name)
		}
		names = append(names, variablesOf(f.Type, field, seen)...)
	}
	return names
}

// Logger returns a JSON or text logger at the level named by LOG_LEVEL
// (debug, info, warn, error; info if unset), in the format named by
// LOG_FORMAT (text, json; text if unset), whose lines name the service
// (unless it is empty). A value it does not know is refused under its
// variable's name, as Load refuses one.
func Logger(service string) (*slog.Logger, error) {
	var level slog.Level
	if v := os.Getenv("LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return nil, fmt.Errorf("read configuration from the environment: LOG_LEVEL %q: want debug, info, warn or error", v)
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch v := os.Getenv("LOG_FORMAT"); strings.ToLower(v) {
	case "", "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return nil, fmt.Errorf("read configuration from the environment: LOG_FORMAT %q: want text or json", v)
	}
	logger := slog.New(h)
	if service != "" {
		logger = logger.With("service", service)
	}
	return logger, nil
}

package config_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/config"
)

// kafkaVars are every variable config.Kafka reads; each test starts with
// all of them empty, which env treats as unset.
var kafkaVars = []string{
	"KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "AUTO_REGISTER_SCHEMAS", "KAFKA_TLS", "KAFKA_TLS_CA_FILE",
	"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USER", "KAFKA_SASL_PASSWORD", "KAFKA_SESSION_TIMEOUT",
	"SCHEMA_REGISTRY_USER", "SCHEMA_REGISTRY_PASSWORD",
}

func clearKafkaEnv(t *testing.T) {
	t.Helper()
	for _, name := range kafkaVars {
		t.Setenv(name, "")
	}
}

func TestLoadAppliesDefaults(t *testing.T) {
	clearKafkaEnv(t)
	var got config.Kafka
	if err := config.Load(&got); err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Kafka{
		Brokers:             []string{"127.0.0.1:9092"},
		SchemaRegistryURL:   "http://127.0.0.1:8081",
		AutoRegisterSchemas: true,
		SessionTimeout:      10 * time.Second,
	}
	if !slices.Equal(got.Brokers, want.Brokers) || got.SchemaRegistryURL != want.SchemaRegistryURL ||
		got.AutoRegisterSchemas != want.AutoRegisterSchemas || got.SessionTimeout != want.SessionTimeout ||
		got.TLS || got.SASLMechanism != "" {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestLoadReadsTheEnvironment(t *testing.T) {
	clearKafkaEnv(t)
	t.Setenv("KAFKA_BROKERS", "k1:9092,k2:9093,k3:9094")
	t.Setenv("SCHEMA_REGISTRY_URL", "https://registry.example:8081")
	t.Setenv("AUTO_REGISTER_SCHEMAS", "false")
	t.Setenv("KAFKA_TLS", "true")
	t.Setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("KAFKA_SASL_USER", "saga")
	t.Setenv("KAFKA_SESSION_TIMEOUT", "1m30s")

	var got config.Kafka
	if err := config.Load(&got); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := []string{"k1:9092", "k2:9093", "k3:9094"}; !slices.Equal(got.Brokers, want) {
		t.Errorf("Brokers: got %q, want %q", got.Brokers, want)
	}
	if got.SchemaRegistryURL != "https://registry.example:8081" {
		t.Errorf("SchemaRegistryURL: got %q, want https://registry.example:8081", got.SchemaRegistryURL)
	}
	if got.AutoRegisterSchemas {
		t.Errorf("AutoRegisterSchemas: got true, want false")
	}
	if got.SessionTimeout != 90*time.Second {
		t.Errorf("SessionTimeout: got %v, want 1m30s", got.SessionTimeout)
	}
	if !got.TLS || got.SASLMechanism != "SCRAM-SHA-512" || got.SASLUser != "saga" {
		t.Errorf("TLS/SASL: got %v %q %q, want true SCRAM-SHA-512 saga", got.TLS, got.SASLMechanism, got.SASLUser)
	}
}

func TestLoadTrimsListItems(t *testing.T) {
	clearKafkaEnv(t)
	t.Setenv("KAFKA_BROKERS", " k1:9092 , k2:9093,,")
	var got config.Kafka
	if err := config.Load(&got); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := []string{"k1:9092", "k2:9093"}; !slices.Equal(got.Brokers, want) {
		t.Errorf("Brokers: got %q, want %q", got.Brokers, want)
	}
}

func TestLoadIgnoresTheNamedVariables(t *testing.T) {
	clearKafkaEnv(t)
	t.Setenv("KAFKA_BROKERS", "elsewhere:9092")
	t.Setenv("SCHEMA_REGISTRY_URL", "http://elsewhere:8081")

	var got config.Kafka
	if err := config.Load(&got, "KAFKA_BROKERS"); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := []string{"127.0.0.1:9092"}; !slices.Equal(got.Brokers, want) {
		t.Errorf("Brokers with KAFKA_BROKERS ignored: got %q, want the default %q", got.Brokers, want)
	}
	if got.SchemaRegistryURL != "http://elsewhere:8081" {
		t.Errorf("SchemaRegistryURL (not ignored): got %q, want http://elsewhere:8081", got.SchemaRegistryURL)
	}
}

func TestLoadReportsUnparsableValues(t *testing.T) {
	for name, value := range map[string]string{"AUTO_REGISTER_SCHEMAS": "maybe", "KAFKA_SESSION_TIMEOUT": "10"} {
		t.Run(name, func(t *testing.T) {
			clearKafkaEnv(t)
			t.Setenv(name, value)
			var got config.Kafka
			err := config.Load(&got)
			if err == nil || !strings.Contains(err.Error(), `"`+value+`"`) || !strings.Contains(err.Error(), name+":") {
				t.Errorf("Load with %s=%s: got %v, want an error naming the variable and quoting the value", name, value, err)
			}
		})
	}
}

func TestLoadFillsAServicesOwnStruct(t *testing.T) {
	type service struct {
		HTTPAddr string `env:"HTTP_ADDR" envDefault:"127.0.0.1:8080"`
		Limit    int64  `env:"PAYMENT_LIMIT" envDefault:"1000000"`
		Kafka    config.Kafka
	}
	clearKafkaEnv(t)
	t.Setenv("HTTP_ADDR", "")
	t.Setenv("PAYMENT_LIMIT", "250")
	t.Setenv("KAFKA_BROKERS", "k1:9092")

	var got service
	if err := config.Load(&got); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.HTTPAddr != "127.0.0.1:8080" || got.Limit != 250 || !slices.Equal(got.Kafka.Brokers, []string{"k1:9092"}) {
		t.Errorf("got %+v, want HTTPAddr 127.0.0.1:8080, Limit 250, Brokers [k1:9092]", got)
	}
}

func TestLoggerLevelFromLOG_LEVEL(t *testing.T) {
	for _, tc := range []struct {
		level       string
		debug, info bool
	}{
		{level: "", debug: false, info: true},
		{level: "debug", debug: true, info: true},
		{level: "warn", debug: false, info: false},
	} {
		t.Run("LOG_LEVEL="+tc.level, func(t *testing.T) {
			t.Setenv("LOG_LEVEL", tc.level)
			t.Setenv("LOG_FORMAT", "json")
			logger, err := config.Logger("test")
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if got := logger.Enabled(ctx, slog.LevelDebug); got != tc.debug {
				t.Errorf("debug enabled: got %v, want %v", got, tc.debug)
			}
			if got := logger.Enabled(ctx, slog.LevelInfo); got != tc.info {
				t.Errorf("info enabled: got %v, want %v", got, tc.info)
			}
		})
	}
}

// A log level or format it does not know fails the start, naming the
// variable, rather than logging at info or as text unasked.
func TestLoggerRefusesAnUnknownLevelOrFormat(t *testing.T) {
	for _, tc := range []struct{ level, format, want string }{
		{level: "nonsense", want: "LOG_LEVEL"},
		{format: "yaml", want: "LOG_FORMAT"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Setenv("LOG_LEVEL", tc.level)
			t.Setenv("LOG_FORMAT", tc.format)
			if _, err := config.Logger("test"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// A number or duration below the least its variable may be is refused
// under the variable's name, in a service's own struct too: not taken for
// the default (0), nor left to panic (a negative session timeout made a
// ticker of a negative period) or to fail later under a Go field's name.
func TestLoadRefusesValuesBelowTheirMinimum(t *testing.T) {
	type service struct {
		Kafka    config.Kafka
		Attempts int           `env:"STEP_MAX_ATTEMPTS" envDefault:"5" min:"1"`
		Timeout  time.Duration `env:"STEP_TIMEOUT" envDefault:"10s" min:"1ms"`
	}
	for _, c := range []struct{ name, value string }{
		{"KAFKA_SESSION_TIMEOUT", "-10s"},
		{"KAFKA_SESSION_TIMEOUT", "0s"},
		{"KAFKA_SESSION_TIMEOUT", "500ms"},
		{"KAFKA_FETCH_MAX_WAIT", "0s"},
		{"KAFKA_FETCH_MIN_BYTES", "0"},
		{"STEP_MAX_ATTEMPTS", "0"},
		{"STEP_TIMEOUT", "-1s"},
	} {
		t.Run(c.name+"="+c.value, func(t *testing.T) {
			clearKafkaEnv(t)
			t.Setenv("STEP_MAX_ATTEMPTS", "")
			t.Setenv("STEP_TIMEOUT", "")
			t.Setenv(c.name, c.value)
			var got service
			err := config.Load(&got)
			if err == nil || !strings.Contains(err.Error(), c.name+":") || !strings.Contains(err.Error(), "the least it may be") {
				t.Errorf("got %v, want an error naming %s and its least value", err, c.name)
			}
		})
	}
	t.Run("a part not read from the environment", func(t *testing.T) {
		clearKafkaEnv(t)
		var got struct {
			Steps int     `env:"STEPS" envDefault:"1" min:"1"`
			Parts service `env:"-"` // zero, filled by its owner
		}
		if err := config.Load(&got); err != nil {
			t.Errorf("Load: %v", err)
		}
	})
	t.Run("at their minimum", func(t *testing.T) {
		clearKafkaEnv(t)
		t.Setenv("KAFKA_SESSION_TIMEOUT", "1s")
		t.Setenv("KAFKA_FETCH_MIN_BYTES", "1")
		t.Setenv("STEP_MAX_ATTEMPTS", "1")
		t.Setenv("STEP_TIMEOUT", "1ms")
		var got service
		if err := config.Load(&got); err != nil {
			t.Errorf("Load: %v", err)
		}
	})
}

// A duration past what its client can send is refused under its
// variable's name: franz-go sends a fetch's wait in int32 milliseconds, and
// 597 h wrapped to a wait of about 500 ms, silently.
func TestLoadRefusesValuesAboveTheirMaximum(t *testing.T) {
	for value, refused := range map[string]bool{"597h": true, "596h": false} {
		t.Run(value, func(t *testing.T) {
			clearKafkaEnv(t)
			t.Setenv("KAFKA_FETCH_MAX_WAIT", value)
			var got config.Kafka
			err := config.Load(&got)
			if refused && (err == nil || !strings.Contains(err.Error(), "KAFKA_FETCH_MAX_WAIT:") || !strings.Contains(err.Error(), "the most it may be")) {
				t.Errorf("got %v, want an error naming KAFKA_FETCH_MAX_WAIT and its most", err)
			}
			if !refused && err != nil {
				t.Errorf("Load: %v", err)
			}
		})
	}
}

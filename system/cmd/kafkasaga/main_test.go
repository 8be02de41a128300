package main

import (
	"os"
	"strings"
	"testing"
)

func TestConsoleURL(t *testing.T) {
	for addr, want := range map[string]string{
		":8084":          "http://localhost:8084/ui/",
		"0.0.0.0:8084":   "http://localhost:8084/ui/",
		"[::]:8084":      "http://localhost:8084/ui/",
		"127.0.0.1:9000": "http://127.0.0.1:9000/ui/",
		"[::1]:9000":     "http://[::1]:9000/ui/",
	} {
		if got := consoleURL(addr); got != want {
			t.Errorf("consoleURL(%q): got %s, want %s", addr, got, want)
		}
	}
}

// Without KAFKA_BROKERS, `make run` starts its own plaintext broker and
// registry: a registry, TLS or SASL of one's own set alone would be
// replaced (or fail to reach them) without a word, so the start refuses.
func TestSettingsOfOnesOwnKafkaWithoutItsBrokersFailTheStart(t *testing.T) {
	for _, name := range []string{"KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "KAFKA_TLS", "KAFKA_SASL_MECHANISM"} {
		t.Setenv(name, "")
		os.Unsetenv(name) // put back when the test ends
	}
	for name, value := range map[string]string{
		"SCHEMA_REGISTRY_URL":  "http://registry.example:8081",
		"KAFKA_TLS":            "true",
		"KAFKA_SASL_MECHANISM": "PLAIN",
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, value)
			err := run(t.Context())
			if err == nil || !strings.Contains(err.Error(), name+" set without KAFKA_BROKERS") {
				t.Errorf("run with %s=%s and no KAFKA_BROKERS: got %v, want an error naming %s", name, value, err, name)
			}
		})
	}
}

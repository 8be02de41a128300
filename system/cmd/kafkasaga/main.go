// Command kafkasaga runs the whole system in one process: the embedded Kafka
// broker and schema registry (unless KAFKA_BROKERS is set), the order,
// customer and payment services and the orchestrator. It is what `make run`
// starts. Each service listens on its usual port (8080, 8082, 8083, 8084),
// and it logs the address of the console (http://localhost:8084/ui/).
// DEVSTACK_KAFKA_ADDR and DEVSTACK_REGISTRY_ADDR move the embedded broker and
// registry; DEVSTACK_DATA_DIR keeps the broker's data across restarts.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/system"
)

func main() {
	// A closed terminal (SIGHUP) stops it as cleanly as Ctrl-C: the broker
	// saves its data, where Go's default for SIGHUP is to exit at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kafkasaga:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg system.Config
	// One process serves every process's HTTP API, so each keeps its default port.
	parts := []any{&cfg.Kafka}
	for _, p := range system.Processes {
		parts = append(parts, p.Config(&cfg))
	}
	for _, part := range parts {
		if err := config.Load(part, "HTTP_ADDR"); err != nil {
			return err
		}
	}
	_, external := os.LookupEnv("KAFKA_BROKERS")
	cfg.Embedded = !external
	if cfg.Embedded {
		if err := embeddedIgnores(cfg.Kafka); err != nil {
			return err
		}
	}
	cfg.Devstack.KafkaAddr = os.Getenv("DEVSTACK_KAFKA_ADDR")       // default 127.0.0.1:9092
	cfg.Devstack.RegistryAddr = os.Getenv("DEVSTACK_REGISTRY_ADDR") // default 127.0.0.1:8081
	cfg.Devstack.DataDir = os.Getenv("DEVSTACK_DATA_DIR")
	logger, err := config.Logger("")
	if err != nil {
		return err
	}
	cfg.Devstack.Logger = logger.With("service", "devstack")
	logger.Info("console: open it in a browser once the orchestrator is ready", "url", consoleURL(cfg.Orchestrator.HTTPAddr))
	return system.Run(ctx, cfg, logger)
}

// embeddedIgnores refuses the settings of a Kafka and a registry of one's
// own without KAFKA_BROKERS: the process then runs its embedded broker and
// registry, plaintext, which it would use in their place (or, with TLS or
// SASL, fail to reach).
func embeddedIgnores(k config.Kafka) error {
	var set []string
	if _, ok := os.LookupEnv("SCHEMA_REGISTRY_URL"); ok {
		set = append(set, "SCHEMA_REGISTRY_URL")
	}
	if k.TLS {
		set = append(set, "KAFKA_TLS")
	}
	if k.SASLMechanism != "" {
		set = append(set, "KAFKA_SASL_MECHANISM")
	}
	if len(set) == 0 {
		return nil
	}
	return fmt.Errorf("%s set without KAFKA_BROKERS: with no KAFKA_BROKERS this runs its own broker and registry, plaintext; set KAFKA_BROKERS to run on yours, or unset %s",
		strings.Join(set, ", "), strings.Join(set, ", "))
}

// consoleURL is where a browser on this machine finds the console served
// on the orchestrator's HTTP address.
func consoleURL(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "http://" + httpAddr + "/ui/"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/ui/"
}

// Command devstack runs the embedded Kafka broker and schema registry alone,
// so the services can run as separate processes against them, as they would
// against a real Kafka and Confluent Schema Registry.
//
//	DEVSTACK_KAFKA_ADDR     default 127.0.0.1:9092
//	DEVSTACK_REGISTRY_ADDR  default 127.0.0.1:8081
//	DEVSTACK_DATA_DIR       keep the broker's data there (default: in memory)
//	DEVSTACK_KAFKA_BROKERS  run only the registry, on this Kafka (comma-separated)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kafkasaga/kafkasaga/devstack"
)

func main() {
	// A closed terminal (SIGHUP) stops it as cleanly as Ctrl-C: the broker
	// saves its data, where Go's default for SIGHUP is to exit at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var brokers []string // as KAFKA_BROKERS: spaces around a broker and empty items dropped
	for b := range strings.SplitSeq(os.Getenv("DEVSTACK_KAFKA_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	stack, err := devstack.Start(ctx, devstack.Config{
		KafkaAddr:    os.Getenv("DEVSTACK_KAFKA_ADDR"),
		RegistryAddr: os.Getenv("DEVSTACK_REGISTRY_ADDR"),
		DataDir:      os.Getenv("DEVSTACK_DATA_DIR"),
		Brokers:      brokers,
		Logger:       logger,
	})
	if err != nil {
		return err
	}
	defer stack.Close()
	logger.Info("devstack up", "kafka", stack.Brokers(), "schema_registry", stack.RegistryURL())
	<-ctx.Done()
	return nil
}

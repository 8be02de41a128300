// Command provision prepares a Kafka cluster and schema registry for the
// system: it creates every topic of contracts.Topics that is missing, with its
// partitions and cleanup policy, sets the retention of the ended sagas'
// topics to SAGA_RETENTION, and registers every record schema under its
// subject. Run it once before the services when they must not create topics
// or register schemas themselves (AUTO_REGISTER_SCHEMAS=false), as in
// production; docker compose runs it before the services, which register
// schemas themselves there unless AUTO_REGISTER_SCHEMAS=false is set.
// `make schemas` runs it.
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// Config is what provision reads from the environment.
type Config struct {
	// Kafka is every process's: SAGA_RETENTION is applied here too, so
	// that the processes find it set and need no right to alter topic
	// configs.
	Kafka config.Kafka
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "provision:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg Config
	if err := config.Load(&cfg); err != nil {
		return err
	}
	logger, err := config.Logger("provision")
	if err != nil {
		return err
	}
	topics := contracts.Topics()
	if err := messaging.EnsureTopics(cfg.Kafka, topics); err != nil {
		return err
	}
	if err := messaging.SetRetention(cfg.Kafka, cfg.Kafka.SagaRetention, contracts.ArchiveTopics()...); err != nil {
		return err
	}
	registry := srclient.NewSchemaRegistryClient(cfg.Kafka.SchemaRegistryURL, srclient.WithClient(&http.Client{Timeout: 10 * time.Second}))
	if cfg.Kafka.RegistryUser != "" {
		registry.SetCredentials(cfg.Kafka.RegistryUser, cfg.Kafka.RegistryPassword)
	}
	s, err := serde.New(registry, serde.Config{AutoRegister: true})
	if err != nil {
		return err
	}
	subjects := 0
	for _, t := range topics {
		// The half of schemas-check's rule a registry can hold changes to
		// (each version reads every earlier one's records), so that it
		// refuses one that breaks it; the other half, that the build
		// running reads the new one's, is the check's (docs/operations.md,
		// "Schema changes").
		for _, r := range t.Records {
			named, ok := r.Schema().(avro.NamedSchema)
			if !ok {
				return fmt.Errorf("topic %s: a record of type %T has no name", t.Name, r)
			}
			subject := serde.Subject(t.Name, named.FullName())
			if _, err := registry.ChangeSubjectCompatibilityLevel(subject, srclient.BackwardTransitive); err != nil {
				return fmt.Errorf("set the compatibility of subject %s to %s: %w", subject, srclient.BackwardTransitive, err)
			}
		}
		if err := s.Register(t.Name, t.Records...); err != nil {
			return fmt.Errorf("register the schemas of %s: %w", t.Name, err)
		}
		subjects += len(t.Records)
	}
	logger.Info("provisioned", "topics", len(topics), "subjects", subjects, "saga_retention", cfg.Kafka.SagaRetention,
		"kafka", cfg.Kafka.Brokers, "schema_registry", cfg.Kafka.SchemaRegistryURL)
	return nil
}

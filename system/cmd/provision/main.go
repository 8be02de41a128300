// Command provision prepares a Kafka cluster and schema registry for the
// system: it creates every topic of contracts.Topics that is missing, with its
// partitions and cleanup policy, and registers every record schema under its
// subject. Run it once before the services when they must not create topics
// or register schemas themselves (AUTO_REGISTER_SCHEMAS=false), as in
// production and in docker compose. `make schemas` runs it.
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/riferrei/srclient"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "provision:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config.Kafka
	if err := config.Load(&cfg); err != nil {
		return err
	}
	logger := config.Logger("provision")
	topics := contracts.Topics()
	if err := messaging.EnsureTopics(cfg, topics); err != nil {
		return err
	}
	registry := srclient.NewSchemaRegistryClient(cfg.SchemaRegistryURL, srclient.WithClient(&http.Client{Timeout: 10 * time.Second}))
	if cfg.RegistryUser != "" {
		registry.SetCredentials(cfg.RegistryUser, cfg.RegistryPassword)
	}
	s, err := serde.New(registry, serde.Config{AutoRegister: true})
	if err != nil {
		return err
	}
	subjects := 0
	for _, t := range topics {
		if err := s.Register(t.Name, t.Records...); err != nil {
			return fmt.Errorf("register the schemas of %s: %w", t.Name, err)
		}
		subjects += len(t.Records)
	}
	logger.Info("provisioned", "topics", len(topics), "subjects", subjects, "kafka", cfg.Brokers, "schema_registry", cfg.SchemaRegistryURL)
	return nil
}

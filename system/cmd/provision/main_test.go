package main

import (
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
)

// Provision sets the archive topics' retention to SAGA_RETENTION, so that
// the processes, started with the same, find nothing to alter.
func TestProvisionSetsTheSagaRetention(t *testing.T) {
	stack := devstack.StartForTest(t)
	if stack.Cluster() == nil {
		t.Skip("alters the retention of the system's topics: needs the embedded broker")
	}
	t.Setenv("KAFKA_BROKERS", strings.Join(stack.Brokers(), ","))
	t.Setenv("SCHEMA_REGISTRY_URL", stack.RegistryURL())
	t.Setenv("SAGA_RETENTION", "1h")
	if err := run(); err != nil {
		t.Fatalf("provision: %v", err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	archives := contracts.ArchiveTopics()
	configs, err := kadm.NewClient(cl).DescribeTopicConfigs(t.Context(), archives...)
	if err != nil {
		t.Fatalf("describe the configs of %v: %v", archives, err)
	}
	for _, topic := range archives {
		rc, err := configs.On(topic, nil)
		if err != nil {
			t.Fatalf("configs of %s: %v", topic, err)
		}
		got := ""
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" {
				got = c.MaybeValue()
			}
		}
		if got != "3600000" {
			t.Errorf("%s retention.ms: got %s, want SAGA_RETENTION's 3600000", topic, got)
		}
	}

	// Every subject at the backward half of schemas-check's rule.
	registry := srclient.NewSchemaRegistryClient(stack.RegistryURL())
	for _, topic := range contracts.Topics() {
		for _, r := range topic.Records {
			subject := serde.Subject(topic.Name, r.Schema().(avro.NamedSchema).FullName())
			if level, err := registry.GetCompatibilityLevel(subject, false); err != nil || *level != srclient.BackwardTransitive {
				t.Errorf("subject %s: compatibility %v (%v), want BACKWARD_TRANSITIVE", subject, level, err)
			}
		}
	}
}

package messaging_test

import (
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	metrics "github.com/rcrowley/go-metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/saga"
)

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSaramaConfig(t *testing.T) {
	tlsServer := httptest.NewTLSServer(nil)
	tlsServer.Close()
	caFile := writeFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsServer.Certificate().Raw}))
	notPEM := writeFile(t, "not.pem", []byte("hello"))

	for _, tc := range []struct {
		name    string
		cfg     config.Kafka
		wantErr string // "" for success
		check   func(t *testing.T, c *sarama.Config)
	}{
		{name: "plaintext", check: func(t *testing.T, c *sarama.Config) {
			if c.Net.TLS.Enable || c.Net.SASL.Enable {
				t.Errorf("TLS %v SASL %v, want neither", c.Net.TLS.Enable, c.Net.SASL.Enable)
			}
			if c.Consumer.Offsets.Initial != sarama.OffsetOldest {
				t.Errorf("consumer starts at %d, want the oldest offset", c.Consumer.Offsets.Initial)
			}
			if c.ClientID != "client-1" {
				t.Errorf("ClientID: got %q, want client-1", c.ClientID)
			}
			if c.Consumer.Fetch.Min != 1 || c.Consumer.MaxWaitTime != 500*time.Millisecond {
				t.Errorf("fetch when unset: min %d max wait %v, want 1 byte and 500ms (answer at once)", c.Consumer.Fetch.Min, c.Consumer.MaxWaitTime)
			}
		}},
		{name: "fetch batching", cfg: config.Kafka{FetchMinBytes: 4096, FetchMaxWait: 5 * time.Millisecond}, check: func(t *testing.T, c *sarama.Config) {
			if c.Consumer.Fetch.Min != 4096 || c.Consumer.MaxWaitTime != 5*time.Millisecond {
				t.Errorf("fetch min %d max wait %v, want 4096 and 5ms", c.Consumer.Fetch.Min, c.Consumer.MaxWaitTime)
			}
		}},
		{name: "TLS with a CA file", cfg: config.Kafka{TLS: true, TLSCAFile: caFile}, check: func(t *testing.T, c *sarama.Config) {
			if !c.Net.TLS.Enable || c.Net.TLS.Config == nil || c.Net.TLS.Config.RootCAs == nil {
				t.Errorf("TLS enabled %v with root CAs, want both", c.Net.TLS.Enable)
			}
		}},
		{name: "TLS with the system CAs", cfg: config.Kafka{TLS: true}, check: func(t *testing.T, c *sarama.Config) {
			if !c.Net.TLS.Enable || c.Net.TLS.Config.RootCAs != nil {
				t.Errorf("TLS enabled %v, root CAs %v: want TLS with the system pool", c.Net.TLS.Enable, c.Net.TLS.Config.RootCAs)
			}
		}},
		{name: "TLS CA file missing", cfg: config.Kafka{TLS: true, TLSCAFile: filepath.Join(t.TempDir(), "none.pem")}, wantErr: "KAFKA_TLS_CA_FILE"},
		{name: "TLS CA file without PEM", cfg: config.Kafka{TLS: true, TLSCAFile: notPEM}, wantErr: "holds no PEM certificate"},
		{name: "SASL PLAIN", cfg: config.Kafka{SASLMechanism: "PLAIN", SASLUser: "u", SASLPassword: "p"}, check: func(t *testing.T, c *sarama.Config) {
			if !c.Net.SASL.Enable || c.Net.SASL.Mechanism != sarama.SASLTypePlaintext || c.Net.SASL.User != "u" {
				t.Errorf("SASL %v %q user %q, want PLAIN as u", c.Net.SASL.Enable, c.Net.SASL.Mechanism, c.Net.SASL.User)
			}
		}},
		{name: "SASL SCRAM-SHA-256", cfg: config.Kafka{SASLMechanism: "SCRAM-SHA-256", SASLUser: "u", SASLPassword: "p"}, check: checkSCRAM("SCRAM-SHA-256")},
		{name: "SASL SCRAM-SHA-512", cfg: config.Kafka{SASLMechanism: "SCRAM-SHA-512", SASLUser: "u", SASLPassword: "p"}, check: checkSCRAM("SCRAM-SHA-512")},
		{name: "SASL unknown mechanism", cfg: config.Kafka{SASLMechanism: "GSSAPI", SASLUser: "u"}, wantErr: `KAFKA_SASL_MECHANISM "GSSAPI"`},
		// Settings their switch would leave unused, for the franz-go
		// clients too.
		{name: "a CA file without TLS", cfg: config.Kafka{TLSCAFile: caFile}, wantErr: "KAFKA_TLS_CA_FILE is set but KAFKA_TLS is not true"},
		{name: "credentials without a mechanism", cfg: config.Kafka{SASLUser: "u", SASLPassword: "p"}, wantErr: "without KAFKA_SASL_MECHANISM"},
		{name: "a mechanism without a user", cfg: config.Kafka{SASLMechanism: "PLAIN"}, wantErr: "KAFKA_SASL_USER is empty"},
		{name: "a registry user without a password", cfg: config.Kafka{RegistryUser: "u"}, wantErr: "set both, or neither"},
		{name: "a registry password without a user", cfg: config.Kafka{RegistryPassword: "p"}, wantErr: "set both, or neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := messaging.SaramaConfig(tc.cfg, "client-1")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				if _, err := messaging.KgoOptions(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("KgoOptions: got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("SaramaConfig: %v", err)
			}
			tc.check(t, c)
		})
	}
}

// checkSCRAM starts a SCRAM conversation with the configured client, which
// must open with the RFC 5802 client-first message.
func checkSCRAM(mechanism string) func(t *testing.T, c *sarama.Config) {
	return func(t *testing.T, c *sarama.Config) {
		if string(c.Net.SASL.Mechanism) != mechanism || c.Net.SASL.SCRAMClientGeneratorFunc == nil {
			t.Fatalf("mechanism %q with generator %v, want %s with a generator", c.Net.SASL.Mechanism, c.Net.SASL.SCRAMClientGeneratorFunc != nil, mechanism)
		}
		client := c.Net.SASL.SCRAMClientGeneratorFunc()
		if err := client.Begin("u", "p", ""); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		first, err := client.Step("")
		if err != nil || !strings.HasPrefix(first, "n,,n=u,r=") {
			t.Errorf("client-first message: got %q %v, want n,,n=u,r=<nonce>", first, err)
		}
		if client.Done() {
			t.Errorf("Done after the first message: got true, want false")
		}
	}
}

func TestEnsureTopics(t *testing.T) {
	t.Parallel()
	cfg := startKafka(t)
	specs := []contracts.TopicSpec{
		{Name: "events", Partitions: 3},
		{Name: "state", Partitions: 5, Compacted: true},
		{Name: "ended", Partitions: 3, Archive: true, Configs: map[string]string{"retention.ms": "3600000"}},
	}
	for range 2 { // the second call finds them all
		if err := messaging.EnsureTopics(cfg, specs); err != nil {
			t.Fatalf("EnsureTopics: %v", err)
		}
	}

	adm := kadm.NewClient(kgoClient(t, cfg))
	details, err := adm.ListTopics(t.Context(), "events", "state", "ended")
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	for name, want := range map[string]int{"events": 3, "state": 5, "ended": 3} {
		if got := len(details[name].Partitions); got != want {
			t.Errorf("%s partitions: got %d, want %d", name, got, want)
		}
	}
	for name, want := range map[string]string{"events": "delete", "state": "compact", "ended": "delete"} {
		// Set on the topic itself, not a broker's default, which may be
		// another policy.
		if got, source := topicConfig(t, adm, name, "cleanup.policy"); got != want || source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Errorf("%s cleanup.policy: got %q from %v, want %q set on the topic", name, got, source, want)
		}
	}
	if got, _ := topicConfig(t, adm, "ended", "retention.ms"); got != "3600000" {
		t.Errorf("ended retention.ms: got %s, want the spec's 3600000", got)
	}
}

// topicConfig returns the value of a topic's setting and where it comes from.
func topicConfig(t *testing.T, adm *kadm.Client, topic, key string) (string, kmsg.ConfigSource) {
	t.Helper()
	configs, err := adm.DescribeTopicConfigs(t.Context(), topic)
	if err != nil {
		t.Fatalf("describe the configs of %s: %v", topic, err)
	}
	rc, err := configs.On(topic, nil)
	if err != nil {
		t.Fatalf("configs of %s: %v", topic, err)
	}
	for _, c := range rc.Configs {
		if c.Key == key {
			return c.MaybeValue(), c.Source
		}
	}
	t.Fatalf("%s has no %s", topic, key)
	return "", 0
}

// Topics an operator created beforehand with a policy that drops what the
// system must keep (state deleted after retention.ms), or keeps what it
// must drop (an archive never pruned), fail the start, each named.
func TestEnsureTopicsRefusesAWrongCleanupPolicy(t *testing.T) {
	t.Parallel()
	cfg := startKafka(t)
	adm := kadm.NewClient(kgoClient(t, cfg))
	for name, policy := range map[string]string{
		"state.deleting": "delete", "state.both": "compact,delete", "state.good": "compact",
		"ended.compacted": "compact", "ended.good": "delete",
		"log.compacted": "compact", "log.both": "compact,delete",
	} {
		if _, err := adm.CreateTopic(t.Context(), 2, -1, map[string]*string{"cleanup.policy": &policy}, name); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	err := messaging.EnsureTopics(cfg, []contracts.TopicSpec{
		{Name: "state.deleting", Partitions: 2, Compacted: true},
		{Name: "state.both", Partitions: 2, Compacted: true},
		{Name: "state.good", Partitions: 2, Compacted: true},
		{Name: "ended.compacted", Partitions: 2, Archive: true},
		{Name: "ended.good", Partitions: 2, Archive: true},
		{Name: "log.compacted", Partitions: 2},
		{Name: "log.both", Partitions: 2},
	})
	if err == nil {
		t.Fatal("EnsureTopics over topics with the wrong cleanup.policy: got nil error, want one naming them")
	}
	for _, want := range []string{
		"state.deleting has cleanup.policy=delete, needs compact",
		"state.both has cleanup.policy=compact,delete, needs compact",
		"ended.compacted has cleanup.policy=compact, needs delete",
		"log.compacted has cleanup.policy=compact, needs delete",
		// A command not yet read would go, behind a later one of its key.
		"log.both has cleanup.policy=compact,delete, needs delete",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q: want it to say %q", err, want)
		}
	}
	for _, good := range []string{"state.good", "ended.good"} {
		if strings.Contains(err.Error(), good) {
			t.Errorf("error %q names %s, whose policy will do", err, good)
		}
	}
}

// A release that adds a topic to a deployment whose topics have another
// count than contracts.Partitions creates it with theirs: a process refuses
// topics of different counts.
func TestEnsureTopicsCreatesAMissingTopicWithTheCountOfTheOthers(t *testing.T) {
	t.Parallel()
	cfg := startKafka(t)
	specs := contracts.Topics()
	missing := contracts.TopicCancelOrderSagasEnded
	var before []contracts.TopicSpec
	for _, s := range specs {
		if s.Name != missing {
			s.Partitions = 16
			before = append(before, s)
		}
	}
	if err := messaging.EnsureTopics(cfg, before); err != nil {
		t.Fatalf("EnsureTopics of all but %s with 16 partitions: %v", missing, err)
	}
	if err := messaging.EnsureTopics(cfg, specs); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	details, err := kadm.NewClient(kgoClient(t, cfg)).ListTopics(t.Context(), missing)
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	if got := len(details[missing].Partitions); got != 16 {
		t.Errorf("%s partitions: got %d, want the 16 of the other topics", missing, got)
	}
}

// Kafka deletes a segment once its newest record is past retention: the
// segments must roll well within it, or a short retention keeps ended
// sagas a day longer.
func TestSetRetentionRollsSegmentsWithinIt(t *testing.T) {
	t.Parallel()
	topic := contracts.TopicCreateOrderSagasEnded
	cfg := startKafka(t, contracts.TopicSpec{Name: topic, Partitions: 1, Archive: true, Configs: map[string]string{"segment.ms": "86400000"}})
	if err := messaging.SetRetention(cfg, time.Hour, topic); err != nil {
		t.Fatalf("SetRetention: %v", err)
	}
	adm := kadm.NewClient(kgoClient(t, cfg))
	if got, _ := topicConfig(t, adm, topic, "retention.ms"); got != "3600000" {
		t.Errorf("retention.ms: got %s, want 3600000", got)
	}
	got, _ := topicConfig(t, adm, topic, "segment.ms")
	if ms, err := strconv.ParseInt(got, 10, 64); err != nil || ms > 3600000 || ms < 60000 {
		t.Errorf("segment.ms: got %s, want a minute to an hour", got)
	}
}

// SetRetention of what the topic has already alters nothing: the
// orchestrator's principal then needs no AlterConfigs, when provision set
// the same SAGA_RETENTION.
func TestSetRetentionAltersNothingThatMatches(t *testing.T) {
	t.Parallel()
	topic := contracts.TopicCreateOrderSagasEnded
	stack, cfg := startEmbedded(t, contracts.TopicSpec{Name: topic, Partitions: 1, Archive: true})
	if err := messaging.SetRetention(cfg, time.Hour, topic); err != nil {
		t.Fatalf("SetRetention: %v", err)
	}
	stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.IncrementalAlterConfigs, kmsg.AlterConfigs}, Err: kerr.TopicAuthorizationFailed, Count: -1})
	if err := messaging.SetRetention(cfg, time.Hour, topic); err != nil {
		t.Errorf("SetRetention of the retention the topic has, without AlterConfigs: %v", err)
	}
}

// A topic whose configs cannot be described (no DescribeConfigs, say) fails
// SetRetention with that reason, not with whatever altering them says.
func TestSetRetentionFailsWhenItCannotDescribe(t *testing.T) {
	t.Parallel()
	topic := contracts.TopicCreateOrderSagasEnded
	stack, cfg := startEmbedded(t, contracts.TopicSpec{Name: topic, Partitions: 1, Archive: true})
	stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.DescribeConfigs}, Resource: topic, Err: kerr.TopicAuthorizationFailed, Count: -1})
	err := messaging.SetRetention(cfg, time.Hour, topic)
	if err == nil || !strings.Contains(err.Error(), "describe the configs of topic "+topic) || !strings.Contains(err.Error(), "DescribeConfigs") {
		t.Errorf("SetRetention without DescribeConfigs: got %v, want an error saying it could not describe %s", err, topic)
	}
}

func TestEnsureTopicsFailsWithoutKafka(t *testing.T) {
	t.Parallel()
	cfg := startKafka(t)
	cfg.Brokers = []string{"127.0.0.1:1"} // nothing listens on port 1
	if err := messaging.EnsureTopics(cfg, contracts.Topics()); err == nil {
		t.Errorf("EnsureTopics against no broker: got nil error, want one")
	}
}

func TestPublisherMovesThePartitionKeyToTheRecordKey(t *testing.T) {
	t.Parallel()
	cfg := startKafka(t, contracts.TopicSpec{Name: contracts.TopicOrderEvents, Partitions: contracts.Partitions})
	pub, err := messaging.NewPublisher(cfg, "order")
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer pub.Close()

	var sent []*message.Message
	for i := range 16 {
		msg := message.NewMessage(fmt.Sprintf("uuid-%d", i), fmt.Appendf(nil, "payload-%d", i))
		msg.Metadata.Set(contracts.HeaderPartitionKey, fmt.Sprintf("order-%d", i))
		msg.Metadata.Set(saga.HeaderSagaID, fmt.Sprintf("saga-%d", i))
		sent = append(sent, msg)
	}
	if err := pub.Publish(contracts.TopicOrderEvents, sent...); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	unkeyed := message.NewMessage("no-key", []byte("x"))
	err = pub.Publish(contracts.TopicOrderEvents, unkeyed)
	if err == nil || !strings.Contains(err.Error(), "has no "+contracts.HeaderPartitionKey) {
		t.Errorf("Publish without %s: got %v, want an error naming it", contracts.HeaderPartitionKey, err)
	}

	records := readUntil(t, cfg, contracts.TopicOrderEvents, func(r []*kgo.Record) bool { return len(r) >= len(sent) })
	if len(records) != len(sent) {
		t.Fatalf("records on %s: got %d, want %d:%s", contracts.TopicOrderEvents, len(records), len(sent), describe(records))
	}
	java := kgo.StickyKeyPartitioner(nil).ForTopic(contracts.TopicOrderEvents)
	for _, r := range records {
		i := strings.TrimPrefix(string(r.Value), "payload-")
		if got, want := string(r.Key), "order-"+i; got != want {
			t.Errorf("record %s key: got %q, want %q", r.Value, got, want)
		}
		for key, want := range map[string]string{
			contracts.HeaderPartitionKey: "order-" + i,
			saga.HeaderSagaID:            "saga-" + i,
			"_watermill_message_uuid":    "uuid-" + i,
		} {
			if got := header(r, key); got != want {
				t.Errorf("record %s header %s: got %q, want %q", r.Value, key, got, want)
			}
		}
		if want := java.Partition(r, contracts.Partitions); int(r.Partition) != want {
			t.Errorf("record %s partition: got %d, want %d, where a Java client puts key %s", r.Value, r.Partition, want, r.Key)
		}
	}
}

// Sarama's own metrics cost CPU on every request and nothing reads them:
// the registry it is given hands out metrics that record nothing.
func TestSaramaKeepsNoMetrics(t *testing.T) {
	cfg, err := messaging.SaramaConfig(config.Kafka{Brokers: []string{"127.0.0.1:9092"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.MetricRegistry
	h := metrics.GetOrRegisterHistogram("request-latency-in-ms", r, metrics.NewUniformSample(10))
	h.Update(42)
	m := metrics.GetOrRegisterMeter("record-send-rate", r)
	m.Mark(7)
	c := metrics.GetOrRegisterCounter("requests-in-flight", r)
	c.Inc(3)
	if h.Count() != 0 || m.Count() != 0 || c.Count() != 0 {
		t.Errorf("got histogram %d, meter %d, counter %d samples, want none recorded", h.Count(), m.Count(), c.Count())
	}
}

// A message sent by a store write must reach Kafka as the publisher sends it.
func TestNewRecordIsWhatThePublisherSends(t *testing.T) {
	msg := message.NewMessage("uuid-1", []byte("payload"))
	msg.Metadata.Set(contracts.HeaderPartitionKey, "order-1")
	msg.Metadata.Set(saga.HeaderSagaID, "saga-1")
	r, err := messaging.NewRecord(contracts.TopicOrderEvents, msg)
	if err != nil {
		t.Fatalf("NewRecord: %v", err)
	}
	if r.Topic != contracts.TopicOrderEvents || string(r.Key) != "order-1" || string(r.Value) != "payload" {
		t.Errorf("got topic %q key %q value %q, want %q %q %q", r.Topic, r.Key, r.Value, contracts.TopicOrderEvents, "order-1", "payload")
	}
	for key, want := range map[string]string{
		contracts.HeaderPartitionKey: "order-1",
		saga.HeaderSagaID:            "saga-1",
		"_watermill_message_uuid":    "uuid-1",
	} {
		if got := header(r, key); got != want {
			t.Errorf("header %s: got %q, want %q", key, got, want)
		}
	}

	if _, err := messaging.NewRecord(contracts.TopicOrderEvents, message.NewMessage("no-key", nil)); err == nil {
		t.Errorf("NewRecord without %s: got nil error, want one", contracts.HeaderPartitionKey)
	}
	reserved := message.NewMessage("uuid-2", nil)
	reserved.Metadata.Set(contracts.HeaderPartitionKey, "order-2")
	reserved.Metadata.Set("_watermill_message_uuid", "another")
	if _, err := messaging.NewRecord(contracts.TopicOrderEvents, reserved); err == nil {
		t.Errorf("NewRecord with the uuid header in its metadata: got nil error, want one")
	}
}

// A publisher on a shared producer leaves the producer to its owner: after
// the publisher is closed, it refuses to publish, and the producer still
// writes.
func TestPublisherOnLeavesTheProducerOpen(t *testing.T) {
	t.Parallel()
	cfg := startKafka(t, contracts.TopicSpec{Name: contracts.TopicOrderEvents, Partitions: contracts.Partitions})
	producer, err := messaging.NewSyncSender(cfg, "shared")
	if err != nil {
		t.Fatalf("NewSyncSender: %v", err)
	}
	defer producer.Close()

	keyed := func(uuid string) *message.Message {
		msg := message.NewMessage(uuid, []byte("x"))
		msg.Metadata.Set(contracts.HeaderPartitionKey, "order-1")
		return msg
	}
	pub := messaging.PublisherOn(producer)
	if err := pub.Publish(contracts.TopicOrderEvents, keyed("before")); err != nil {
		t.Fatalf("Publish before Close: %v", err)
	}
	if err := pub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := pub.Publish(contracts.TopicOrderEvents, keyed("after")); err == nil {
		t.Errorf("Publish after Close: got nil error, want one")
	}
	if err := producer.Send(t.Context(), []*kgo.Record{{Topic: contracts.TopicOrderEvents, Key: []byte("k"), Value: []byte("x")}}); err != nil {
		t.Errorf("the shared producer after the publisher's Close: %v", err)
	}
}

// Package messaging connects a process to Kafka through Watermill: the
// transactional Session every process consumes and writes through, the
// client settings (franz-go's and Sarama's), publishers and subscribers,
// topic creation, the middleware of the handlers, and the replay of dead
// letters.
package messaging

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	metrics "github.com/rcrowley/go-metrics"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
)

// SaramaConfig returns the settings of the project's Sarama clients, which
// administer topics and groups and consume outside a process's transactions
// (NewSubscriber): consumers that start from the oldest offset and read
// what transactions committed, and TLS/SASL when configured. Writes go
// through franz-go (Session, SyncSender).
func SaramaConfig(cfg config.Kafka, clientID string) (*sarama.Config, error) {
	if err := checkSecurity(cfg); err != nil {
		return nil, err
	}
	c := sarama.NewConfig()
	c.ClientID = clientID
	// Kafka 4 dropped the protocol versions older clients speak by default.
	c.Version = sarama.V3_6_0_0

	c.Consumer.Return.Errors = true
	c.Consumer.Fetch.Min = max(cfg.FetchMinBytes, 1)
	c.Consumer.MaxWaitTime = cmp.Or(cfg.FetchMaxWait, 500*time.Millisecond)
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	// Only what transactions committed: every process writes in them.
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.MetricRegistry = noMetrics{metrics.NewRegistry()}

	if cfg.TLS {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = tc
	}
	if cfg.SASLMechanism != "" {
		c.Net.SASL.Enable = true
		c.Net.SASL.User = cfg.SASLUser
		c.Net.SASL.Password = cfg.SASLPassword
		switch cfg.SASLMechanism {
		case sarama.SASLTypePlaintext:
			c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
			c.Net.SASL.Mechanism = sarama.SASLMechanism(cfg.SASLMechanism)
			c.Net.SASL.SCRAMClientGeneratorFunc = scramClient(cfg.SASLMechanism)
		default:
			return nil, fmt.Errorf("KAFKA_SASL_MECHANISM %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", cfg.SASLMechanism)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("kafka client settings: %w", err)
	}
	return c, nil
}

// checkSecurity refuses TLS and SASL settings that the switches would
// leave unused: a client would then connect in plaintext, or without
// credentials, and fail with a timeout or a closed connection that names
// no setting.
func checkSecurity(cfg config.Kafka) error {
	var errs []error
	if cfg.TLSCAFile != "" && !cfg.TLS {
		errs = append(errs, errors.New("KAFKA_TLS_CA_FILE is set but KAFKA_TLS is not true: set KAFKA_TLS=true to connect with TLS"))
	}
	if cfg.SASLMechanism == "" && (cfg.SASLUser != "" || cfg.SASLPassword != "") {
		errs = append(errs, errors.New("KAFKA_SASL_USER or KAFKA_SASL_PASSWORD is set without KAFKA_SASL_MECHANISM: set it to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))
	}
	if cfg.SASLMechanism != "" && cfg.SASLUser == "" {
		errs = append(errs, fmt.Errorf("KAFKA_SASL_MECHANISM is %s but KAFKA_SASL_USER is empty", cfg.SASLMechanism))
	}
	// The registry's client sends credentials only when it has both: one
	// alone would be every request unauthenticated, refused with a 401
	// that names no variable.
	if (cfg.RegistryUser == "") != (cfg.RegistryPassword == "") {
		errs = append(errs, errors.New("one of SCHEMA_REGISTRY_USER and SCHEMA_REGISTRY_PASSWORD is set: set both, or neither"))
	}
	return errors.Join(errs...)
}

func tlsConfig(cfg config.Kafka) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("read KAFKA_TLS_CA_FILE: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE %s holds no PEM certificate", cfg.TLSCAFile)
		}
	}
	return tc, nil
}

// KgoOptions returns the franz-go client options that match SaramaConfig's
// connection settings (brokers, TLS, SASL): the base of every franz-go
// client, the Session's consumer and producers, SyncSender, and the
// stores' restores and reads.
func KgoOptions(cfg config.Kafka) ([]kgo.Opt, error) {
	if err := checkSecurity(cfg); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}
	if cfg.TLS {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch cfg.SASLMechanism {
	case "":
	case sarama.SASLTypePlaintext:
		opts = append(opts, kgo.SASL(plain.Auth{User: cfg.SASLUser, Pass: cfg.SASLPassword}.AsMechanism()))
	case sarama.SASLTypeSCRAMSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: cfg.SASLUser, Pass: cfg.SASLPassword}.AsSha256Mechanism()))
	case sarama.SASLTypeSCRAMSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: cfg.SASLUser, Pass: cfg.SASLPassword}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("KAFKA_SASL_MECHANISM %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", cfg.SASLMechanism)
	}
	return opts, nil
}

// NewRecord turns msg into the Kafka record the publisher would send to
// topic, for a write that sends it itself (store.Store.UpdateAndSend), as
// watermill-kafka's marshaler does: the message's uuid and metadata as
// headers, and its partition key (contracts.HeaderPartitionKey, required) as
// the record's key, so that every record of one aggregate lands on one
// partition. When msg's context holds a span, the send is traced as its
// child and the record carries the trace context in its headers.
func NewRecord(topic string, msg *message.Message) (*kgo.Record, error) {
	key := msg.Metadata.Get(contracts.HeaderPartitionKey)
	if key == "" {
		return nil, fmt.Errorf("message %s to %s has no %s", msg.UUID, topic, contracts.HeaderPartitionKey)
	}
	if msg.Metadata.Get(kafka.UUIDHeaderKey) != "" {
		return nil, fmt.Errorf("message %s to %s: metadata %s is reserved for the message's uuid", msg.UUID, topic, kafka.UUIDHeaderKey)
	}
	traceSend(topic, msg)
	headers := make([]kgo.RecordHeader, 1, 1+len(msg.Metadata))
	headers[0] = kgo.RecordHeader{Key: kafka.UUIDHeaderKey, Value: []byte(msg.UUID)}
	for k, v := range msg.Metadata {
		headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: msg.Payload, Headers: headers}, nil
}

// Publisher publishes watermill messages to Kafka through a Sender.
// Publish sends all its messages in one Sender.Add and returns once its
// wait does: on a Session, at once from a handler (the messages commit
// with its offset), otherwise once the transaction commits; on a
// SyncSender, once Kafka has acknowledged every one.
type Publisher struct {
	producer Sender
	owned    bool // Close closes the producer
	closed   atomic.Bool
}

// NewPublisher returns a publisher with a producer of its own.
func NewPublisher(cfg config.Kafka, clientID string) (*Publisher, error) {
	producer, err := NewSyncSender(cfg, clientID)
	if err != nil {
		return nil, err
	}
	return &Publisher{producer: producer, owned: true}, nil
}

// PublisherOn returns a publisher that sends through producer, which stays
// the caller's to close. A process shares one producer between its stores
// and its publisher, so their records travel in the same produce requests.
func PublisherOn(producer Sender) *Publisher {
	return &Publisher{producer: producer}
}

// Publish implements message.Publisher.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	return p.PublishThen(topic, nil, msgs...)
}

// PublishThen is Publish, and over, if not nil, learns whether the
// transaction the messages joined committed (Sender.Add).
func (p *Publisher) PublishThen(topic string, over func(committed bool), msgs ...*message.Message) error {
	if p.closed.Load() {
		return errors.New("publisher closed")
	}
	records := make([]*kgo.Record, len(msgs))
	for i, msg := range msgs {
		var err error
		if records[i], err = NewRecord(topic, msg); err != nil {
			return err
		}
	}
	ctx := context.Background()
	if len(msgs) > 0 {
		ctx = msgs[0].Context()
	}
	wait, err := p.producer.Add(ctx, records, over)
	if err == nil {
		err = wait()
	}
	if err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// Close stops the publisher, and closes its producer if it has its own.
func (p *Publisher) Close() error {
	if p.closed.Swap(true) || !p.owned {
		return nil
	}
	return p.producer.(SyncSender).Close()
}

// Sender sends records: a process's Session, or a SyncSender. ctx is the
// context of the work that sends them (a consumed message's, for a
// handler: see Session.Add). Add returns the wait for the records to be
// written for good (their commit), and over, if not nil, learns whether
// they were: a SyncSender's are once Kafka acknowledged them.
type Sender interface {
	Add(ctx context.Context, records []*kgo.Record, over func(committed bool)) (func() error, error)
}

// SyncSender is a Sender outside any transaction, on an idempotent franz-go
// producer of its own: Send returns once Kafka has acknowledged every
// record.
type SyncSender struct{ *kgo.Client }

// NewSyncSender connects a SyncSender; Close closes it.
func NewSyncSender(cfg config.Kafka, clientID string) (SyncSender, error) {
	opts, err := KgoOptions(cfg)
	if err != nil {
		return SyncSender{}, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ClientID(clientID), kgo.RecordPartitioner(kgoPartitioner),
		kgo.RecordDeliveryTimeout(30*time.Second))...)
	if err != nil {
		return SyncSender{}, fmt.Errorf("create kafka producer: %w", err)
	}
	return SyncSender{cl}, nil
}

// Send implements Sender. The caller's context does not cut a write
// short (a handler's ends as soon as its message is through); the
// producer's retries and delivery timeout bound it.
func (s SyncSender) Send(ctx context.Context, records []*kgo.Record) error {
	return s.ProduceSync(context.WithoutCancel(ctx), records...).FirstErr()
}

// Add is Send, with nothing left to wait for: over learns at once
// whether the records were written.
func (s SyncSender) Add(ctx context.Context, records []*kgo.Record, over func(committed bool)) (func() error, error) {
	err := s.Send(ctx, records)
	if over != nil {
		over(err == nil)
	}
	return func() error { return nil }, err
}

// Epoch is always 0: nothing a SyncSender writes is taken back, and it
// owns no partitions.
func (SyncSender) Epoch() uint64 { return 0 }

// AddAcked is Send of acked, then of what then builds from them; over
// learns whether both were written.
func (s SyncSender) AddAcked(ctx context.Context, acked []*kgo.Record, then func() []*kgo.Record, over func(committed bool)) (func() error, error) {
	err := s.Send(ctx, acked)
	if err == nil {
		err = s.Send(ctx, then())
	}
	if over != nil {
		over(err == nil)
	}
	return func() error { return nil }, err
}

// Close closes the producer.
func (s SyncSender) Close() error {
	s.Client.Close()
	return nil
}

// EnsureTopics creates the topics that do not exist yet, with their cleanup
// policies, and waits until every partition of them has a leader. A missing
// topic gets the partition count the existing topics of specs share, if they
// share one, so that a release adding a topic to a deployment of another count
// than its specs' keeps the topics co-partitioned; otherwise its spec's count.
// An existing topic is left as it is, but one whose cleanup.policy would lose
// records it must keep, or keep those it must drop, fails the start.
func EnsureTopics(cfg config.Kafka, specs []contracts.TopicSpec) error {
	admin, err := clusterAdmin(cfg)
	if err != nil {
		return err
	}
	defer admin.Close()
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var names []string
	var found []contracts.TopicSpec
	counts := map[int32]bool{}
	for _, t := range specs {
		names = append(names, t.Name)
		if d, ok := existing[t.Name]; ok {
			found = append(found, t)
			counts[d.NumPartitions] = true
		}
	}
	if err := checkCleanupPolicies(admin, found); err != nil {
		return err
	}
	shared := int32(0) // the count the existing topics share, if they share one
	if len(counts) == 1 {
		for n := range counts {
			shared = n
		}
	}
	for _, t := range specs {
		if _, ok := existing[t.Name]; ok {
			continue
		}
		detail := &sarama.TopicDetail{NumPartitions: cmp.Or(shared, t.Partitions), ReplicationFactor: -1, ConfigEntries: map[string]*string{}}
		for k, v := range t.Configs {
			detail.ConfigEntries[k] = &v
		}
		// Explicit, so that a broker whose default is another policy does
		// not decide it.
		policy := "delete"
		if t.Compacted {
			policy = "compact"
		}
		detail.ConfigEntries["cleanup.policy"] = &policy
		err := admin.CreateTopic(t.Name, detail, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Name, err)
		}
	}
	// Also topics another process created a moment ago.
	return awaitLeaders(admin, names, 30*time.Second)
}

// checkCleanupPolicies describes the cleanup.policy of the existing topics
// of specs in one request, and names every one that is wrong for its spec.
func checkCleanupPolicies(admin sarama.ClusterAdmin, specs []contracts.TopicSpec) error {
	if len(specs) == 0 {
		return nil
	}
	resources := make([]*sarama.ConfigResource, len(specs))
	for i, t := range specs {
		resources[i] = &sarama.ConfigResource{Type: sarama.TopicResource, Name: t.Name, ConfigNames: []string{"cleanup.policy"}}
	}
	results, err := admin.DescribeConfigs(resources, sarama.DescribeConfigsOptions{})
	if err != nil {
		return fmt.Errorf("describe the cleanup.policy of the topics: %w", err)
	}
	policies := map[string]string{}
	for _, r := range results {
		if r.ErrorCode != sarama.ErrNoError {
			return fmt.Errorf("describe the cleanup.policy of topic %s (the principal needs DescribeConfigs on it): %w", r.Name, r.ErrorCode)
		}
		policies[r.Name] = "delete" // Kafka's default, should the broker name none
		for _, c := range r.Configs {
			if c.Name == "cleanup.policy" {
				policies[r.Name] = c.Value
			}
		}
	}
	var wrong []string
	for _, t := range specs {
		policy, ok := policies[t.Name]
		if !ok {
			return fmt.Errorf("describe the cleanup.policy of topic %s: the broker did not answer for it", t.Name)
		}
		if need := neededPolicy(t, policy); need != "" {
			wrong = append(wrong, fmt.Sprintf("%s has cleanup.policy=%s, needs %s", t.Name, policy, need))
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("topics with the wrong cleanup policy: %s (set it with kafka-configs --alter --entity-type topics --entity-name <topic> --add-config cleanup.policy=<policy>; docs/operations.md, Topics)",
			strings.Join(wrong, "; "))
	}
	return nil
}

// neededPolicy returns the cleanup.policy a topic of spec t needs if policy
// is wrong for it, and "" if it will do. Deleting by time would drop live
// state from a compacted topic; compacting an archive never moves its log
// start, so nothing ends; compacting a log would drop a command, an event
// or a reply not yet read behind a later one of its key, and keep the
// last of each key for good.
func neededPolicy(t contracts.TopicSpec, policy string) string {
	compact, del := false, false
	for p := range strings.SplitSeq(policy, ",") {
		switch strings.TrimSpace(p) {
		case "compact":
			compact = true
		case "delete":
			del = true
		}
	}
	switch {
	case t.Compacted && (!compact || del):
		return "compact"
	case t.Archive && (compact || !del):
		return "delete"
	case !t.Compacted && !t.Archive && (compact || !del):
		return "delete"
	}
	return ""
}

// Segment is how long a segment of a topic of the given retention lasts
// (segment.ms, SetRetention): a seventh of the retention, between a minute
// and a day.
func Segment(retention time.Duration) time.Duration {
	return min(max(retention/7, time.Minute), 24*time.Hour).Truncate(time.Second)
}

// SetRetention sets each topic's retention.ms, and its segment.ms to a
// seventh of that between a minute and a day, unless both already are, on
// one connection to the cluster: the processes
// create their topics with the defaults of contracts.Topics, and a setting
// such as SAGA_RETENTION changes it at start. Kafka deletes a segment only
// once its newest record is past retention, so a day's segments would keep
// the records of an hour's retention for 25 hours.
func SetRetention(cfg config.Kafka, retention time.Duration, topics ...string) error {
	admin, err := clusterAdmin(cfg)
	if err != nil {
		return err
	}
	defer admin.Close()
	segment := Segment(retention)
	want := map[string]string{
		"retention.ms": strconv.FormatInt(retention.Milliseconds(), 10),
		"segment.ms":   strconv.FormatInt(segment.Milliseconds(), 10),
	}
	for _, topic := range topics {
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms", "segment.ms"}})
		if err != nil {
			return fmt.Errorf("describe the configs of topic %s (the principal needs DescribeConfigs on it): %w", topic, err)
		}
		same := 0
		for _, e := range entries {
			if want[e.Name] == e.Value {
				same++
			}
		}
		if same == len(want) {
			continue
		}
		alter := map[string]sarama.IncrementalAlterConfigsEntry{}
		for k, v := range want {
			alter[k] = sarama.IncrementalAlterConfigsEntry{Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v}
		}
		if err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, alter, false); err != nil {
			return fmt.Errorf("set retention.ms of topic %s to %s and segment.ms to %s (the principal needs AlterConfigs on it, unless the topic has both already): %w", topic, retention, segment, err)
		}
	}
	return nil
}

// clusterAdmin connects an admin client for topic management.
func clusterAdmin(cfg config.Kafka) (sarama.ClusterAdmin, error) {
	sc, err := SaramaConfig(cfg, "topics")
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdmin(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("connect to kafka %v: %w", cfg.Brokers, err)
	}
	return admin, nil
}

// awaitLeaders waits until every partition of the topics has a leader. Kafka
// answers CreateTopics before it has elected them, and reading a partition
// without a leader fails (kfake elects at once).
func awaitLeaders(admin sarama.ClusterAdmin, topics []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for len(topics) > 0 {
		meta, err := admin.DescribeTopics(topics)
		if err != nil {
			return fmt.Errorf("describe topics: %w", err)
		}
		var waiting []string
		for _, t := range meta {
			ready := t.Err == sarama.ErrNoError && len(t.Partitions) > 0
			for _, p := range t.Partitions {
				ready = ready && p.Err == sarama.ErrNoError && p.Leader >= 0
			}
			if !ready {
				waiting = append(waiting, t.Name)
			}
		}
		if len(waiting) > 0 && time.Now().After(deadline) {
			return fmt.Errorf("topics %v have partitions without a leader after %s", waiting, within)
		}
		if len(waiting) > 0 {
			time.Sleep(100 * time.Millisecond) // polling interval
		}
		topics = waiting
	}
	return nil
}

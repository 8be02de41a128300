package devstack_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/devstack"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestStartServesKafkaAndRegistryAndCloseFreesPorts(t *testing.T) {
	t.Parallel()
	s, err := devstack.Start(t.Context(), devstack.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	kafkaAddr := s.Brokers()[0]
	registryAddr := strings.TrimPrefix(s.RegistryURL(), "http://")

	roundTrip(t, s.Brokers())
	assertNoAutoCreate(t, s.Brokers())
	if status, body := get(t, s.RegistryURL()+"/subjects"); status != 200 || body != "[]" {
		t.Errorf("GET /subjects: got %d %s, want 200 []", status, body)
	}
	assertCompacted(t, s.Brokers(), "_schemas")

	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: got %v, want nil", err)
	}
	for _, addr := range []string{kafkaAddr, registryAddr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen on %s after close: %v, want the port free", addr, err)
			continue
		}
		ln.Close()
	}
}

func TestDataDirKeepsSchemasAcrossRestarts(t *testing.T) {
	t.Parallel()
	cfg := devstack.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: quiet()}
	s, err := devstack.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	schema := `{"schema": "{\"type\": \"enum\", \"name\": \"E\", \"symbols\": [\"A\"]}"}`
	for _, subject := range []string{"a-value", "b-value"} {
		if status, body := post(t, s.RegistryURL()+"/subjects/"+subject+"/versions", schema); status != 200 || body != `{"id":1}` {
			t.Fatalf("register in %s: got %d %s, want 200 {\"id\":1}", subject, status, body)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	s, err = devstack.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer s.Close()
	if status, body := get(t, s.RegistryURL()+"/schemas/ids/1/versions"); status != 200 || body != `[{"subject":"a-value","version":1},{"subject":"b-value","version":1}]` {
		t.Errorf("versions of schema 1 after restart: got %d %s, want both subjects at version 1", status, body)
	}
}

// A second stack on a data directory in use is refused: started, it put
// back under the running broker the partitions of a compaction under way,
// and then served the same files.
func TestASecondStackOnADataDirInUseIsRefused(t *testing.T) {
	t.Parallel()
	cfg := devstack.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: quiet()}
	first, err := devstack.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if second, err := devstack.Start(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "in use") {
		if second != nil {
			second.Close()
		}
		t.Errorf("a second stack on the data directory: got %v, want refused, the directory in use", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	second, err := devstack.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("a stack on the data directory once the first closed: %v", err)
	}
	second.Close()
}

func TestStartForTest(t *testing.T) {
	t.Parallel()
	s := devstack.StartForTest(t)
	roundTrip(t, s.Brokers())
	if status, _ := get(t, s.RegistryURL()+"/schemas/types"); status != 200 {
		t.Errorf("GET /schemas/types: got %d, want 200", status)
	}
}

// Kafka's brokers take consumer sessions up to 30 minutes by default; so
// does the embedded one, where every join of a longer one than kfake's 5
// minutes failed with INVALID_SESSION_TIMEOUT.
func TestTheBrokerTakesKafkasLongestSession(t *testing.T) {
	t.Parallel()
	s := devstack.StartForTest(t)
	if s.Cluster() == nil {
		t.Skip("the embedded broker's limit")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.ProtocolType = "long", "consumer"
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = int32((29*time.Minute)/time.Millisecond), 60000
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	// A first join answered MEMBER_ID_REQUIRED was taken.
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil && !errors.Is(err, kerr.MemberIDRequired) {
		t.Errorf("a join with a 29 min session: %v, want it taken, as Kafka does", err)
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []devstack.Config{
		{KafkaAddr: "no-port", RegistryAddr: "127.0.0.1:0"},
		{KafkaAddr: "0.0.0.0:0", RegistryAddr: "127.0.0.1:0"},
		{KafkaAddr: "127.0.0.1:0", RegistryAddr: ":0"},
	} {
		cfg.Logger = quiet()
		if s, err := devstack.Start(t.Context(), cfg); err == nil {
			s.Close()
			t.Errorf("start with kafka %q registry %q: got no error, want a config error", cfg.KafkaAddr, cfg.RegistryAddr)
		}
	}
}

// roundTrip creates a topic, produces a record to it and consumes it back.
func roundTrip(t *testing.T, brokers []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("roundtrip"))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, "roundtrip"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "roundtrip", Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	fetches := cl.PollRecords(ctx, 1)
	if errs := fetches.Errors(); len(errs) > 0 {
		t.Fatalf("consume: %v", errs[0].Err)
	}
	if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Value) != "hello" {
		t.Errorf("consume: got %d records, want the one with value hello", len(recs))
	}
}

// assertNoAutoCreate asks for a missing topic with auto-creation allowed
// and checks that the broker neither creates it nor pretends it exists.
func assertNoAutoCreate(t *testing.T, brokers []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	topic := kmsg.NewMetadataRequestTopic()
	topic.Topic = kmsg.StringPtr("no-such-topic")
	req.Topics = append(req.Topics, topic)
	req.AllowAutoTopicCreation = true
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if got := resp.Topics[0].ErrorCode; got != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("metadata for a missing topic with auto-creation asked: got error code %d, want %d (unknown topic)", got, kerr.UnknownTopicOrPartition.Code)
	}
}

func assertCompacted(t *testing.T, brokers []string, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	configs, err := kadm.NewClient(cl).DescribeTopicConfigs(t.Context(), topic)
	if err != nil {
		t.Fatalf("describe %s: %v", topic, err)
	}
	rc, err := configs.On(topic, nil)
	if err != nil {
		t.Fatalf("describe %s: %v", topic, err)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" {
			if got := c.MaybeValue(); got != "compact" {
				t.Errorf("%s cleanup.policy: got %q, want compact", topic, got)
			}
			return
		}
	}
	t.Errorf("%s: no cleanup.policy, want compact", topic)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url, "")
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	return do(t, http.MethodPost, url, body)
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	req.Close = true // no idle connection left for the registry's shutdown to wait for
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, strings.TrimSpace(string(data))
}

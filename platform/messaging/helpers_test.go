package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// quiet logs warnings and errors only, to stderr, where go test shows them
// for a failing package; it is safe from goroutines that outlive a test.
func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func wlog() watermill.LoggerAdapter { return watermill.NewSlogLogger(quiet()) }

// startKafka starts an embedded broker and registry with the given topics.
func startKafka(t *testing.T, topics ...contracts.TopicSpec) config.Kafka {
	t.Helper()
	stack := devstack.StartForTest(t)
	cfg := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true}
	if err := messaging.EnsureTopics(cfg, topics); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	return cfg
}

func newSerde(t *testing.T, cfg config.Kafka, types ...serde.Record) *serde.Serde {
	t.Helper()
	s, err := serde.New(srclient.NewSchemaRegistryClient(cfg.SchemaRegistryURL), serde.Config{AutoRegister: true}, types...)
	if err != nil {
		t.Fatalf("serde.New: %v", err)
	}
	return s
}

func kgoClient(t *testing.T, cfg config.Kafka, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes records as they are, with a plain client, and returns them
// with their partitions and offsets.
func produce(t *testing.T, cfg config.Kafka, records ...*kgo.Record) []*kgo.Record {
	t.Helper()
	results := kgoClient(t, cfg).ProduceSync(t.Context(), records...)
	if err := results.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return records
}

// readUntil reads topic from its start until done says the records read so
// far are enough, and fails the test if that takes more than 20 seconds.
func readUntil(t *testing.T, cfg config.Kafka, topic string, done func([]*kgo.Record) bool, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := kgoClient(t, cfg, append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var got []*kgo.Record
	for !done(got) {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: gave up after 20s with %d records: %s (%s)", topic, len(got), describe(got), ends(cl, topic))
		}
		fetches.EachError(func(_ string, _ int32, err error) { t.Logf("fetch %s: %v", topic, err) })
		got = append(got, fetches.Records()...)
	}
	return got
}

// ends describes where topic's partitions end, where their committed
// records end, and every record they hold with its producer and, for a
// transaction's marker, whether it commits or aborts: what a reader of
// committed records that found nothing needs to know.
func ends(cl *kgo.Client, topic string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	high, herr := adm.ListEndOffsets(ctx, topic)
	stable, serr := adm.ListCommittedOffsets(ctx, topic)
	if err := errors.Join(herr, serr, high.Error(), stable.Error()); err != nil {
		return "end offsets: " + err.Error()
	}
	s := "end offsets, committed ones in brackets:"
	high.Each(func(o kadm.ListedOffset) {
		s += fmt.Sprintf(" %d: %d [%d]", o.Partition, o.Offset, stable[o.Topic][o.Partition].Offset)
	})
	raw, err := kgo.NewClient(kgo.SeedBrokers(cl.OptValue(kgo.SeedBrokers).([]string)...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
	if err != nil {
		return s
	}
	defer raw.Close()
	left := map[int32]int64{} // partitions not read to their end, and their ends
	high.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	s += "; records:"
	for len(left) > 0 && ctx.Err() == nil {
		raw.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			what := fmt.Sprintf("%q", r.Value)
			if r.Attrs.IsControl() { // a marker: its key's type is 0 for an abort, 1 for a commit
				what = "abort"
				if len(r.Key) == 4 && r.Key[3] == 1 {
					what = "commit"
				}
			}
			s += fmt.Sprintf(" %d@%d producer %d: %s;", r.Partition, r.Offset, r.ProducerID, what)
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
		})
	}
	return s
}

// readAll reads every record topic holds now.
func readAll(t *testing.T, cfg config.Kafka, topic string) []*kgo.Record {
	t.Helper()
	ends, err := kadm.NewClient(kgoClient(t, cfg)).ListEndOffsets(t.Context(), topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("end offsets of %s: %v %v", topic, err, ends.Error())
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	return readUntil(t, cfg, topic, func(got []*kgo.Record) bool { return int64(len(got)) >= want })
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func describe(records []*kgo.Record) string {
	s := ""
	for _, r := range records {
		s += fmt.Sprintf("\n  %s/%d@%d key=%q", r.Topic, r.Partition, r.Offset, r.Key)
		for _, h := range r.Headers {
			s += fmt.Sprintf(" %s=%.60q", h.Key, h.Value)
		}
	}
	return s
}

// eventually polls cond until it holds or 20 seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after 20s waiting for %s", what)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended while waiting for %s", what)
		case <-time.After(10 * time.Millisecond): // poll interval, not synchronisation
		}
	}
}

// series returns the series of metric name with exactly the given labels
// that g holds, or nil (whose getters answer zero).
func series(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			matched := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					matched++
				}
			}
			if matched == len(labels) && len(m.GetLabel()) == len(labels) {
				return m
			}
		}
	}
	return nil
}

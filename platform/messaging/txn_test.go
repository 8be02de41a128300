package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// startTxnProducer runs a TxnProducer with the transactional id id until
// the test ends; aborted receives the error of every aborted commit.
func startTxnProducer(t *testing.T, cfg config.Kafka, id string) (*messaging.TxnProducer, <-chan error) {
	t.Helper()
	sc, err := messaging.SaramaConfig(cfg, id)
	if err != nil {
		t.Fatal(err)
	}
	sc.Producer.Transaction.ID = id
	client, err := sarama.NewClient(cfg.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := messaging.NewTxnProducer(client, quiet())
	if err != nil {
		t.Fatal(err)
	}
	aborted := make(chan error, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx, func(err error) { aborted <- err })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = p.CloseProducer()
		client.Close()
	})
	return p, aborted
}

// A member of an old generation, as an instance that was paused while its
// partitions moved, cannot commit: its records are never read by a
// read_committed consumer, and its writer learns it.
func TestTxnProducerOfAnOldGenerationCannotCommit(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "fence.in", Partitions: 1}, contracts.TopicSpec{Name: "fence.out", Partitions: 1}
	cfg := startKafka(t, in, out)

	// The group "fence" has a member and a generation of its own.
	member := kgoClient(t, cfg, kgo.ConsumerGroup("fence"), kgo.ConsumeTopics(in.Name))
	groups := kadm.NewClient(kgoClient(t, cfg))
	eventually(t, "the group to be stable", func() bool {
		described, err := groups.DescribeGroups(t.Context(), "fence")
		member.PollRecords(nil, 0) // keeps it joining, without waiting
		return err == nil && described["fence"].State == "Stable"
	})

	zombie, aborted := startTxnProducer(t, cfg, "fence-zombie")
	if err := zombie.Open(&sarama.ConsumerGroupMetadata{GroupID: "fence", GenerationID: 1000, MemberID: "gone"}); err != nil {
		t.Fatal(err)
	}
	zombie.Position(in.Name, 0, 0)
	err := zombie.SendMessages([]*sarama.ProducerMessage{{Topic: out.Name, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("zombie")}})
	if !errors.Is(err, messaging.ErrFenced) {
		t.Fatalf("write of an old generation: got %v, want ErrFenced", err)
	}
	select {
	case <-aborted:
	case <-time.After(10 * time.Second):
		t.Fatal("no abort reported to Run's caller")
	}
	if err := zombie.SendMessages(nil); !errors.Is(err, messaging.ErrRebalancing) {
		t.Errorf("write after the abort, before the next Open: got %v, want ErrRebalancing", err)
	}

	// A live producer writes after it; a read_committed reader sees its
	// record only.
	live, _ := startTxnProducer(t, cfg, "fence-live")
	if err := live.Open(nil); err != nil {
		t.Fatal(err)
	}
	if err := live.SendMessages([]*sarama.ProducerMessage{{Topic: out.Name, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("live")}}); err != nil {
		t.Fatalf("live write: %v", err)
	}
	reader := kgoClient(t, cfg, kgo.ConsumeTopics(out.Name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var values []string
	for len(values) == 0 || values[len(values)-1] != "live" {
		fetches := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read committed %s: got %v, want [live]", out.Name, values)
		}
		for _, r := range fetches.Records() {
			values = append(values, string(r.Value))
		}
	}
	if len(values) != 1 {
		t.Errorf("read committed %s: got %v, want [live]: the zombie's record must never be read", out.Name, values)
	}
}

// Writers that do not wait for commits (handlers) write while commits are
// in progress: their records wait for the next transaction, and every key's
// records are read back in the order they were written, each once.
func TestTxnProducerKeepsEachKeysOrderAcrossCommits(t *testing.T) {
	out := contracts.TopicSpec{Name: "order.out", Partitions: 2}
	cfg := startKafka(t, out)
	p, aborted := startTxnProducer(t, cfg, "order-writer")
	if err := p.Open(nil); err != nil {
		t.Fatal(err)
	}
	const keys, writes = 8, 200
	handling := messaging.WithRecord(t.Context(), &sarama.ConsumerMessage{Topic: "in"})
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			for i := range writes {
				msg := &sarama.ProducerMessage{Topic: out.Name, Key: sarama.StringEncoder(fmt.Sprint(k)), Value: sarama.StringEncoder(fmt.Sprint(i))}
				if err := p.SendAcked(handling, []*sarama.ProducerMessage{msg}); err != nil {
					t.Errorf("key %d write %d: %v", k, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// A write that waits for its commit also waits for everything before it.
	if err := p.SendMessages(nil); err != nil {
		t.Fatalf("last commit: %v", err)
	}
	select {
	case err := <-aborted:
		t.Fatalf("a commit was aborted: %v", err)
	default:
	}

	reader := kgoClient(t, cfg, kgo.ConsumeTopics(out.Name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	next := map[string]int{}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for read := 0; read < keys*writes; {
		fetches := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", read, keys*writes)
		}
		for _, r := range fetches.Records() {
			if got, want := string(r.Value), fmt.Sprint(next[string(r.Key)]); got != want {
				t.Fatalf("key %s: read %s, want %s: records of a key out of order or repeated", r.Key, got, want)
			}
			next[string(r.Key)]++
			read++
		}
	}
}

// SendAcked returns once a record's offset is known, before its commit,
// even for a handler, whose Send does not wait: the store's Archive writes
// that offset into the pointer it leaves behind.
func TestTxnProducerSendAckedKnowsWhereTheRecordLanded(t *testing.T) {
	out := contracts.TopicSpec{Name: "acked.out", Partitions: 1}
	cfg := startKafka(t, out)
	p, _ := startTxnProducer(t, cfg, "acked-writer")
	if err := p.Open(nil); err != nil {
		t.Fatal(err)
	}
	handling := messaging.WithRecord(t.Context(), &sarama.ConsumerMessage{Topic: "in"})
	offsets := map[string]int64{}
	for i := range 50 {
		filler := &sarama.ProducerMessage{Topic: out.Name, Value: sarama.StringEncoder("filler")}
		msg := &sarama.ProducerMessage{Topic: out.Name, Value: sarama.StringEncoder(fmt.Sprint(i))}
		if err := p.Send(handling, []*sarama.ProducerMessage{filler}); err != nil {
			t.Fatal(err)
		}
		if err := p.SendAcked(handling, []*sarama.ProducerMessage{msg}); err != nil {
			t.Fatal(err)
		}
		offsets[fmt.Sprint(i)] = msg.Offset
	}
	if err := p.SendMessages(nil); err != nil {
		t.Fatal(err)
	}
	reader := kgoClient(t, cfg, kgo.ConsumeTopics(out.Name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for len(offsets) > 0 {
		fetches := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d records not read back", len(offsets))
		}
		for _, r := range fetches.Records() {
			want, ok := offsets[string(r.Value)]
			if !ok {
				continue
			}
			if r.Offset != want {
				t.Errorf("record %s: SendAcked said offset %d, it is at %d", r.Value, want, r.Offset)
			}
			delete(offsets, string(r.Value))
		}
	}
}

// The last commit of a generation (Close) takes no write that arrives
// while it runs: such a write would otherwise be carried into the next
// generation's first commit, written for partitions that may have moved.
// It is refused at once.
func TestTxnProducerCloseRefusesWritesDuringItsCommit(t *testing.T) {
	out := contracts.TopicSpec{Name: "close.out", Partitions: 1}
	cfg := startKafka(t, out)
	sc, err := messaging.SaramaConfig(cfg, "close-writer")
	if err != nil {
		t.Fatal(err)
	}
	sc.Producer.Transaction.ID = "close-writer"
	client, err := sarama.NewClient(cfg.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	p, err := messaging.NewTxnProducer(client, quiet()) // no Run: only Close commits
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.CloseProducer() })
	if err := p.Open(nil); err != nil {
		t.Fatal(err)
	}
	handling := messaging.WithRecord(t.Context(), &sarama.ConsumerMessage{Topic: "in"})
	if err := p.Send(handling, []*sarama.ProducerMessage{{Topic: out.Name, Value: sarama.StringEncoder("before")}}); err != nil {
		t.Fatal(err)
	}
	var during error
	messaging.DuringCommit(p, func() {
		res := make(chan error, 1)
		go func() {
			res <- p.SendMessages([]*sarama.ProducerMessage{{Topic: out.Name, Value: sarama.StringEncoder("during")}})
		}()
		select {
		case during = <-res:
		case <-time.After(5 * time.Second):
			during = errors.New("still waiting: taken for a later commit")
		}
	})
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !errors.Is(during, messaging.ErrRebalancing) {
		t.Errorf("a write during the generation's last commit: got %v, want ErrRebalancing", during)
	}
}

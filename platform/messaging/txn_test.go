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

// newTxnProducer returns a TxnProducer with the transactional id id,
// closed when the test ends; nothing commits until Run does, or Close.
func newTxnProducer(t *testing.T, cfg config.Kafka, id string) *messaging.TxnProducer {
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
	t.Cleanup(func() {
		_ = p.CloseProducer()
		client.Close()
	})
	return p
}

// startTxnProducer is newTxnProducer with Run running until the test
// ends; aborted receives the error of every aborted commit.
func startTxnProducer(t *testing.T, cfg config.Kafka, id string) (*messaging.TxnProducer, <-chan error) {
	t.Helper()
	p := newTxnProducer(t, cfg, id)
	aborted := make(chan error, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx, func(err error) { aborted <- err })
	}()
	t.Cleanup(func() { // before the producer closes (cleanups run last first)
		cancel()
		<-done
	})
	return p, aborted
}

// readCommitted reads topic from its start, committed records only, handing
// each to fn until fn returns true; it fails the test after 10 s.
func readCommitted(t *testing.T, cfg config.Kafka, topic string, fn func(r *kgo.Record) (done bool)) {
	t.Helper()
	reader := kgoClient(t, cfg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		fetches := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read committed %s: not done within 10 s", topic)
		}
		for _, r := range fetches.Records() {
			if fn(r) {
				return
			}
		}
	}
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
	var values []string
	readCommitted(t, cfg, out.Name, func(r *kgo.Record) bool {
		values = append(values, string(r.Value))
		return string(r.Value) == "live"
	})
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
	// Every commit takes a moment, so that writes pile up in the queue of
	// the next transaction.
	messaging.DuringCommit(p, func() { time.Sleep(time.Millisecond) })
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			for i := range writes {
				msg := &sarama.ProducerMessage{Topic: out.Name, Key: sarama.StringEncoder(fmt.Sprint(k)), Value: sarama.StringEncoder(fmt.Sprint(i))}
				if err := p.Send(handling, []*sarama.ProducerMessage{msg}); err != nil {
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

	next := map[string]int{}
	read := 0
	readCommitted(t, cfg, out.Name, func(r *kgo.Record) bool {
		if got, want := string(r.Value), fmt.Sprint(next[string(r.Key)]); got != want {
			t.Fatalf("key %s: read %s, want %s: records of a key out of order or repeated", r.Key, got, want)
		}
		next[string(r.Key)]++
		read++
		return read == keys*writes
	})
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
	readCommitted(t, cfg, out.Name, func(r *kgo.Record) bool {
		if want, ok := offsets[string(r.Value)]; ok {
			if r.Offset != want {
				t.Errorf("record %s: SendAcked said offset %d, it is at %d", r.Value, want, r.Offset)
			}
			delete(offsets, string(r.Value))
		}
		return len(offsets) == 0
	})
}

// The last commit of a generation (Close) takes no write that arrives
// while it runs: such a write would otherwise be carried into the next
// generation's first commit, written for partitions that may have moved.
// It is refused at once.
func TestTxnProducerCloseRefusesWritesDuringItsCommit(t *testing.T) {
	out := contracts.TopicSpec{Name: "close.out", Partitions: 1}
	cfg := startKafka(t, out)
	p := newTxnProducer(t, cfg, "close-writer") // no Run: only Close commits
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

// A write made outside a handler (an HTTP request, a timer) waits for its
// commit, but not for ever: a commit that hangs gives ErrCommitPending, so
// a request answers 503 rather than hang past its client's patience.
func TestTxnProducerWaitsForACommitAWhileOnly(t *testing.T) {
	out := contracts.TopicSpec{Name: "await.out", Partitions: 1}
	cfg := startKafka(t, out)
	p, _ := startTxnProducer(t, cfg, "await-writer")
	if err := p.Open(nil); err != nil {
		t.Fatal(err)
	}
	messaging.SetAwaitCommit(p, 50*time.Millisecond)
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	messaging.DuringCommit(p, func() {
		once.Do(func() {
			close(held)
			<-release
		})
	})
	res := make(chan error, 1)
	go func() {
		res <- p.Send(t.Context(), []*sarama.ProducerMessage{{Topic: out.Name, Value: sarama.StringEncoder("slow")}})
	}()
	select {
	case err := <-res:
		select {
		case <-held:
		default:
			t.Fatalf("Send returned %v before its commit began", err)
		}
		if !errors.Is(err, messaging.ErrCommitPending) {
			t.Errorf("a write whose commit hangs: got %v, want ErrCommitPending", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("a write whose commit hangs: still waiting after 5 s, want ErrCommitPending after 50 ms")
	}
	close(release)
	// Once the commit is done, writes wait for theirs again and succeed.
	messaging.SetAwaitCommit(p, messaging.AwaitCommit)
	if err := p.Send(t.Context(), []*sarama.ProducerMessage{{Topic: out.Name, Value: sarama.StringEncoder("next")}}); err != nil {
		t.Errorf("the next write: %v", err)
	}
}

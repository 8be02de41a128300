package devstack_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/devstack"
)

func TestMaintenanceCompactsToTheLatestRecordOfEachKey(t *testing.T) {
	t.Parallel()
	s, cl := startMaintained(t, "")
	createTopic(t, cl, "compacted", map[string]string{"cleanup.policy": "compact"})
	const keys, updates = 5, 200
	for u := range updates {
		var recs []*kgo.Record
		for k := range keys {
			recs = append(recs, &kgo.Record{Topic: "compacted", Key: fmt.Appendf(nil, "k%d", k), Value: fmt.Appendf(nil, "%d", u)})
		}
		produce(t, cl, recs...)
	}
	// Compaction spares the last batch, as Kafka its active segment.
	produce(t, cl, &kgo.Record{Topic: "compacted", Key: []byte("last")})

	recs := awaitRecords(t, s.Brokers(), "compacted", fmt.Sprintf("%d records, one per key, then the last", keys+1), func(recs []*kgo.Record) bool { return len(recs) == keys+1 })
	for _, r := range recs[:keys] {
		if want := fmt.Sprint(updates - 1); string(r.Value) != want {
			t.Errorf("key %s: got value %s, want the latest, %s", r.Key, r.Value, want)
		}
	}
}

// A record of a transaction still open does not supersede the earlier
// records of its key: if the transaction aborts, the key keeps its
// committed value, as Kafka cleans nothing past the last stable offset.
func TestMaintenanceLeavesWhatAnOpenTransactionWouldSupersede(t *testing.T) {
	t.Parallel()
	s, cl := startMaintained(t, "")
	createTopic(t, cl, "state", map[string]string{"cleanup.policy": "compact"})
	produce(t, cl, &kgo.Record{Topic: "state", Key: []byte("k"), Value: []byte("committed")})
	txn := beginTransaction(t, s, "maintain-test")
	if err := supersede(t.Context(), txn); err != nil {
		t.Fatal(err)
	}
	from := s.MaintenanceRounds()
	if !poll(t, func() bool { return s.MaintenanceRounds() >= from+3 }) {
		t.Fatal("no maintenance round ran within 10s")
	}
	abortKeepsCommitted(t, s, cl, txn)
}

// A transaction that opens while the maintainer decides to compact does
// not get compacted past either: the check that no compacted partition
// has one open and the compaction run with no request between them.
// (They were two calls into the broker's loop, and a transaction opened
// between them lost its key's committed record when it aborted.)
func TestMaintenanceCompactsNothingOfATransactionOpenedAsItDecides(t *testing.T) {
	t.Parallel()
	s, cl := startMaintained(t, "")
	createTopic(t, cl, "state", map[string]string{"cleanup.policy": "compact"})
	txn := beginTransaction(t, s, "maintain-race-test")
	produced := make(chan error, 1)
	devstack.BeforeCompaction(s, func() {
		go func() { produced <- supersede(context.Background(), txn) }()
		select { // the broker takes it now, if it takes requests meanwhile
		case err := <-produced:
			produced <- err
		case <-time.After(500 * time.Millisecond):
		}
	})
	produce(t, cl, &kgo.Record{Topic: "state", Key: []byte("k"), Value: []byte("committed")}) // a compaction is due
	select {
	case err := <-produced:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no compaction was due within 10 s of the write")
	}
	abortKeepsCommitted(t, s, cl, txn)
}

// beginTransaction begins a transaction on the stack's broker.
func beginTransaction(t *testing.T, s *devstack.Stack, id string) *kgo.Client {
	t.Helper()
	txn, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers()...), kgo.TransactionalID(id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(txn.Close)
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	return txn
}

// supersede writes, in txn's transaction, a value of key k of topic
// state, then a record of another key: a batch each, since the last
// batch of a partition supersedes nothing.
func supersede(ctx context.Context, txn *kgo.Client) error {
	for _, r := range []*kgo.Record{{Topic: "state", Key: []byte("k"), Value: []byte("aborted")}, {Topic: "state", Key: []byte("other")}} {
		if err := txn.ProduceSync(ctx, r).FirstErr(); err != nil {
			return err
		}
	}
	return nil
}

// abortKeepsCommitted aborts txn and checks that key k of topic state
// still holds its committed value.
func abortKeepsCommitted(t *testing.T, s *devstack.Stack, cl, txn *kgo.Client) {
	t.Helper()
	if err := txn.EndTransaction(t.Context(), kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	produce(t, cl, &kgo.Record{Topic: "state", Key: []byte("last")})
	recs := records(t, s.Brokers(), "state", kgo.FetchIsolationLevel(kgo.ReadCommitted())) // up to "last"
	if len(recs) == 0 || string(recs[0].Key) != "k" || string(recs[0].Value) != "committed" {
		t.Errorf("after the abort: got %s, want k's committed value first", describe(recs))
	}
}

func TestMaintenanceDeletesRecordsPastRetention(t *testing.T) {
	t.Parallel()
	s, cl := startMaintained(t, "") // Config.Retention a minute
	// Older than Kafka's default retention.ms, 7 days.
	old, young := time.Now().Add(-8*24*time.Hour), time.Now()
	createTopic(t, cl, "compacted", map[string]string{"cleanup.policy": "compact"})
	createTopic(t, cl, "own-retention", map[string]string{"retention.ms": "60000"})
	createTopic(t, cl, "stack-retention", nil)
	for _, topic := range []string{"compacted", "own-retention", "stack-retention"} {
		for i, at := range []time.Time{old, old, old, young, young} {
			produce(t, cl, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v"), Timestamp: at})
		}
	}

	for _, topic := range []string{"own-retention", "stack-retention"} {
		awaitRecords(t, s.Brokers(), topic, "the 2 young records", func(recs []*kgo.Record) bool {
			return len(recs) == 2 && recs[0].Offset == 3
		})
	}
	// Both were maintained after compacted was written: Kafka deletes by
	// time only from topics whose cleanup.policy includes delete.
	if recs := records(t, s.Brokers(), "compacted"); len(recs) != 5 {
		t.Errorf("compacted topic: got %d records, want all 5, the old ones too", len(recs))
	}
}

func TestMaintenanceRemovesTombstonesPastDeleteRetention(t *testing.T) {
	t.Parallel()
	s, cl := startMaintained(t, "")
	createTopic(t, cl, "compacted", map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "60000"})
	old := time.Now().Add(-time.Hour)
	produce(t, cl, &kgo.Record{Topic: "compacted", Key: []byte("old"), Value: []byte("v"), Timestamp: old})
	produce(t, cl, &kgo.Record{Topic: "compacted", Key: []byte("old"), Timestamp: old}) // tombstone
	produce(t, cl, &kgo.Record{Topic: "compacted", Key: []byte("young")})               // tombstone
	produce(t, cl, &kgo.Record{Topic: "compacted", Key: []byte("last"), Value: []byte("v")})

	recs := awaitRecords(t, s.Brokers(), "compacted", "no record of key old", withoutKey("old"))
	if len(recs) != 2 || string(recs[0].Key) != "young" || recs[0].Value != nil || string(recs[1].Key) != "last" {
		t.Errorf("got %s, want the young tombstone and the last record", describe(recs))
	}

	// A tombstone goes when it has aged, with nothing written since.
	createTopic(t, cl, "quick", map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "300"})
	produce(t, cl, &kgo.Record{Topic: "quick", Key: []byte("gone")}) // tombstone
	produce(t, cl, &kgo.Record{Topic: "quick", Key: []byte("last"), Value: []byte("v")})
	awaitRecords(t, s.Brokers(), "quick", "no record of key gone", withoutKey("gone"))
}

func withoutKey(key string) func([]*kgo.Record) bool {
	return func(recs []*kgo.Record) bool {
		for _, r := range recs {
			if string(r.Key) == key {
				return false
			}
		}
		return true
	}
}

func TestMaintenanceShrinksDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, cl := startMaintained(t, dir)
	createTopic(t, cl, "compacted", map[string]string{"cleanup.policy": "compact"})
	createTopic(t, cl, "expiring", map[string]string{"retention.ms": "60000", "segment.bytes": "4096"})
	old := time.Now().Add(-time.Hour)
	const n, size = 500, 1000 // half a megabyte a topic
	for i := range n {
		produce(t, cl,
			&kgo.Record{Topic: "compacted", Key: fmt.Appendf(nil, "k%d", i%5), Value: random(size)},
			&kgo.Record{Topic: "expiring", Value: random(size), Timestamp: old},
		)
	}
	produce(t, cl, &kgo.Record{Topic: "expiring", Value: []byte("young")})

	for _, topic := range []string{"compacted", "expiring"} {
		pdir := filepath.Join(dir, "partitions", topic+"-0")
		const want = 32 << 10
		got := int64(-1)
		if !poll(t, func() bool { got = dirSize(t, pdir); return got < want }) {
			t.Errorf("%s on disk: %d bytes of %d written, want under %d", topic, got, n*size, want)
		}
	}
}

// startMaintained starts a stack whose broker is maintained every 10ms, with
// Config.Retention a minute, and a client of it.
func startMaintained(t *testing.T, dataDir string) (*devstack.Stack, *kgo.Client) {
	t.Helper()
	s, err := devstack.Start(t.Context(), devstack.Config{
		KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", DataDir: dataDir, Logger: quiet(),
		MaintainEvery: 10 * time.Millisecond, Retention: time.Minute,
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers()...))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return s, cl
}

func createTopic(t *testing.T, cl *kgo.Client, topic string, configs map[string]string) {
	t.Helper()
	cfg := map[string]*string{}
	for k, v := range configs {
		cfg[k] = &v
	}
	if _, err := kadm.NewClient(cl).CreateTopic(t.Context(), 1, -1, cfg, topic); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
}

// produce writes the records in one request, a batch a topic.
func produce(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// awaitRecords reads the topic until its records are as want says, and
// returns them; the test fails if they are not within 10 seconds.
func awaitRecords(t *testing.T, brokers []string, topic, want string, ok func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	if !poll(t, func() bool { recs = records(t, brokers, topic); return ok(recs) }) {
		t.Fatalf("%s: got %s, want %s", topic, describe(recs), want)
	}
	return recs
}

// poll calls cond until it holds, for up to 10 seconds.
func poll(t *testing.T, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// records reads partition 0 of the topic from its start to its end.
func records(t *testing.T, brokers []string, topic string, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}})}, opts...)...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("start offsets of %s: %v", topic, err)
	}
	end, _ := ends.Lookup(topic, 0)
	if start, _ := starts.Lookup(topic, 0); start.Offset == end.Offset {
		return nil
	}
	var recs []*kgo.Record
	for len(recs) == 0 || recs[len(recs)-1].Offset < end.Offset-1 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s up to offset %d: got %s: %v", topic, end.Offset, describe(recs), ctx.Err())
		}
		recs = append(recs, fetches.Records()...)
	}
	return recs
}

func describe(recs []*kgo.Record) string {
	s := fmt.Sprintf("%d records:", len(recs))
	for _, r := range recs {
		s += fmt.Sprintf(" %d:%s=%.8q", r.Offset, r.Key, r.Value)
	}
	return s
}

// random returns n random bytes, which compression leaves as large.
func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a segment the maintainer removed while the walk listed it
		}
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatalf("size of %s: %v", dir, err)
	}
	return n
}

// Retention runs while records are written: a record written while the
// maintainer looks for the first young one is young too, and stays. (The
// maintainer once took the end offset after its search found no young
// record, which a record written in between had moved past.)
func TestMaintenanceKeepsRecordsWrittenWhileItRuns(t *testing.T) {
	t.Parallel()
	s, cl := startMaintained(t, "") // maintains every 10ms
	const topics = 60
	for i := range topics {
		topic := fmt.Sprintf("busy-%d", i)
		createTopic(t, cl, topic, nil)
		produce(t, cl, &kgo.Record{Topic: topic, Key: []byte("old"), Value: []byte("v"), Timestamp: time.Now().Add(-time.Hour)})
		// The old record's expiry is due from now: write the young one
		// at some point of the next maintenance.
		time.Sleep(time.Duration(i%10) * time.Millisecond)
		produce(t, cl, &kgo.Record{Topic: topic, Key: []byte("young"), Value: []byte("v")})
	}
	for i := range topics {
		topic := fmt.Sprintf("busy-%d", i)
		awaitRecords(t, s.Brokers(), topic, "the young record alone", func(recs []*kgo.Record) bool {
			return len(recs) == 1 && string(recs[0].Key) == "young"
		})
	}
}

// A partition whose records all expired keeps its end offset across a
// restart: its last record stays. kfake dropped every segment file, and
// the partition started again from offset 0, below the offsets groups
// had committed: a group skipped the records written after.
func TestAnExpiredPartitionKeepsItsEndAcrossARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, cl := startMaintained(t, dir)
	createTopic(t, cl, "stack-retention", nil)
	old := time.Now().Add(-time.Hour)
	for i := range 5 {
		produce(t, cl, &kgo.Record{Topic: "stack-retention", Value: fmt.Appendf(nil, "old %d", i), Timestamp: old})
	}
	awaitRecords(t, s.Brokers(), "stack-retention", "the last record alone", func(recs []*kgo.Record) bool {
		return len(recs) == 1 && recs[0].Offset == 4
	})
	cl.Close()
	s.Close()

	s, cl = startMaintained(t, dir)
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), "stack-retention")
	if err != nil {
		t.Fatal(err)
	}
	if end, _ := ends.Lookup("stack-retention", 0); end.Offset != 5 {
		t.Errorf("end offset after a restart: got %d, want 5", end.Offset)
	}
	r := &kgo.Record{Topic: "stack-retention", Value: []byte("new")}
	produce(t, cl, r)
	if r.Offset != 5 {
		t.Errorf("a record written after the restart got offset %d, want 5", r.Offset)
	}
}

package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
)

type customers = store.Store[account]

// account is the store's test record. It has a map, so that a value the
// store shared with its caller would show.
type account struct {
	CustomerID   string          `avro:"customerId"`
	Name         string          `avro:"name"`
	CreditLimit  int64           `avro:"creditLimit"`
	Reservations map[string]hold `avro:"reservations"`
}

type hold struct {
	Amount int64  `avro:"amount"`
	Status string `avro:"status"`
}

var accountSchema = avro.MustParse(`{"type": "record", "name": "Account", "namespace": "kafkasaga.storetest", "fields": [
	{"name": "customerId", "type": "string"},
	{"name": "name", "type": "string"},
	{"name": "creditLimit", "type": "long"},
	{"name": "reservations", "type": {"type": "map", "values": {"type": "record", "name": "Hold", "fields": [
		{"name": "amount", "type": "long"},
		{"name": "status", "type": "string"}]}}}]}`)

func (*account) Schema() avro.Schema { return accountSchema }

// changelog is a compacted state topic on a fresh embedded broker, with the
// producer a process would give its stores.
type changelog struct {
	topic    string
	kafka    config.Kafka
	producer messaging.SyncSender
	archive  *store.Archive[account] // given to the stores it makes
	expire   *store.Expire[account]  // the same
	sender   store.Sender            // the stores' producer, if not producer
	opts     []kgo.Opt               // the stores' Kafka options beside the brokers
	stack    *devstack.Stack
}

func newChangelog(t testing.TB, partitions int32) *changelog {
	t.Helper()
	stack := devstack.StartForTest(t)
	c := &changelog{
		topic: contracts.TopicCustomerState,
		kafka: config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL()},
		stack: stack,
	}
	if err := messaging.EnsureTopics(c.kafka, []contracts.TopicSpec{{Name: c.topic, Partitions: partitions, Compacted: true}}); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	var err error
	if c.producer, err = messaging.NewSyncSender(c.kafka, "store-test"); err != nil {
		t.Fatalf("NewSyncSender: %v", err)
	}
	t.Cleanup(func() { c.producer.Close() })
	return c
}

// newStore returns an empty store on the changelog with a serde of its own,
// as a freshly started process has.
func (c *changelog) newStore(t testing.TB) *customers {
	t.Helper()
	return c.newStoreOn(t, c.kafka.SchemaRegistryURL)
}

// newStoreOn is newStore with its serde on the registry at registryURL.
func (c *changelog) newStoreOn(t testing.TB, registryURL string) *customers {
	t.Helper()
	s, err := serde.New(srclient.NewSchemaRegistryClient(registryURL), serde.Config{AutoRegister: true}, &account{})
	if err != nil {
		t.Fatalf("serde.New: %v", err)
	}
	codec, err := store.AvroCodec[account](s, c.topic)
	if err != nil {
		t.Fatalf("AvroCodec: %v", err)
	}
	var producer store.Sender = c.producer
	if c.sender != nil {
		producer = c.sender
	}
	st, err := store.New(store.Config[account]{
		Topic: c.topic, Kgo: append([]kgo.Opt{kgo.SeedBrokers(c.kafka.Brokers...)}, c.opts...), Producer: producer, Codec: codec, Archive: c.archive,
		Expire: c.expire,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("store.New: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// restored returns a new store restored from the changelog.
func (c *changelog) restored(t testing.TB) *customers {
	t.Helper()
	s := c.newStore(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := s.Restore(ctx); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return s
}

// restoredThrough is restored, the store writing through sender.
func (c *changelog) restoredThrough(t testing.TB, sender store.Sender) *customers {
	t.Helper()
	c.sender = sender
	return c.restored(t)
}

// records counts the records on the changelog, by partition.
func (c *changelog) records(t *testing.T) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.kafka.Brokers...))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), c.topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("list end offsets of %s: %v %v", c.topic, err, ends.Error())
	}
	counts := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { counts[o.Partition] = o.Offset })
	return counts
}

func total(counts map[int32]int64) int64 {
	var n int64
	for _, c := range counts {
		n += c
	}
	return n
}

func update(t testing.TB, s *customers, key string, fn func(v *account, exists bool) error) {
	t.Helper()
	if err := s.Update(t.Context(), key, fn); err != nil {
		t.Fatalf("Update(%s): %v", key, err)
	}
}

func mustGet(t testing.TB, s *customers, key string) *account {
	t.Helper()
	v, ok, err := s.Get(key)
	if err != nil || !ok {
		t.Fatalf("Get(%s): got ok=%v err=%v, want the record", key, ok, err)
	}
	return v
}

func customer(id string, limit int64) *account {
	return &account{CustomerID: id, Name: "Ada " + id, CreditLimit: limit, Reservations: map[string]hold{
		"o1": {Amount: limit / 2, Status: "RESERVED"},
	}}
}

func set(want *account) func(*account, bool) error {
	return func(v *account, _ bool) error {
		*v = *want
		v.Reservations = maps.Clone(want.Reservations)
		return nil
	}
}

func TestNewReportsEveryMissingSetting(t *testing.T) {
	_, err := store.New(store.Config[account]{}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("New with an empty config: got nil error, want one")
	}
	for _, field := range []string{"Topic", "Kgo", "Producer", "Codec"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("New with an empty config: error %q does not name %s", err, field)
		}
	}
}

func TestAvroCodecRejectsANonRecordType(t *testing.T) {
	if _, err := store.AvroCodec[struct{ N int }](nil, "t"); err == nil {
		t.Errorf("AvroCodec of a struct without Schema: got nil error, want one")
	}
}

func TestUpdateThenGet(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, 2)
	s := c.restored(t)

	if _, ok, err := s.Get("c1"); ok || err != nil {
		t.Fatalf("Get of a missing key: got ok=%v err=%v, want false nil", ok, err)
	}
	var sawExists []bool
	want := customer("c1", 10_000)
	update(t, s, "c1", func(v *account, exists bool) error {
		sawExists = append(sawExists, exists)
		if !reflect.DeepEqual(*v, account{}) {
			t.Errorf("fn of a new key: got %+v, want a zero record", *v)
		}
		return set(want)(v, exists)
	})
	if got := mustGet(t, s, "c1"); !reflect.DeepEqual(got, want) {
		t.Errorf("Get after Update: got %+v, want %+v", got, want)
	}

	update(t, s, "c1", func(v *account, exists bool) error {
		sawExists = append(sawExists, exists)
		if !reflect.DeepEqual(v, want) {
			t.Errorf("fn of an existing key: got %+v, want %+v", v, want)
		}
		v.CreditLimit = 20_000
		return nil
	})
	if got := mustGet(t, s, "c1").CreditLimit; got != 20_000 {
		t.Errorf("CreditLimit after the second Update: got %d, want 20000", got)
	}
	if want := []bool{false, true}; !reflect.DeepEqual(sawExists, want) {
		t.Errorf("exists passed to fn: got %v, want %v", sawExists, want)
	}
	if s.Len() != 1 {
		t.Errorf("Len: got %d, want 1", s.Len())
	}
	if n := total(c.records(t)); n != 2 {
		t.Errorf("records on the changelog: got %d, want 2", n)
	}
}

func TestRestoreReturnsTheLatestValueOfEveryKey(t *testing.T) {
	t.Parallel()
	const keys, updates = 40, 3
	c := newChangelog(t, contracts.Partitions)
	s := c.restored(t)
	for round := 1; round <= updates; round++ {
		for i := range keys {
			key := fmt.Sprintf("customer-%d", i)
			update(t, s, key, set(customer(key, int64(1000*round+i))))
		}
	}
	counts := c.records(t)
	if total(counts) != keys*updates {
		t.Fatalf("records on the changelog: got %d, want %d", total(counts), keys*updates)
	}
	used := 0
	for _, n := range counts {
		if n > 0 {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("records are on %d partition(s), want them spread over several", used)
	}

	r := c.restored(t)
	if r.Len() != keys {
		t.Errorf("Len after Restore: got %d, want %d", r.Len(), keys)
	}
	for i := range keys {
		key := fmt.Sprintf("customer-%d", i)
		if got, want := mustGet(t, r, key), customer(key, int64(1000*updates+i)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s after Restore: got %+v, want %+v", key, got, want)
		}
	}
	seen := map[string]bool{}
	err := r.Range(func(key string, v *account) bool {
		if v.CustomerID != key {
			t.Errorf("Range: key %s holds customer %s", key, v.CustomerID)
		}
		seen[key] = true
		return true
	})
	if err != nil || len(seen) != keys {
		t.Errorf("Range visited %d keys (error %v), want %d", len(seen), err, keys)
	}
	calls := 0
	if err := r.Range(func(string, *account) bool { calls++; return false }); err != nil || calls != 1 {
		t.Errorf("Range after fn returned false: got %d calls (error %v), want 1", calls, err)
	}
}

// Range skips a record no registry will ever decode, but stops at one it
// cannot decode now: a caller that derives state from every record (the
// credit a customer holds) must not come up with less.
func TestRangeSkipsTheUndecodableButStopsAtTheUnreachable(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, 1)
	update(t, c.restored(t), "c1", set(customer("c1", 500)))
	if err := c.producer.Send(t.Context(), []*kgo.Record{{
		Topic: c.topic, Key: []byte("junk"), Value: []byte("not a framed Avro record"),
	}}); err != nil {
		t.Fatal(err)
	}

	var seen []string
	err := c.restored(t).Range(func(key string, _ *account) bool { seen = append(seen, key); return true })
	if err != nil || !slices.Equal(seen, []string{"c1"}) {
		t.Errorf("Range with the registry up: got keys %v and error %v, want [c1] and none (junk skipped)", seen, err)
	}

	// Nothing listens on port 1: the registry is down.
	down := c.newStoreOn(t, "http://127.0.0.1:1")
	if err := down.Restore(t.Context()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	seen = nil
	err = down.Range(func(key string, _ *account) bool { seen = append(seen, key); return true })
	if err == nil || errors.Is(err, serde.ErrUndecodable) || len(seen) != 0 {
		t.Errorf("Range with the registry down: got keys %v and error %v, want none and an error that is not ErrUndecodable", seen, err)
	}
}

func TestUpdateErrorLeavesValueAndTopicUntouched(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, 2)
	s := c.restored(t)
	want := customer("c1", 500)
	update(t, s, "c1", set(want))
	before := c.records(t)

	declined := errors.New("credit limit exceeded")
	err := s.Update(t.Context(), "c1", func(v *account, _ bool) error {
		v.CreditLimit = 0
		v.Reservations["o2"] = hold{Amount: 1, Status: "RESERVED"}
		return declined
	})
	if err != declined {
		t.Errorf("Update whose fn fails: got %v, want fn's error as it is", err)
	}
	err = s.Update(t.Context(), "c2", func(v *account, _ bool) error {
		v.CustomerID = "c2"
		return declined
	})
	if !errors.Is(err, declined) {
		t.Errorf("Update of a new key whose fn fails: got %v, want %v", err, declined)
	}

	if got := mustGet(t, s, "c1"); !reflect.DeepEqual(got, want) {
		t.Errorf("c1 after a failed Update: got %+v, want %+v", got, want)
	}
	if _, ok, _ := s.Get("c2"); ok {
		t.Errorf("c2 after a failed Update of a new key: got a record, want none")
	}
	if after := c.records(t); !maps.Equal(after, before) {
		t.Errorf("changelog end offsets after failed Updates: got %v, want %v", after, before)
	}
}

func TestUnchangedRecordIsNotWrittenAgain(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, 2)
	s := c.restored(t)
	want := customer("c1", 500)
	update(t, s, "c1", set(want))
	before := c.records(t)

	update(t, s, "c1", func(*account, bool) error { return nil })
	update(t, s, "c1", set(want)) // the same content, written anew by fn
	if after := c.records(t); !maps.Equal(after, before) {
		t.Errorf("changelog end offsets after unchanging Updates: got %v, want %v", after, before)
	}

	update(t, s, "c1", func(v *account, _ bool) error { v.Name = "Grace"; return nil })
	if got, want := total(c.records(t)), total(before)+1; got != want {
		t.Errorf("records after a changing Update: got %d, want %d", got, want)
	}
}

func TestConcurrentUpdatesOfOneKeySerialize(t *testing.T) {
	t.Parallel()
	const writers = 40
	c := newChangelog(t, 2)
	s := c.restored(t)

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			errs <- s.Update(t.Context(), "c1", func(v *account, _ bool) error {
				v.CustomerID = "c1"
				v.CreditLimit++
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Update: %v", err)
		}
	}
	if got := mustGet(t, s, "c1").CreditLimit; got != writers {
		t.Errorf("counter after %d concurrent increments: got %d, want %d", writers, got, writers)
	}
	if got := mustGet(t, c.restored(t), "c1").CreditLimit; got != writers {
		t.Errorf("counter after Restore: got %d, want %d", got, writers)
	}
	if got := total(c.records(t)); got != writers {
		t.Errorf("records on the changelog: got %d, want %d", got, writers)
	}
}

func TestValuesAreNotAliased(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, 1)
	s := c.restored(t)
	want := customer("c1", 500)

	var kept *account
	update(t, s, "c1", func(v *account, exists bool) error {
		kept = v
		return set(want)(v, exists)
	})
	kept.Reservations["leak-from-fn"] = hold{Amount: 1}

	got := mustGet(t, s, "c1")
	got.Reservations["o1"] = hold{Amount: 999, Status: "RELEASED"}
	got.Reservations["leak-from-get"] = hold{Amount: 2}
	got.CreditLimit = 0

	if again := mustGet(t, s, "c1"); !reflect.DeepEqual(again, want) {
		t.Errorf("Get after mutating earlier results: got %+v, want %+v", again, want)
	}
	if err := s.Range(func(_ string, v *account) bool {
		v.Reservations["leak-from-range"] = hold{Amount: 3}
		return true
	}); err != nil {
		t.Fatalf("Range: %v", err)
	}
	if again := mustGet(t, s, "c1"); !reflect.DeepEqual(again, want) {
		t.Errorf("Get after mutating a Range value: got %+v, want %+v", again, want)
	}
}

func TestRestoreOfAnEmptyTopic(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, contracts.Partitions)
	s := c.newStore(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.Restore(ctx); err != nil {
		t.Fatalf("Restore of an empty topic: %v", err)
	}
	if s.Len() != 0 {
		t.Errorf("Len: got %d, want 0", s.Len())
	}
}

func TestRestoreOfAMissingTopicFails(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, 1)
	c.topic = "no.such.topic"
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.newStore(t).Restore(ctx); err == nil {
		t.Errorf("Restore of a missing topic: got nil error, want one")
	}
}

// A tombstone from any Kafka client (here franz-go, which partitions keys as
// the Java client does) deletes its key: it must land on the partition the
// store wrote the key to.
func TestTombstoneDeletesTheKeyOnRestore(t *testing.T) {
	t.Parallel()
	const keys = 16
	c := newChangelog(t, contracts.Partitions)
	s := c.restored(t)
	for i := range keys {
		key := fmt.Sprintf("customer-%d", i)
		update(t, s, key, set(customer(key, 100)))
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.kafka.Brokers...))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	defer cl.Close()
	var tombstones []*kgo.Record
	for i := 0; i < keys; i += 2 {
		tombstones = append(tombstones, &kgo.Record{Topic: c.topic, Key: fmt.Appendf(nil, "customer-%d", i)})
	}
	if err := cl.ProduceSync(t.Context(), tombstones...).FirstErr(); err != nil {
		t.Fatalf("produce tombstones: %v", err)
	}

	r := c.restored(t)
	for i := range keys {
		key := fmt.Sprintf("customer-%d", i)
		_, ok, err := r.Get(key)
		if err != nil {
			t.Fatalf("Get(%s): %v", key, err)
		}
		if deleted := i%2 == 0; ok == deleted {
			t.Errorf("%s after Restore: got present=%v, want %v", key, ok, !deleted)
		}
	}
	if r.Len() != keys/2 {
		t.Errorf("Len after Restore: got %d, want %d", r.Len(), keys/2)
	}
}

func TestUpdateAndSendWritesTheMessagesWithTheRecord(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, 2)
	const extra = "store-test.commands"
	if err := messaging.EnsureTopics(c.kafka, []contracts.TopicSpec{{Name: extra, Partitions: 3}}); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	s := c.restored(t)
	want := customer("c1", 500)
	send := func(values ...string) func(*account, bool) ([]*kgo.Record, error) {
		return func(v *account, exists bool) ([]*kgo.Record, error) {
			var msgs []*kgo.Record
			for _, value := range values {
				msgs = append(msgs, &kgo.Record{Topic: extra, Key: []byte("k-" + value),
					Value: []byte(value), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(value)}}})
			}
			return msgs, set(want)(v, exists)
		}
	}
	if err := s.UpdateAndSend(t.Context(), "c1", send("m1", "m2")); err != nil {
		t.Fatalf("UpdateAndSend: %v", err)
	}
	if got := mustGet(t, s, "c1"); !reflect.DeepEqual(got, want) {
		t.Errorf("Get after UpdateAndSend: got %+v, want %+v", got, want)
	}
	if n := total(c.records(t)); n != 1 {
		t.Errorf("records on the changelog: got %d, want 1", n)
	}
	// The record is unchanged now: only the message is written.
	if err := s.UpdateAndSend(t.Context(), "c1", send("m3")); err != nil {
		t.Fatalf("UpdateAndSend of an unchanged record: %v", err)
	}
	if n := total(c.records(t)); n != 1 {
		t.Errorf("records on the changelog after an unchanged record: got %d, want 1", n)
	}

	got := readAll(t, c.kafka.Brokers, extra, 3)
	slices.Sort(got)
	if want := []string{"k-m1=m1 h=m1", "k-m2=m2 h=m2", "k-m3=m3 h=m3"}; !slices.Equal(got, want) {
		t.Errorf("messages on %s: got %q, want %q", extra, got, want)
	}
}

// readAll reads n records of topic from its start, as "key=value h=header".
func readAll(t *testing.T, brokers []string, topic string, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []string
	for len(got) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: got %d records %q, want %d", topic, len(got), got, n)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			var h string
			for _, hd := range r.Headers {
				if hd.Key == "h" {
					h = string(hd.Value)
				}
			}
			got = append(got, fmt.Sprintf("%s=%s h=%s", r.Key, r.Value, h))
		})
	}
	return got
}

// Restore looks up every partition's offsets with a fresh client. Sent
// from one goroutine per partition, Sarama's first requests could find the
// broker's connection not yet open and fail with "broker not connected";
// many restores in a row make that race likely.
func TestRestoreWithAFreshClientEachTime(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, contracts.Partitions)
	for i := range 100 {
		s := c.newStore(t)
		if err := s.Restore(t.Context()); err != nil {
			t.Fatalf("restore %d: %v", i, err)
		}
	}
}

// A record that is over moves to the archive topic: the store keeps a
// pointer, reads it from Kafka, restores the pointer only, leaves it out of
// Range, and forgets the key once the archive's retention dropped it.
func TestAnEndedRecordIsArchivedThenPruned(t *testing.T) {
	t.Parallel()
	c := newArchivingChangelog(t)
	s := c.restored(t)
	update(t, s, "open", set(customer("open", 100)))
	update(t, s, "closed-1", set(customer("closed-1", 200)))
	closed := customer("closed-1", 200)
	closed.Name = "closed"
	update(t, s, "closed-1", set(closed))

	for name, st := range map[string]*customers{"the writer": s, "a restored store": c.restored(t), "a standby assigned": c.takenOver(t)} {
		if got := mustGet(t, st, "closed-1"); got.CreditLimit != 200 || got.Name != "closed" {
			t.Errorf("%s: Get of the archived record: got %+v, want %+v", name, got, closed)
		}
		if ranged := rangedKeys(t, st); !slices.Equal(ranged, []string{"open"}) {
			t.Errorf("%s: Range visited %v, want [open]: archived records are over", name, ranged)
		}
	}
	if got := c.records(t); total(got) != 3 { // open, closed-1 running, the pointer replacing it
		t.Errorf("changelog records: got %d, want 3", total(got))
	}

	c.expireArchive(t)
	n, err := s.Prune(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("Prune: got %d, %v, want 1 pointer deleted", n, err)
	}
	for name, st := range map[string]*customers{"the writer": s, "a restored store": c.restored(t)} {
		if _, ok, err := st.Get("closed-1"); ok || err != nil {
			t.Errorf("%s: Get after the retention: got present=%v err=%v, want absent", name, ok, err)
		}
		if got := mustGet(t, st, "open"); got.CreditLimit != 100 {
			t.Errorf("%s: the live record: got %+v", name, got)
		}
	}
}

// A record that is over, in a store that expires, stays in the changelog
// as it is until its expiry has passed: read from the local state, by a
// store that restored or took it over too, with its time, and left out of
// Range. Then Prune deletes it, once the expiry has passed by as long as
// an archive's segment lasts (a partition is not read every minute), and
// its key is gone; until then Prune reads none of the partition's
// records. A live record stays.
func TestAnEndedRecordExpires(t *testing.T) {
	t.Parallel()
	c := newExpiringChangelog(t)
	s := c.restored(t)
	update(t, s, "open", set(customer("open", 100)))
	closed := customer("closed-1", 200)
	closed.Name = "closed"
	var written time.Time
	for name, made := range map[string]func(*testing.T) *customers{"the writer": func(*testing.T) *customers { return s },
		"a restored store": func(t *testing.T) *customers { return c.restored(t) }, "a standby assigned": c.takenOver} {
		// Changed each time: the writer holds what another store's Prune
		// deleted, and would not write it again as it is.
		closed.CreditLimit++
		written = time.Now()
		update(t, s, "closed-1", set(closed))
		st := made(t)
		if got := mustGet(t, st, "closed-1"); got.CreditLimit != closed.CreditLimit || got.Name != "closed" {
			t.Errorf("%s: Get of the ended record: got %+v, want %+v", name, got, closed)
		}
		if ranged := rangedKeys(t, st); !slices.Equal(ranged, []string{"open"}) {
			t.Errorf("%s: Range visited %v, want [open]: ended records are over", name, ranged)
		}
		for _, at := range []struct {
			when string
			now  time.Time
			want int
		}{
			{"now", time.Now(), 0},
			{"its expiry passed by less than a segment", written.Add(time.Hour + time.Minute), 0},
			{"its expiry passed by more than a segment", written.Add(time.Hour + messaging.Segment(time.Hour) + time.Second), 1},
		} {
			st.SetNow(func() time.Time { return at.now })
			pages := 0
			st.OnPruneScanned(func(int) { pages++ })
			if n, err := st.Prune(t.Context()); err != nil || n != at.want {
				t.Errorf("%s: Prune %s: got %d, %v, want %d deleted", name, at.when, n, err, at.want)
			}
			if read := pages > 0; read != (at.want > 0) {
				t.Errorf("%s: Prune %s read pages: %v, want %v: a partition is read once its oldest ended record is due", name, at.when, read, at.want > 0)
			}
		}
		if _, ok, err := st.Get("closed-1"); ok || err != nil {
			t.Errorf("%s: Get once expired: got present=%v err=%v, want absent", name, ok, err)
		}
		if got := mustGet(t, st, "open"); got.CreditLimit != 100 {
			t.Errorf("%s: the live record: got %+v", name, got)
		}
	}
	if _, ok, err := c.restored(t).Get("open"); !ok || err != nil {
		t.Errorf("a store restored at the end: open: present=%v err=%v, want present", ok, err)
	}
}

// A write on behalf of a message written longer ago than the expiry less
// a tenth cannot create a key of a store that expires (ErrTooLate): the
// key may be one that was over and deleted since. It changes one that is
// there, over or not, as a message written since creates one.
func TestAMessageTooOldCannotCreateAKey(t *testing.T) {
	t.Parallel()
	c := newExpiringChangelog(t)
	s := c.restored(t)
	closed := customer("closed", 1)
	closed.Name = "closed"
	update(t, s, "open", set(customer("open", 1)))
	update(t, s, "closed", set(closed))
	from := func(written time.Time) context.Context {
		return messaging.WithRecord(t.Context(), messaging.Record{Topic: "commands", Timestamp: written})
	}
	old, recent := from(time.Now().Add(-55*time.Minute)), from(time.Now().Add(-53*time.Minute))
	for key, want := range map[string]error{"new": store.ErrTooLate, "open": nil, "closed": nil} {
		err := s.Update(old, key, func(v *account, _ bool) error { v.CreditLimit = 7; return nil })
		if !errors.Is(err, want) {
			t.Errorf("a write of %s by a message written 55 minutes ago, 1h expiry: got %v, want %v", key, err, want)
		}
	}
	if err := s.Update(recent, "new", set(customer("new", 7))); err != nil {
		t.Errorf("a write of a new key by a message written 53 minutes ago: %v", err)
	}
	for _, key := range []string{"new", "open", "closed"} {
		if got := mustGet(t, s, key); got.CreditLimit != 7 {
			t.Errorf("%s: got %+v, want it written", key, got)
		}
	}
}

// sizedSender records how many records each write holds.
type sizedSender struct {
	store.Sender
	mu    sync.Mutex
	sizes []int
}

func (s *sizedSender) Add(ctx context.Context, msgs []*kgo.Record, over func(bool)) (func() error, error) {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(msgs))
	s.mu.Unlock()
	return s.Sender.Add(ctx, msgs, over)
}

// Prune deletes in transactions of PruneBatch tombstones at most, each
// forgotten locally once committed: a backlog of millions (a retention
// shortened, an instance down for a day) held them all in memory, and
// in one transaction that could outlast its timeout, for ever.
func TestPruneDeletesInBatches(t *testing.T) {
	t.Parallel()
	c := newArchivingChangelog(t)
	sized := &sizedSender{Sender: c.producer}
	s := c.restoredThrough(t, sized)
	n := store.PruneBatch + 1
	for i := range n {
		closed := customer(fmt.Sprint("closed-", i), 1)
		closed.Name = "closed"
		update(t, s, closed.CustomerID, set(closed))
	}
	c.expireArchive(t)
	sized.mu.Lock()
	sized.sizes = nil
	sized.mu.Unlock()
	if pruned, err := s.Prune(t.Context()); err != nil || pruned != n {
		t.Fatalf("Prune: got %d, %v, want %d pointers deleted", pruned, err, n)
	}
	sized.mu.Lock()
	defer sized.mu.Unlock()
	if len(sized.sizes) < 2 || slices.Max(sized.sizes) > store.PruneBatch {
		t.Errorf("Prune's writes: got %v records each, want at most %d each", sized.sizes, store.PruneBatch)
	}
	if _, ok, err := c.restored(t).Get("closed-0"); ok || err != nil {
		t.Errorf("a restored store: Get after the retention: got present=%v err=%v, want absent", ok, err)
	}
}

// newArchivingChangelog is a changelog of two partitions whose stores
// archive the records named "closed".
func newArchivingChangelog(t testing.TB) *changelog {
	t.Helper()
	c := newChangelog(t, 2)
	const archiveTopic = "store-test.archive"
	if err := messaging.EnsureTopics(c.kafka, []contracts.TopicSpec{{Name: archiveTopic, Partitions: 2}}); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	c.archive = &store.Archive[account]{Topic: archiveTopic, Ended: func(v *account) bool { return v.Name == "closed" }}
	return c
}

// newExpiringChangelog is a changelog of two partitions whose stores
// expire the records named "closed" an hour after they were written.
func newExpiringChangelog(t testing.TB) *changelog {
	t.Helper()
	c := newChangelog(t, 2)
	c.expire = &store.Expire[account]{Ended: func(v *account) bool { return v.Name == "closed" }, After: time.Hour}
	return c
}

// rangedKeys is the keys st.Range visits, in its order.
func rangedKeys(t *testing.T, st *customers) []string {
	t.Helper()
	var ranged []string
	if err := st.Range(func(key string, _ *account) bool { ranged = append(ranged, key); return true }); err != nil {
		t.Fatal(err)
	}
	return ranged
}

// expireArchive deletes every record of the archive topic, as its
// retention would.
func (c *changelog) expireArchive(t *testing.T) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(c.kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ends, err := kadm.NewClient(client).ListEndOffsets(t.Context(), c.archive.Topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("end offsets: %v %v", err, ends.Error())
	}
	deleted, err := kadm.NewClient(client).DeleteRecords(t.Context(), kadm.Offsets(ends.Offsets()))
	if err != nil || deleted.Error() != nil {
		t.Fatalf("DeleteRecords: %v %v", err, deleted.Error())
	}
}

// A partition given up while Prune scans it, or before Prune has written
// the tombstones it found, hands its standby no oldest: what Prune left of
// it is not what it counted on, and is read again, once taken back, by
// the next Prune.
func TestAPartitionGivenUpDuringPruneIsReadAgain(t *testing.T) {
	t.Parallel()
	c := newArchivingChangelog(t)
	s := c.restored(t)
	closeAll := func(prefix string) {
		for i := range 20 {
			closed := customer(fmt.Sprint(prefix, i), 1)
			closed.Name = "closed"
			update(t, s, fmt.Sprint(prefix, i), set(closed))
		}
	}
	closeAll("early-")
	c.expireArchive(t)
	closeAll("late-") // the archive now starts past the early ones only
	follow(t, s)
	mark(t, s)
	var once sync.Once
	s.OnPruneScanned(func(int) { once.Do(func() { s.Demote([]int32{0, 1}) }) })
	if _, err := s.Prune(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.OnPruneScanned(nil)
	if err := s.Assign(t.Context(), []int32{0, 1}); err != nil {
		t.Fatal(err)
	}
	c.expireArchive(t)
	if n, err := s.Prune(t.Context()); err != nil || n != 40 {
		t.Errorf("Prune once every pointer expired: got %d, %v, want 40: the early ones the first Prune found but could not delete, and the late ones", n, err)
	}
}

// A pointer written again after Prune found it expired (its key revived,
// or archived again) is not deleted: the tombstone would follow the new
// record in the changelog, and a restore would lose it.
func TestPruneKeepsAKeyWrittenSinceItsScan(t *testing.T) {
	t.Parallel()
	for name, again := range map[string]*account{"revived": customer("x", 7), "archived again": {CustomerID: "x", Name: "closed", CreditLimit: 7}} {
		c := newArchivingChangelog(t)
		s := c.restored(t)
		closed := customer("x", 1)
		closed.Name = "closed"
		update(t, s, "x", set(closed))
		c.expireArchive(t)
		written := false
		s.OnPruneScanned(func(expired int) {
			if expired > 0 && !written { // x's partition: x found expired
				written = true
				update(t, s, "x", set(again))
			}
		})
		if n, err := s.Prune(t.Context()); err != nil || n != 0 || !written {
			t.Errorf("%s: Prune: got %d, %v (x written after its scan: %v), want nothing pruned", name, n, err, written)
		}
		for where, st := range map[string]*customers{"the writer": s, "a restored store": c.restored(t)} {
			if got, ok, err := st.Get("x"); !ok || err != nil || got.CreditLimit != 7 {
				t.Errorf("%s: %s: x: got %+v (present %v, %v), want it as written since the scan", name, where, got, ok, err)
			}
		}
	}
}

// A write of a key that opens between the commit of Prune's tombstone of
// it and its forgetting here, and then aborts, leaves the key absent, as
// the changelog has it: what it put back was the record the tombstone
// deleted.
func TestAnAbortedWriteOfAKeyJustPrunedLeavesItAbsent(t *testing.T) {
	t.Parallel()
	c := newExpiringChangelog(t)
	held := &heldSender{to: c.producer}
	racing := &tombstonesAtOnce{heldSender: held}
	s := c.restoredThrough(t, racing)
	closed := customer("k", 1)
	closed.Name = "closed"
	written := time.Now()
	update(t, s, "k", set(closed))
	held.end(t, true)
	racing.committed = func() { update(t, s, "k", set(customer("k", 5))) }
	s.SetNow(func() time.Time { return written.Add(time.Hour + messaging.Segment(time.Hour) + time.Second) })
	if n, err := s.Prune(t.Context()); err != nil || n != 1 || racing.committed != nil {
		t.Fatalf("Prune: got %d, %v (the write in between made: %v), want 1 pruned", n, err, racing.committed == nil)
	}
	held.end(t, false)
	for where, st := range map[string]*customers{"the writer": s, "a restored store": c.restored(t)} {
		if got, ok, err := st.Get("k"); ok || err != nil {
			t.Errorf("%s: k: got %+v (present %v, %v), want absent: pruned, and the write since aborted", where, got, ok, err)
		}
	}
}

// tombstonesAtOnce commits Prune's tombstones as they are added and runs
// committed once as they are waited for; every other write is held.
type tombstonesAtOnce struct {
	*heldSender
	committed func()
}

func (r *tombstonesAtOnce) Add(ctx context.Context, msgs []*kgo.Record, over func(bool)) (func() error, error) {
	if len(msgs) == 0 || slices.ContainsFunc(msgs, func(m *kgo.Record) bool { return m.Value != nil }) {
		return r.heldSender.Add(ctx, msgs, over)
	}
	if err := r.to.Send(ctx, msgs); err != nil {
		return nil, err
	}
	return func() error {
		if committed := r.committed; committed != nil {
			r.committed = nil
			committed()
		}
		return nil
	}, nil
}

// A record whose archiving aborted is live again, whether or not its
// pointer reached the disk meanwhile: the archive's retention does not
// prune it.
func TestARecordWhoseArchivingAbortedIsNotPruned(t *testing.T) {
	t.Parallel()
	c := newArchivingChangelog(t)
	held := &heldSender{to: c.producer}
	s := c.restoredThrough(t, held)
	update(t, s, "x", set(customer("x", 1)))
	held.end(t, true)

	closed := customer("x", 1)
	closed.Name = "closed"
	update(t, s, "x", set(closed))
	for i := range 2*store.RecentSize + 1 { // the pointer goes from memory to disk
		key := fmt.Sprintf("new-%d", i)
		update(t, s, key, set(customer(key, 9)))
	}
	held.end(t, false)
	c.expireArchive(t)
	if n, err := s.Prune(t.Context()); err != nil || n != 0 {
		t.Errorf("Prune: got %d, %v, want nothing pruned", n, err)
	}
	for name, st := range map[string]*customers{"the writer": s, "a restored store": c.restored(t)} {
		if got := mustGet(t, st, "x"); got.Name == "closed" || got.CreditLimit != 1 {
			t.Errorf("%s: x: got %+v, want it as committed before the aborted archiving", name, got)
		}
		if ranged := rangedKeys(t, st); !slices.Equal(ranged, []string{"x"}) {
			t.Errorf("%s: Range visited %v, want [x]: its archiving aborted, as did the other writes", name, ranged)
		}
	}
}

// A writer that died in a transaction holds the last stable offset back
// until its transaction is aborted; a restore that stopped there would miss
// what later writers committed after it. The restore reads to the end, so
// it waits for the abort (here the broker's, after the dead writer's one
// second timeout) and has the later record.
func TestRestoreWaitsForATransactionLeftOpen(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, 1)
	later := c.restored(t) // owns the partition before the transaction begins
	dead, err := kgo.NewClient(kgo.SeedBrokers(c.kafka.Brokers...), kgo.TransactionalID("dead-writer"),
		kgo.TransactionTimeout(time.Second), kgo.DefaultProduceTopic(c.topic))
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	if err := dead.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := dead.ProduceSync(t.Context(), &kgo.Record{Key: []byte("never"), Value: []byte("aborted")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	update(t, later, "customer-1", set(customer("customer-1", 100)))

	r := c.restored(t)
	if got, ok, err := r.Get("customer-1"); err != nil || !ok || got.CreditLimit != 100 {
		t.Errorf("customer-1 after a restore: got %+v %v %v, want the record committed after the open transaction", got, ok, err)
	}
	if _, ok, _ := r.Get("never"); ok {
		t.Error("the aborted record was restored")
	}
}

// A store's partition of a key is the one the producers write it to: the
// Java client's murmur2 partitioner (franz-go's copy of it).
func TestPartitionOfIsTheProducersPartition(t *testing.T) {
	java := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	keys := []string{"", "a", "ab", "abc", "abcd", "abcde", "héllo wörld", "4f1c0b7e-9a2d-4c55-8e0f-1b2c3d4e5f60"}
	for i := range 2000 {
		keys = append(keys, fmt.Sprintf("customer-%d", i), strings.Repeat("x", i%37)+fmt.Sprint(i))
	}
	for _, n := range []int32{1, 3, contracts.Partitions} {
		for _, key := range keys {
			got := store.PartitionOf(key, n)
			if want := java.Partition(&kgo.Record{Key: []byte(key)}, int(n)); int(got) != want {
				t.Fatalf("PartitionOf(%q, %d): got %d, want %d (Java's murmur2)", key, n, got, want)
			}
		}
	}
}

// A store keeps its latest writes in memory and moves them to its DB a
// generation at a time: wherever a record's latest version is, in memory
// or in the DB under an older one, a read finds that version, and a scan
// finds every record once.
func TestEveryRecordIsFoundAcrossTheGenerationsInMemory(t *testing.T) {
	t.Parallel()
	s := benchStore(t)
	n := 3*store.RecentSize + 1
	want := map[string]int64{}
	write := func(i int, limit int64) {
		key := fmt.Sprintf("c%d", i)
		update(t, s, key, func(v *account, _ bool) error { v.CustomerID, v.CreditLimit = key, limit; return nil })
		want[key] = limit
	}
	for i := range n {
		write(i, int64(i))
	}
	for i := 0; i < n; i += 7 {
		write(i, int64(i)+1_000_000) // the DB has the first version of the oldest ones
	}
	for key, limit := range want {
		v, ok, err := s.Get(key)
		if err != nil || !ok || v.CreditLimit != limit {
			t.Fatalf("Get(%s): got %+v, %v, %v; want credit limit %d", key, v, ok, err, limit)
		}
	}
	seen := map[string]bool{}
	if err := s.Range(func(key string, v *account) bool {
		if seen[key] || v.CreditLimit != want[key] {
			t.Errorf("Range: %s again (%v) or with credit limit %d, want %d", key, seen[key], v.CreditLimit, want[key])
		}
		seen[key] = true
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n || s.Len() != n {
		t.Errorf("Range saw %d records and Len says %d, want %d", len(seen), s.Len(), n)
	}
}

// takenOver returns a new store that followed every partition of the
// changelog (its standby) up to its end, then was assigned them all.
func (c *changelog) takenOver(t *testing.T) *customers {
	t.Helper()
	s := c.newStore(t)
	ends := c.records(t)
	if err := s.Standby(slices.Collect(maps.Keys(ends))); err != nil {
		t.Fatalf("Standby: %v", err)
	}
	follow(t, s)
	for p, end := range ends {
		awaitFollowed(t, s, p, end)
	}
	if err := s.Assign(t.Context(), nil); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	return s
}

// mark calls s.Mark once its standby, which follow started, has its
// client.
func mark(t *testing.T, s *customers) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err = s.Mark(t.Context()); err == nil || time.Now().After(deadline) {
			break // Follow has its client, or it is too late
		}
	}
	if err != nil {
		t.Fatalf("Mark: %v", err)
	}
}

// follow runs s's standby until the test ends.
func follow(t *testing.T, s *customers) {
	ctx, cancel := context.WithCancel(t.Context())
	followed := make(chan error, 1)
	go func() { followed <- s.Follow(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-followed; err != nil {
			t.Errorf("Follow: %v", err)
		}
	})
}

// awaitFollowed waits until s's standby has read partition p up to end.
func awaitFollowed(t *testing.T, s *customers, p int32, end int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if next, ok := s.Following(p); ok && next >= end {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby did not read partition %d up to %d within 10s", p, end)
		}
	}
}

// A record the standby reads while a takeover lists the partition's
// offsets (the former owner's last commit) is not a reason to read the
// whole partition again: the takeover reads on from where the standby is.
func TestARecordFollowedWhileATakeoverListsOffsetsIsNotReadAgain(t *testing.T) {
	t.Parallel()
	const keys = 20
	c := newChangelog(t, 1)
	owner := c.restored(t)
	for i := range keys {
		key := fmt.Sprintf("customer-%d", i)
		update(t, owner, key, set(customer(key, int64(i))))
	}
	var armed atomic.Bool
	var standby *customers
	var hookErr error
	c.opts = append(slices.Clone(c.opts), kgo.WithHooks(onListOffsets(func() {
		if !armed.CompareAndSwap(true, false) {
			return
		}
		before, _ := standby.Following(0)
		if hookErr = owner.Update(context.Background(), "late", set(customer("late", 1))); hookErr != nil {
			return
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if next, ok := standby.Following(0); !ok || next > before {
				return
			}
		}
		hookErr = errors.New("the standby did not read the late record within 10 s")
	})))
	standby = c.newStore(t)
	if err := standby.Standby([]int32{0}); err != nil {
		t.Fatalf("Standby: %v", err)
	}
	follow(t, standby)
	awaitFollowed(t, standby, 0, c.records(t)[0])
	armed.Store(true)
	if err := standby.Assign(t.Context(), []int32{0}); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if armed.Load() {
		t.Fatal("the takeover listed no offsets")
	}
	if n := standby.RecordsRestored(); n > 1 {
		t.Errorf("the takeover read %d records, want the late one at most: the standby had read them all", n)
	}
	if got := mustGet(t, standby, "late"); got.CreditLimit != 1 {
		t.Errorf("late: got credit limit %d, want 1", got.CreditLimit)
	}
}

// onListOffsets is a kgo hook that calls fn each time its client has read
// the answer to a ListOffsets request: the offsets are listed, and the
// client does not go on before fn returns.
type onListOffsets func()

func (fn onListOffsets) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil && key == (&kmsg.ListOffsetsRequest{}).Key() {
		fn()
	}
}

// A store that follows the partitions another instance owns (its standby)
// reads, when it is assigned them, only the records it has not followed
// yet, and then holds what a restore from the start would.
func TestATakeoverReadsOnlyWhatTheStandbyHasNotFollowed(t *testing.T) {
	t.Parallel()
	const keys, later = 48, 4
	c := newChangelog(t, 2)
	owner := c.restored(t)
	for i := range keys {
		key := fmt.Sprintf("customer-%d", i)
		update(t, owner, key, set(customer(key, int64(i))))
	}

	standby := c.newStore(t)
	if err := standby.Standby([]int32{0, 1}); err != nil {
		t.Fatalf("Standby: %v", err)
	}
	follow(t, standby)
	ends := c.records(t)
	for p, end := range ends {
		awaitFollowed(t, standby, p, end)
	}
	if standby.Len() != 0 {
		t.Errorf("Len of a store that owns nothing: got %d, want 0", standby.Len())
	}
	if lag, err := standby.StandbyLag(t.Context()); lag != 0 || err != nil {
		t.Errorf("StandbyLag once caught up: got %d (error %v), want 0", lag, err)
	}

	// What is written after the standby caught up, and a key deleted.
	for i := range later {
		key := fmt.Sprintf("customer-%d", keys+i)
		update(t, owner, key, set(customer(key, 7)))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.kafka.Brokers...))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: c.topic, Key: []byte("customer-0")}).FirstErr(); err != nil {
		t.Fatalf("produce a tombstone: %v", err)
	}
	if lag, err := standby.StandbyLag(t.Context()); lag < 0 || lag > later+1 || err != nil {
		t.Errorf("StandbyLag after %d more records: got %d (error %v), want at most %d", later+1, lag, err, later+1)
	}

	if err := standby.Assign(t.Context(), []int32{0, 1}); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if n := standby.RecordsRestored(); n > later+1 {
		t.Errorf("records the takeover read: got %d, want at most the %d written after the standby caught up", n, later+1)
	}
	for p := range ends {
		if _, ok := standby.Following(p); ok {
			t.Errorf("partition %d is still followed once owned", p)
		}
	}
	fresh := c.restored(t)
	if n := fresh.RecordsRestored(); n != keys+later+1 {
		t.Errorf("records a restore from the start read: got %d, want %d", n, keys+later+1)
	}
	if standby.Len() != fresh.Len() || fresh.Len() != keys+later-1 {
		t.Errorf("Len: got %d after the takeover and %d after a restore, want %d", standby.Len(), fresh.Len(), keys+later-1)
	}
	for i := range keys + later {
		key := fmt.Sprintf("customer-%d", i)
		got, gok, gerr := standby.Get(key)
		want, wok, werr := fresh.Get(key)
		if gerr != nil || werr != nil || gok != wok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: after the takeover %+v (found %v, error %v), after a restore %+v (found %v, error %v)", key, got, gok, gerr, want, wok, werr)
		}
	}
}

// newHeld returns a changelog whose stores write through a heldSender.
func newHeld(t *testing.T) (*changelog, *heldSender) {
	c := newChangelog(t, 2)
	held := &heldSender{to: c.producer}
	c.sender = held
	return c, held
}

// committed returns a store on a changelog of newHeld whose keys hold a
// customer of limit 1 each, committed.
func committed(t *testing.T, keys ...string) (*changelog, *heldSender, *customers) {
	c, held := newHeld(t)
	s := c.restored(t)
	for _, key := range keys {
		update(t, s, key, set(customer(key, 1)))
	}
	held.end(t, true)
	return c, held, s
}

// heldSender holds what it is given, as an open transaction does, until
// the test ends it: committed, the records are written to Kafka. As a
// session does, it refuses a write made from what an aborted transaction
// had written.
type heldSender struct {
	to      messaging.SyncSender
	records []*kgo.Record
	overs   []func(bool)
	epoch   uint64
	adds    int // Add's calls
}

func (h *heldSender) Epoch() uint64 { return h.epoch }

func (h *heldSender) Add(ctx context.Context, msgs []*kgo.Record, over func(bool)) (func() error, error) {
	if messaging.Stale(ctx, h.epoch) {
		return nil, messaging.ErrStaleRead
	}
	h.adds++
	h.records = append(h.records, msgs...)
	if over != nil {
		h.overs = append(h.overs, over)
	}
	return func() error { return nil }, nil
}

// AddAcked writes acked at once, to learn their offsets (an archived
// record then stays if the transaction aborts, as an orphan an aborted
// transaction's record is to a reader of uncommitted records), and holds
// what then builds from them.
func (h *heldSender) AddAcked(ctx context.Context, acked []*kgo.Record, then func() []*kgo.Record, over func(bool)) (func() error, error) {
	if messaging.Stale(ctx, h.epoch) {
		return nil, messaging.ErrStaleRead
	}
	if err := h.to.Send(ctx, acked); err != nil {
		return nil, err
	}
	return h.Add(ctx, then(), over)
}

func (h *heldSender) end(t *testing.T, commit bool) {
	t.Helper()
	if commit {
		if err := h.to.Send(t.Context(), h.records); err != nil {
			t.Fatalf("write the committed records: %v", err)
		}
	}
	for _, over := range h.overs {
		over(commit)
	}
	if !commit && len(h.records) > 0 {
		h.epoch++
	}
	h.records, h.overs = nil, nil
}

// A write made from a record that a transaction wrote (visible before
// its commit) is not made in a later transaction once that one aborted:
// it would commit what was derived from a record that never was. It is
// made again from what the key holds after the abort.
func TestAWriteMadeFromAnAbortedRecordIsMadeAgain(t *testing.T) {
	t.Parallel()
	c, held, s := committed(t, "a")
	update(t, s, "a", set(customer("a", 2))) // not committed yet

	var seen []int64
	err := s.Update(t.Context(), "a", func(v *account, _ bool) error {
		seen = append(seen, v.CreditLimit)
		if len(seen) == 1 {
			held.end(t, false) // the transaction that wrote 2 aborts meanwhile
		}
		v.CreditLimit += 10
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if !slices.Equal(seen, []int64{2, 1}) {
		t.Errorf("the values the update was made from: got %v, want [2 1] (the aborted one, then the committed one)", seen)
	}
	held.end(t, true)
	if got := mustGet(t, s, "a"); got.CreditLimit != 11 {
		t.Errorf("a: got limit %d, want 11 (1 + 10: the aborted 2 never was)", got.CreditLimit)
	}
	if got := mustGet(t, c.restored(t), "a"); got.CreditLimit != 11 {
		t.Errorf("a restored from the changelog: got limit %d, want 11", got.CreditLimit)
	}
}

// An update that writes nothing, made from a write whose transaction is
// still open, learns that transaction's end: it answered from what that
// transaction wrote. Made again because the transaction aborted meanwhile,
// it learns once, from the try that counted.
func TestAnUpdateThatWritesNothingLearnsTheEndOfWhatItRead(t *testing.T) {
	t.Parallel()
	_, held, s := committed(t, "a")

	var ends []bool
	then := func(committed bool) { ends = append(ends, committed) }
	unchanged := func(*account, bool) ([]*kgo.Record, error) { return nil, nil }

	update(t, s, "a", set(customer("a", 2))) // not committed yet
	if err := s.UpdateAndSendThen(t.Context(), "a", unchanged, then); err != nil {
		t.Fatalf("UpdateAndSendThen: %v", err)
	}
	if len(ends) != 0 {
		t.Errorf("then learnt %v before the transaction it read from ended", ends)
	}
	held.end(t, false)
	if !slices.Equal(ends, []bool{false}) {
		t.Errorf("then learnt %v, want [false]: the transaction it read from aborted", ends)
	}

	ends = nil
	update(t, s, "a", set(customer("a", 3))) // not committed yet
	tries := 0
	err := s.UpdateAndSendThen(t.Context(), "a", func(*account, bool) ([]*kgo.Record, error) {
		if tries++; tries == 1 {
			held.end(t, false) // the transaction that wrote 3 aborts meanwhile
		}
		return nil, nil
	}, then)
	if err != nil {
		t.Fatalf("UpdateAndSendThen: %v", err)
	}
	if tries != 2 || !slices.Equal(ends, []bool{true}) {
		t.Errorf("made %d times, then learnt %v; want made twice, and [true] once: the second try read what committed", tries, ends)
	}
}

// GetCommitted answers what committed: a key whose write is in an open
// transaction reads as before it, absent if it was new, and as written
// once the transaction commits.
func TestGetCommittedReadsNoOpenWrite(t *testing.T) {
	t.Parallel()
	_, held, s := committed(t, "a")
	update(t, s, "a", set(customer("a", 2)))
	update(t, s, "b", set(customer("b", 2)))
	if got := mustGet(t, s, "a"); got.CreditLimit != 2 {
		t.Errorf("Get(a) with its write open: got %d, want 2, the open write", got.CreditLimit)
	}
	committed := func(key string) (int64, bool) {
		t.Helper()
		v, ok, err := s.GetCommitted(key)
		if err != nil {
			t.Fatalf("GetCommitted(%s): %v", key, err)
		}
		if !ok {
			return 0, false
		}
		return v.CreditLimit, true
	}
	if limit, ok := committed("a"); !ok || limit != 1 {
		t.Errorf("GetCommitted(a) with its write open: got %d (present %v), want 1, as committed", limit, ok)
	}
	if _, ok := committed("b"); ok {
		t.Error("GetCommitted(b), new in an open write: present, want absent")
	}
	held.end(t, true)
	if limit, ok := committed("a"); !ok || limit != 2 {
		t.Errorf("GetCommitted(a) once committed: got %d (present %v), want 2", limit, ok)
	}
	if limit, ok := committed("b"); !ok || limit != 2 {
		t.Errorf("GetCommitted(b) once committed: got %d (present %v), want 2", limit, ok)
	}
}

// GetCommitted never answers a write whose transaction aborted, even as
// the abort puts the key back while it reads: it read the entry as
// written, then, apart, whether its write was open, and an abort between
// the two left the aborted entry read as committed.
func TestGetCommittedNeverReadsAnAbortedWrite(t *testing.T) {
	t.Parallel()
	_, held, s := committed(t, "a")
	var (
		stop    atomic.Bool
		aborted atomic.Int64
		readers sync.WaitGroup
	)
	for range 2 {
		readers.Go(func() {
			for !stop.Load() {
				if v, ok, err := s.GetCommitted("a"); err == nil && ok && v.CreditLimit != 1 {
					aborted.Add(1)
				}
			}
		})
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && aborted.Load() == 0; {
		update(t, s, "a", set(customer("a", 2)))
		held.end(t, false)
	}
	stop.Store(true)
	readers.Wait()
	if n := aborted.Load(); n > 0 {
		t.Errorf("GetCommitted(a) answered the aborted write %d times, want never", n)
	}
}

// A write is read back before its transaction ends; once it aborts, the
// store holds again what committed, in memory and on disk, without
// reading Kafka again.
func TestAnAbortedWriteIsPutBack(t *testing.T) {
	t.Parallel()
	c, held, s := committed(t, "a", "b")

	update(t, s, "a", set(customer("a", 2)))
	update(t, s, "c", set(customer("c", 2)))
	update(t, s, "a", set(customer("a", 3)))
	// Enough keys that the older ones go from memory to disk.
	many := 2*store.RecentSize + 1
	for i := range many {
		key := fmt.Sprintf("new-%d", i)
		update(t, s, key, set(customer(key, 9)))
	}
	if got := mustGet(t, s, "a"); got.CreditLimit != 3 {
		t.Fatalf("a before the abort: got limit %d, want 3 (its own write)", got.CreditLimit)
	}
	held.end(t, false)

	if got := mustGet(t, s, "a"); got.CreditLimit != 1 {
		t.Errorf("a after the abort: got limit %d, want 1", got.CreditLimit)
	}
	for _, key := range []string{"c", "new-0", fmt.Sprintf("new-%d", many-1)} {
		if _, ok, err := s.Get(key); ok || err != nil {
			t.Errorf("%s, written only in the aborted transaction: got found=%v error=%v, want it absent", key, ok, err)
		}
	}
	if s.Len() != 2 {
		t.Errorf("Len after the abort: got %d, want 2", s.Len())
	}

	update(t, s, "a", set(customer("a", 4)))
	held.end(t, true)
	fresh := c.restored(t)
	for _, key := range []string{"a", "b", "c", "new-1"} {
		got, gok, gerr := s.Get(key)
		want, wok, werr := fresh.Get(key)
		if gerr != nil || werr != nil || gok != wok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: held %+v (found %v, error %v), restored %+v (found %v, error %v)", key, got, gok, gerr, want, wok, werr)
		}
	}
	if s.Len() != fresh.Len() {
		t.Errorf("Len: held %d, restored %d", s.Len(), fresh.Len())
	}
}

// An instance killed before it could remove its local state leaves its
// directory behind; the next DB opened under the same parent removes it,
// but not one an open DB holds, nor one being opened.
func TestADirectoryAKilledInstanceLeftIsRemoved(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	old := time.Now().Add(-time.Hour)
	live, err := store.OpenDB(parent, "p", false)
	if err != nil {
		t.Fatalf("OpenDB: %v", err)
	}
	defer live.Close()
	abandoned, opening := filepath.Join(parent, "p-killed"), filepath.Join(parent, "p-opening")
	for _, dir := range []string{abandoned, opening} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "LOCK"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, lock := range []string{filepath.Join(abandoned, "LOCK"), filepath.Join(live.Dir(), "LOCK")} {
		if err := os.Chtimes(lock, old, old); err != nil {
			t.Fatal(err)
		}
	}

	next, err := store.OpenDB(parent, "p", false)
	if err != nil {
		t.Fatalf("OpenDB: %v", err)
	}
	defer next.Close()
	for dir, want := range map[string]bool{abandoned: false, opening: true, live.Dir(): true, next.Dir(): true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s: got present=%v, want %v", filepath.Base(dir), err == nil, want)
		}
	}
}

// A partition the store dropped before it was given up (a write it could
// not put back after an abort) holds nothing to follow on from: taken
// back, it is read from its start, not from where its changelog ended.
func TestAPartitionDroppedBeforeItIsGivenUpIsReadAgainWhole(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, 2)
	first := c.restored(t)
	follow(t, first)
	update(t, first, "customer-0", set(customer("customer-0", 7)))
	p, _ := first.Partition("customer-0")
	mark(t, first)
	first.Revoke([]int32{p}) // dropped, as after a failed put-back
	first.Demote([]int32{0, 1})
	if err := first.Assign(t.Context(), []int32{p}); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if got, ok, err := first.Get("customer-0"); err != nil || !ok || got.CreditLimit != 7 {
		t.Errorf("Get(customer-0) after its partition was taken back: got %+v, %v, %v; want its record", got, ok, err)
	}
}

// hookedSender runs then once, after a write was sent and committed and
// before it returns to its writer: a rebalance that comes in between.
type hookedSender struct {
	messaging.SyncSender
	then func()
}

func (h *hookedSender) Add(ctx context.Context, msgs []*kgo.Record, over func(bool)) (func() error, error) {
	wait, err := h.SyncSender.Add(ctx, msgs, over)
	if then := h.then; then != nil {
		h.then = nil
		then()
	}
	return wait, err
}

// A partition given up while a write of it is between its commit and its
// writer is dropped, not followed from a mark past that write: taken back,
// it serves the write, where it served the value before it.
func TestAPartitionGivenUpDuringAWriteIsReadAgain(t *testing.T) {
	t.Parallel()
	c := newChangelog(t, 2)
	hooked := &hookedSender{SyncSender: c.producer}
	s := c.restoredThrough(t, hooked)
	follow(t, s)
	update(t, s, "a", set(customer("a", 1)))
	p, _ := s.Partition("a")
	hooked.then = func() {
		mark(t, s)
		s.Demote([]int32{p})
	}
	update(t, s, "a", set(customer("a", 2)))
	if _, ok := s.Following(p); ok {
		awaitFollowed(t, s, p, c.records(t)[p])
	}
	if err := s.Assign(t.Context(), []int32{p}); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if got := mustGet(t, s, "a"); got.CreditLimit != 2 {
		t.Errorf("a, its partition taken back: got credit limit %d, want the committed 2", got.CreditLimit)
	}
}

// So is one given up between the commit of Prune's tombstones and their
// forgetting here: followed from a mark past the tombstones, taken back it
// would serve again the records they deleted.
func TestAPartitionGivenUpWhilePruneForgetsIsReadAgain(t *testing.T) {
	t.Parallel()
	c := newExpiringChangelog(t)
	hooked := &hookedSender{SyncSender: c.producer}
	s := c.restoredThrough(t, hooked)
	follow(t, s)
	closed := customer("closed-1", 1)
	closed.Name = "closed"
	update(t, s, "closed-1", set(closed))
	p, _ := s.Partition("closed-1")
	s.SetNow(func() time.Time { return time.Now().Add(time.Hour + messaging.Segment(time.Hour) + time.Minute) })
	hooked.then = func() {
		mark(t, s)
		s.Demote([]int32{p})
	}
	if n, err := s.Prune(t.Context()); err != nil || n != 1 {
		t.Fatalf("Prune: %d, %v", n, err)
	}
	if _, ok := s.Following(p); ok {
		awaitFollowed(t, s, p, c.records(t)[p])
	}
	if err := s.Assign(t.Context(), []int32{p}); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if _, ok, err := s.Get("closed-1"); ok || err != nil {
		t.Errorf("closed-1, its partition taken back after its tombstone committed: present %v, %v; want absent", ok, err)
	}
}

// A store that gives its partitions up in a rebalance keeps their records
// and follows them from where their changelogs ended then (Mark, Demote):
// taking them back reads only what their owner wrote meanwhile. A
// partition whose write is not over yet is dropped instead.
func TestAPartitionGivenUpIsFollowedFromWhereItWasLeft(t *testing.T) {
	t.Parallel()
	const keys = 40
	c := newChangelog(t, 2)
	held := &heldSender{to: c.producer}
	first := c.restoredThrough(t, held)
	follow(t, first)
	for i := range keys {
		key := fmt.Sprintf("customer-%d", i)
		update(t, first, key, set(customer(key, int64(i))))
	}
	held.end(t, true)
	// customer-0's partition has a write whose transaction is not over.
	open, _ := first.Partition("customer-0")
	update(t, first, "customer-0", set(customer("customer-0", 99)))

	mark(t, first)
	first.Demote([]int32{0, 1})
	if _, ok := first.Following(open); ok {
		t.Errorf("partition %d, with a write not over, is followed; want it dropped", open)
	}
	if _, ok := first.Following(1 - open); !ok {
		t.Errorf("partition %d is not followed after Demote", 1-open)
	}
	held.end(t, false)
	if first.Len() != 0 {
		t.Errorf("Len after Demote: got %d, want 0", first.Len())
	}

	second := c.restoredThrough(t, nil)
	for i := range keys / 2 {
		key := fmt.Sprintf("customer-%d", i)
		update(t, second, key, set(customer(key, int64(1000+i))))
	}
	awaitFollowed(t, first, 1-open, c.records(t)[1-open])
	before := first.RecordsRestored()
	if err := first.Assign(t.Context(), []int32{1 - open}); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if n := first.RecordsRestored() - before; n != 0 {
		t.Errorf("records read to take partition %d back: got %d, want 0", 1-open, n)
	}
	fresh := c.restored(t)
	for i := range keys {
		key := fmt.Sprintf("customer-%d", i)
		if p, _ := first.Partition(key); p != 1-open {
			continue
		}
		got, want := mustGet(t, first, key), mustGet(t, fresh, key)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s taken back: got %+v, want %+v", key, got, want)
		}
	}
}

// Outside a handler, an answer made from a write whose transaction is not
// over joins that transaction and waits for it: a create sent again while
// the first is in flight does not answer that it exists before it does.
// Made from a committed write, it answers at once.
func TestAnAnswerMadeFromAnOpenWriteWaitsForIt(t *testing.T) {
	t.Parallel()
	c, held := newHeld(t)
	s := c.restored(t)
	update(t, s, "a", set(customer("a", 1))) // not committed yet
	exists := errors.New("exists")
	create := func(_ *account, found bool) error {
		if found {
			return exists
		}
		return nil
	}
	adds := held.adds
	if err := s.Update(t.Context(), "a", create); !errors.Is(err, exists) {
		t.Fatalf("a created again while its write is open: got %v, want the answer that it exists", err)
	}
	if held.adds != adds+1 {
		t.Errorf("the answer joined %d transactions, want 1: the open write's", held.adds-adds)
	}
	held.end(t, true)
	adds = held.adds
	if err := s.Update(t.Context(), "a", create); !errors.Is(err, exists) {
		t.Fatalf("a created again once committed: got %v, want the answer that it exists", err)
	}
	if held.adds != adds {
		t.Errorf("an answer from a committed write joined %d transactions, want none", held.adds-adds)
	}
}

// closedHook counts the Kafka clients closed.
type closedHook struct{ n *atomic.Int32 }

func (h closedHook) OnClientClosed(*kgo.Client) { h.n.Add(1) }

// Close closes the client that read archived records: a process's stop
// left it running, its connections open and its goroutines retrying a
// broker that had gone.
func TestCloseClosesTheArchiveReader(t *testing.T) {
	t.Parallel()
	c := newArchivingChangelog(t)
	closed := new(atomic.Int32)
	c.opts = []kgo.Opt{kgo.WithHooks(closedHook{closed})}
	s := c.restored(t)
	ended := customer("closed-1", 200)
	ended.Name = "closed"
	update(t, s, "closed-1", set(ended))
	if got := mustGet(t, s, "closed-1"); got.Name != "closed" {
		t.Fatalf("Get of the archived record: got %+v", got)
	}
	before := closed.Load() // the restore's clients
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := closed.Load() - before; got != 1 {
		t.Errorf("clients closed by Close: got %d, want 1, the archive's reader", got)
	}
}

// slowAcks delays the acknowledgement of every record of topic.
type slowAcks struct {
	topic string
	by    time.Duration
}

func (h slowAcks) OnProduceRecordUnbuffered(r *kgo.Record, _ error) {
	if r.Topic == h.topic {
		time.Sleep(h.by)
	}
}

// noOwner owns every partition, and restores nothing.
type noOwner struct{}

func (noOwner) Assigned(context.Context, []int32, int32) error { return nil }
func (noOwner) Revoked(bool)                                   {}
func (noOwner) Distrust(error)                                 {}
func (noOwner) Restore(context.Context) (bool, error)          { return true, nil }

// A record archived outside a handler (a saga a timeout or an operator
// ended) commits with its pointer, in one transaction: the session's loop,
// woken by the archived record, committed it alone while its writer waited
// for its acknowledgement, and an abort of the pointer's transaction left
// an archived end of a record that then went on.
func TestAnArchivedRecordCommitsWithItsPointer(t *testing.T) {
	t.Parallel()
	c := newArchivingChangelog(t)
	if c.stack.Cluster() == nil {
		t.Skip("needs the embedded broker")
	}
	session := messaging.NewSession(messaging.SessionConfig{Kafka: c.kafka, Group: "archiving", TransactionalID: "archiving-1",
		Owner: noOwner{}, Hooks: []kgo.Hook{slowAcks{c.archive.Topic, 50 * time.Millisecond}}}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = session.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	takes := func() bool { _, err := session.Add(context.Background(), nil, nil); return err == nil }
	for deadline := time.Now().Add(20 * time.Second); !takes(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the session took no writes within 20s")
		}
	}
	s := c.restoredThrough(t, session)
	update(t, s, "closed-1", set(customer("closed-1", 200)))

	ends := c.stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Observe: true, Count: -1})
	defer ends.Remove()
	closed := customer("closed-1", 200)
	closed.Name = "closed"
	update(t, s, "closed-1", set(closed)) // outside a handler: returns once committed
	if got := ends.Hits(); got != 1 {
		t.Errorf("transactions ended by the archiving: got %d, want 1, the archived record with its pointer", got)
	}
	c.sender = nil
	if got := mustGet(t, c.restored(t), "closed-1"); got.Name != "closed" {
		t.Errorf("a restored store: got %+v, want the archived record", got)
	}
}

// Prune reads a partition's records only when the archive's start has
// passed a pointer of it: a store knows the oldest offset its pointers
// point to from what its restore read, from what its standby replica
// followed before it took the partition over (or what it held before it
// gave it up), or from Prune's last scan,
// and with nothing expired it reads none of the sagas ended within the
// retention. Once expired, each prunes every pointer it holds.
func TestPruneReadsNothingWhileNothingExpired(t *testing.T) {
	t.Parallel()
	c := newArchivingChangelog(t)
	s := c.restored(t)
	closeAccount := func(key string) {
		closed := customer(key, 1)
		closed.Name = "closed"
		update(t, s, key, set(closed))
	}
	for i := range 20 {
		closeAccount(fmt.Sprint("closed-", i))
	}
	prune := func(name string, st *customers, want int, read bool) {
		t.Helper()
		pages := 0
		st.OnPruneScanned(func(int) { pages++ })
		if n, err := st.Prune(t.Context()); err != nil || n != want || (pages > 0) != read {
			t.Errorf("Prune of %s: got %d, %v after reading %d pages, want %d pruned, reading pages %v", name, n, err, pages, want, read)
		}
	}
	prune("the store that wrote them", s, 0, false)
	prune("a restored store", c.restored(t), 0, false)
	prune("a store that took the partitions over", c.takenOver(t), 0, false)
	follow(t, s)
	mark(t, s)
	s.Demote([]int32{0, 1})
	if err := s.Assign(t.Context(), []int32{0, 1}); err != nil {
		t.Fatal(err)
	}
	prune("the store that gave the partitions up and took them back", s, 0, false)

	closeAccount("closed-late")
	c.expireArchive(t)
	restored, taken := c.restored(t), c.takenOver(t)
	prune("the store that wrote them, once the archive expired", s, 21, true)
	prune("a restored store, once the archive expired", restored, 21, true)
	prune("a store that took the partitions over, once the archive expired", taken, 21, true)
	prune("the store that wrote them, once pruned", s, 0, false)
}

// lateAcks is a Sender whose AddAcked gives up before Kafka acknowledges
// its records (a write's budget spent, its batch abandoned): franz-go sets
// their offsets later, and done says when.
type lateAcks struct {
	store.Sender
	done sync.WaitGroup
}

func (l *lateAcks) AddAcked(_ context.Context, acked []*kgo.Record, _ func() []*kgo.Record, _ func(bool)) (func() error, error) {
	l.done.Go(func() {
		for _, r := range acked {
			r.Offset = 41
		}
	})
	return nil, messaging.ErrCommitPending
}

// A write to archive that fails before its record's acknowledgement does
// not read the record's offset, which franz-go may still be setting (the
// race detector saw the store read it as the error came back).
func TestAnArchiveWriteThatGivesUpLeavesItsRecordAlone(t *testing.T) {
	t.Parallel()
	c := newArchivingChangelog(t)
	late := &lateAcks{Sender: c.producer}
	s := c.restoredThrough(t, late)
	err := s.Update(t.Context(), "a", set(&account{CustomerID: "a", Name: "closed"}))
	late.done.Wait()
	if !errors.Is(err, messaging.ErrCommitPending) {
		t.Fatalf("Update: got %v, want ErrCommitPending", err)
	}
	if _, ok, _ := s.Get("a"); ok {
		t.Error("a write that failed is read back")
	}
}

// A start removes the state directories that killed instances left under
// its STATE_DIR: those whose Pebble lock no process holds, taken more than
// a minute ago (a younger one may be a DB being opened). It keeps the
// others.
func TestAStartRemovesTheDirectoriesOfKilledInstances(t *testing.T) {
	parent := t.TempDir()
	const name = "kafkasaga-x"
	old := time.Now().Add(-2 * time.Minute)
	lockAt := func(dir string, at time.Time) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		lock := filepath.Join(dir, "LOCK")
		if err := os.WriteFile(lock, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(lock, at, at); err != nil {
			t.Fatal(err)
		}
	}
	killed, young := filepath.Join(parent, name+"-killed"), filepath.Join(parent, name+"-young")
	lockAt(killed, old)
	lockAt(young, time.Now())
	live, err := store.OpenDB(parent, name, false)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := os.Chtimes(filepath.Join(live.Dir(), "LOCK"), old, old); err != nil {
		t.Fatal(err)
	}
	next, err := store.OpenDB(parent, name, false)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	for dir, kept := range map[string]bool{killed: false, young: true, live.Dir(): true, next.Dir(): true} {
		if _, err := os.Stat(dir); (err == nil) != kept {
			t.Errorf("%s: kept %t, want %t (stat: %v)", filepath.Base(dir), err == nil, kept, err)
		}
	}
}

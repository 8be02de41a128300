package console

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Of what one fetch brings, the archive's records come after the state
// topic's, whatever order the broker answered in.
func TestInOrderPutsTheLaterTopicsLast(t *testing.T) {
	part := func(topic string, partition int32) kgo.FetchTopic {
		return kgo.FetchTopic{Topic: topic, Partitions: []kgo.FetchPartition{{Partition: partition}}}
	}
	fetches := kgo.Fetches{
		{Topics: []kgo.FetchTopic{part("s.ended", 0), part("s", 0)}},
		{Topics: []kgo.FetchTopic{part("s.ended", 1), part("dead", 0), part("s", 1)}},
	}
	var got []string
	inOrder(fetches, func(topic string) bool { return topic == "s.ended" }, func(p kgo.FetchTopicPartition) {
		got = append(got, p.Topic)
	})
	if want := []string{"s", "dead", "s", "s.ended", "s.ended"}; !slices.Equal(got, want) {
		t.Errorf("partitions visited: got %q, want %q", got, want)
	}
}

// Retention that deletes what was left of a partition to read after the
// reader listed its offsets, before it reached them (an idle dead-letter
// partition, a rarely used archive), leaves no record to wait for: the
// reader is caught up all the same, once it sees the partition's start
// past what it awaited.
func TestCaughtUpOnceRetentionDeletedWhatWasLeftToRead(t *testing.T) {
	opts, client := newCluster(t, kfake.SeedTopics(1, "dead"))
	if err := client.ProduceSync(t.Context(), &kgo.Record{Topic: "dead", Value: []byte("letter")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	from := func(topic string, _ int32, start, end int64) int64 {
		// Retention runs between the listing and the first fetch.
		deleted, err := kadm.NewClient(client).DeleteRecords(t.Context(), kadm.Offsets{topic: {0: {Topic: topic, At: end}}})
		if err == nil {
			err = deleted.Error()
		}
		if err != nil {
			t.Error(err)
		}
		return start
	}
	ctx, cancel := context.WithCancel(t.Context())
	caught, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- follow(ctx, opts, []string{"dead"}, reader{from: from, apply: func(*kgo.Record) error { return nil },
			caughtUp: func() { close(caught) }, logf: func(msg string, args ...any) { t.Log(append([]any{msg}, args...)...) }})
	}()
	select {
	case <-caught:
	case <-time.After(30 * time.Second):
		t.Error("not caught up within 30 s of its partition's records deleted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// Of an archive, the console reads to list the sagas the newest MaxEnded
// of each partition's share, twice over, and for its stats those ended
// within the day they count (here within the first part: nothing more):
// not every saga of the retention, which it would read at each start. An
// older one is still read by id, from Kafka.
func TestTheConsoleReadsOfTheArchiveWhatItKeeps(t *testing.T) {
	opts, client := newCluster(t, kfake.SeedTopics(1, "x.sagas", contracts.TopicDeadLetter), kfake.SeedTopics(2, "x.sagas.ended"))
	s := sagas{}
	var recs []*kgo.Record
	for i := range 60 {
		id := fmt.Sprintf("s%02d", i)
		s[id] = instance(id, "CreateOrder", saga.StateCompleted, "", i, 0)
		written := time.Now().Add(-2 * statsKept) // ended two days ago...
		if i >= 56 {
			written = time.Now() // ...but the last four
		}
		recs = append(recs, &kgo.Record{Topic: "x.sagas.ended", Key: []byte(id), Value: []byte(id), Timestamp: written})
	}
	if err := client.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		maxEnded int
		read     func(int64) bool
	}{
		"keep 6":   {6, func(n int64) bool { return n >= 6 && n <= 2*2*3 }},
		"keep all": {0, func(n int64) bool { return n == 60 }},
	} {
		c := newConsole(t, Config{Kgo: opts, Sagas: s, MaxEnded: tt.maxEnded})
		runUntilCaughtUp(t, c)
		if n := c.records.Load(); !tt.read(n) {
			t.Errorf("%s: read %d sagas of the archive's 60", name, n)
		}
		if got := c.index.List(Query{Limit: 100, Now: time.Now()}).Sagas; len(got) < min(tt.maxEnded, 4) || (tt.maxEnded > 0 && len(got) > tt.maxEnded) {
			t.Errorf("%s: the index lists %d sagas, want the newest, at most MaxEnded", name, len(got))
		}
	}
}

// newCluster starts an embedded broker of one node with the given
// topics for the test, and returns the client options that reach it and
// a client on them.
func newCluster(t *testing.T, topics ...kfake.Opt) ([]kgo.Opt, *kgo.Client) {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, topics...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	opts := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return opts, client
}

// A start lists the sagas once it has read the newest of each archive
// partition, not the whole day of them its stats count: it reads the rest
// afterwards, while the list is served and the stats answer 503, and the
// stats then count every saga of the day, and the list holds the newest,
// as those of a console that reads them all first.
func TestTheListIsReadyBeforeTheDayOfStats(t *testing.T) {
	opts, client := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter))
	s := sagas{}
	var recs []*kgo.Record
	for i := range 60 {
		id := fmt.Sprintf("s%02d", i)
		state, started := saga.StateCompleted, 30*i // half a minute apart, all ended within the day
		if i%3 == 0 {
			state = saga.StateRejected
		}
		if i == 5 {
			started = 30 * 70 // ended among the first, started last: one of the newest
		}
		s[id] = instance(id, "CreateOrder", state, "", started, 0)
		recs = append(recs, &kgo.Record{Topic: "x.sagas.ended", Key: []byte(id), Value: []byte(id)})
	}
	if err := client.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	all := newConsole(t, Config{Kgo: opts, Sagas: s}) // MaxEnded 0: every saga before it lists one
	all.index.now = func() time.Time { return now }
	runUntilCaughtUp(t, all)
	if !all.statsReady.Load() {
		t.Fatal("the stats of a console that read every saga are not ready once it caught up")
	}

	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	c := newConsole(t, Config{Kgo: opts, Sagas: blocking{s, "s00", release}, MaxEnded: 6})
	c.index.now = func() time.Time { return now }
	run(t, c)
	t.Cleanup(releaseOnce)                                                 // before the stop: the held decode would hold it
	eventually(t, func() error { return isSet(&c.caughtUp, "caught up") }) // while the day's oldest saga, s00, is held
	list, stats := httptest.NewRecorder(), httptest.NewRecorder()
	c.listSagas(list, httptest.NewRequest("GET", "/api/sagas", nil))
	c.stats(stats, httptest.NewRequest("GET", "/api/stats", nil))
	if list.Code != http.StatusOK || stats.Code != http.StatusServiceUnavailable {
		t.Errorf("before the day is read: the list answers %d, the stats %d; want 200 and 503", list.Code, stats.Code)
	}
	if n := c.records.Load(); n != 12 {
		t.Errorf("to list the sagas it read %d, want 12: twice MaxEnded of the one partition", n)
	}
	releaseOnce()
	eventually(t, func() error { return isSet(&c.statsReady, "stats ready") })
	if n := c.backfilled.Load(); n != 48 {
		t.Errorf("for the stats it read %d more, want the 48 older", n)
	}
	if got, want := c.index.Stats(now, 62), all.index.Stats(now, 62); !slices.Equal(got, want) {
		t.Errorf("stats: got %v, want those of the console that read every saga, %v", got, want)
	}
	if ids, _ := listAll(t, c.index, Query{Limit: 10, Now: now}); !slices.Equal(ids, []string{"s05", "s59", "s58", "s57", "s56", "s55"}) {
		t.Errorf("it lists %q, want the 6 newest", ids)
	}
}

// blocking decodes as its decoder does, but holds the record block until
// release closes.
type blocking struct {
	Decoder
	block   string
	release <-chan struct{}
}

func (b blocking) Decode(v []byte) (serde.Record, error) {
	if string(v) == b.block {
		<-b.release
	}
	return b.Decoder.Decode(v)
}

// The backfill passes over a record of no value, as the index's reader
// does, rather than log it as an undecodable saga at Error, once for
// every such record of the day, at every start.
func TestTheBackfillPassesOverARecordOfNoValue(t *testing.T) {
	opts, client := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter))
	s := sagas{}
	recs := []*kgo.Record{{Topic: "x.sagas.ended", Key: []byte("gone")}} // the oldest: the backfill's
	for i := range 20 {
		id := fmt.Sprintf("s%02d", i)
		s[id] = instance(id, "CreateOrder", saga.StateCompleted, "", 30*i, 0)
		recs = append(recs, &kgo.Record{Topic: "x.sagas.ended", Key: []byte(id), Value: []byte(id)})
	}
	if err := client.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	log := &lockedBuffer{}
	c := newConsole(t, Config{Kgo: opts, Sagas: s, MaxEnded: 6,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelError}))})
	c.index.now = func() time.Time { return t0.Add(time.Hour) }
	run(t, c)
	eventually(t, func() error { return isSet(&c.statsReady, "stats ready") })
	if n := c.backfilled.Load(); n != 8 {
		t.Errorf("the backfill read %d sagas, want the 8 older ones", n)
	}
	if logged := log.String(); logged != "" {
		t.Errorf("logged at Error:\n%s", logged)
	}
}

// lockedBuffer is a buffer the console's goroutines may write a log to
// while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

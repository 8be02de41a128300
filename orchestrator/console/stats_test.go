package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/saga"
)

// withStats decodes as its sagas do, and the stats' snapshot as JSON.
type withStats struct{ sagas }

func (withStats) Encode(_ string, v serde.Record) ([]byte, error) {
	b, err := json.Marshal(v)
	return append([]byte("stats:"), b...), err
}

func (c withStats) Decode(b []byte) (serde.Record, error) {
	if rest, ok := bytes.CutPrefix(b, []byte("stats:")); ok {
		var s contracts.ConsoleStats
		return &s, json.Unmarshal(rest, &s)
	}
	return c.sagas.Decode(b)
}

// A console writes a snapshot of the minutes closed once it has read the
// day; a start takes them as they are and reads, of the archive, only
// what ended since: its stats equal those of a console that read every
// saga, a saga whose start a closed minute counts and whose end came
// later included.
func TestAStartTakesTheStatsOfTheClosedMinutes(t *testing.T) {
	opts, client := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter),
		kfake.SeedTopics(8, contracts.TopicConsoleStats))
	s := sagas{}
	codec := withStats{s}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		if err := client.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 60 { // in the first two hours
		id := fmt.Sprintf("s%02d", i)
		state := saga.StateCompleted
		if i%3 == 0 {
			state = saga.StateRejected
		}
		s[id] = instance(id, "CreateOrder", state, "", 120*i, 0)
		produce(&kgo.Record{Topic: "x.sagas.ended", Key: []byte(id), Value: []byte(id), Timestamp: at(time.Duration(120*i+1) * time.Second)})
	}
	started := 2*time.Hour + 30*time.Minute // running: its start's minute is closed
	s["late-running"] = instance("late", "CreateOrder", saga.StateRunning, "reserve_credit", int(started.Seconds()), 0)
	produce(&kgo.Record{Topic: "x.sagas", Key: []byte("late"), Value: []byte("late-running"), Timestamp: at(started + time.Second)})

	now := at(3 * time.Hour)
	first := newConsole(t, Config{Kgo: opts, Sagas: codec, Stats: codec, MaxEnded: 6})
	first.index.now = func() time.Time { return now }
	stop := run(t, first)
	eventually(t, func() error { return isSet(&first.statsReady, "stats ready") })
	stop() // writes its snapshot
	closed := at(3*time.Hour - statsSettle)
	if got := first.index.ClosedBefore(); !got.Equal(closed) {
		t.Fatalf("the first console closed the minutes before %v, want %v: %v before it caught up", got, closed, statsSettle)
	}

	// The running saga ends, and five more run, after the minutes closed.
	late := instance("late", "CreateOrder", saga.StateCompleted, "", int(started.Seconds()), 0)
	late.History[1].At = at(3*time.Hour + 10*time.Minute)
	s["late-ended"] = late
	produce(&kgo.Record{Topic: "x.sagas.ended", Key: []byte("late"), Value: []byte("late-ended"), Timestamp: at(3*time.Hour + 10*time.Minute)})
	for i := range 5 {
		id := fmt.Sprintf("n%d", i)
		begun := 3*time.Hour + 5*time.Minute + time.Duration(i)*time.Minute
		s[id] = instance(id, "CreateOrder", saga.StateCompleted, "", int(begun.Seconds()), 0)
		produce(&kgo.Record{Topic: "x.sagas.ended", Key: []byte(id), Value: []byte(id), Timestamp: at(begun + time.Second)})
	}

	now = at(5*time.Hour + time.Minute)
	all := newConsole(t, Config{Kgo: opts, Sagas: s}) // reads every saga, and no snapshot
	all.index.now = func() time.Time { return now }
	runUntilCaughtUp(t, all)

	c := newConsole(t, Config{Kgo: opts, Sagas: codec, Stats: codec, MaxEnded: 6})
	c.index.now = func() time.Time { return now }
	run(t, c)
	eventually(t, func() error { return isSet(&c.statsReady, "stats ready") })
	if n := c.backfilled.Load(); n != 0 {
		t.Errorf("for the stats it read %d sagas older than the list's, want none: the snapshot's minutes hold them (in one of 8 partitions)", n)
	}
	if got, want := c.index.Stats(now, 400), all.index.Stats(now, 400); !slices.Equal(got, want) {
		t.Errorf("stats: got %v,\nwant those of the console that read every saga, %v", got, want)
	}
}

// A minute closes once every partition has been read past what was
// written five minutes after it: one partition held behind (its reader
// waits for the registry) holds the close back, whatever the others read,
// and the saga it holds counts once read.
func TestAMinuteClosesOnceEveryPartitionIsReadPastIt(t *testing.T) {
	opts, client := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter, contracts.TopicConsoleStats))
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	slow := instance("slow", "CreateOrder", saga.StateCompleted, "", int((70 * time.Minute).Seconds()), 0)
	fast := instance("fast", "CreateOrder", saga.StateRunning, "reserve_credit", int((110 * time.Minute).Seconds()), 0)
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	codec := withStats{sagas{"slow": slow, "fast": fast}}
	var clock atomic.Int64 // Unix ms: the console reads it on its own goroutines
	clock.Store(at(time.Hour).UnixMilli())
	c := newConsole(t, Config{Kgo: opts, Sagas: blocking{codec, "slow", release}, Stats: codec})
	c.index.now = func() time.Time { return time.UnixMilli(clock.Load()).UTC() }
	run(t, c)
	t.Cleanup(releaseOnce) // before the stop: the held decode would hold it
	statsReady := func() error { return isSet(&c.statsReady, "stats ready") }
	eventually(t, statsReady)

	clock.Store(at(2 * time.Hour).UnixMilli())
	// The fast saga first: the console has one reader, and a fetch that
	// brought the slow saga alone would hold it before the fast one.
	produce := func(r *kgo.Record) {
		if err := client.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(&kgo.Record{Topic: "x.sagas", Key: []byte("fast"), Value: []byte("fast"), Timestamp: at(110 * time.Minute)})
	eventually(t, func() error {
		if c.index.Len() == 0 {
			return errors.New("the fast saga is not read")
		}
		return nil
	})
	produce(&kgo.Record{Topic: "x.sagas.ended", Key: []byte("slow"), Value: []byte("slow"), Timestamp: at(71 * time.Minute)})
	admin := kadm.NewClient(client)
	var p probe
	c.probeRead(t.Context(), admin, &p)
	c.probeRead(t.Context(), admin, &p) // the archive's partition is not read past the first probe's end
	c.saveStats(t.Context(), client)
	if got, want := c.index.ClosedBefore(), at(time.Hour-statsSettle); !got.Equal(want) {
		t.Fatalf("with the archive held behind, the minutes before %v are closed, want those before %v only", got, want)
	}

	releaseOnce()
	eventually(t, func() error { // applied, then its partition told read
		if c.index.Len() < 2 || !c.readPast(p.ends) {
			return errors.New("the slow saga is not read")
		}
		return nil
	})
	c.probeRead(t.Context(), admin, &p)
	c.saveStats(t.Context(), client)
	if got, want := c.index.ClosedBefore(), at(2*time.Hour-statsSettle); !got.Equal(want) {
		t.Errorf("once read, the minutes before %v are closed, want before %v", got, want)
	}
	minutes := c.index.Stats(at(2*time.Hour), 61)
	if i := slices.IndexFunc(minutes, func(m Minute) bool { return m.At.Equal(at(70 * time.Minute)) }); i < 0 || minutes[i].Started != 1 || minutes[i].Completed != 1 {
		t.Errorf("the slow saga's start and end are not counted in their minutes: %v", minutes)
	}
}

// A snapshot closes no minute this instance's clock would still count
// into: one written by an instance whose clock ran ahead closes only the
// minutes before this clock's now less statsSettle.
func TestASnapshotFromAClockAheadClosesNoMinuteStillCounted(t *testing.T) {
	opts, client := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter, contracts.TopicConsoleStats))
	now := t0.Add(time.Hour)
	codec := withStats{sagas{"s": instance("s", "CreateOrder", saga.StateCompleted, "", int((58 * time.Minute).Seconds()), 0)}}
	ahead, err := codec.Encode(contracts.TopicConsoleStats, &contracts.ConsoleStats{ClosedBefore: now.Add(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.ProduceSync(t.Context(),
		&kgo.Record{Topic: contracts.TopicConsoleStats, Key: []byte(statsKey), Value: ahead},
		&kgo.Record{Topic: "x.sagas.ended", Key: []byte("s"), Value: []byte("s"), Timestamp: t0.Add(58 * time.Minute)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c := newConsole(t, Config{Kgo: opts, Sagas: codec, Stats: codec})
	c.index.now = func() time.Time { return now }
	runUntilCaughtUp(t, c)
	if got, want := c.index.ClosedBefore(), now.Add(-statsSettle); got.After(want) {
		t.Errorf("the minutes before %v are closed, want none after %v", got, want)
	}
	if m := c.index.Stats(now, 3)[0]; m.Started != 1 || m.Completed != 1 { // t0 + 58 min
		t.Errorf("the saga of %v counts %+v, want its start and end", m.At, m)
	}
}

// A saga dropped at its pointer while the reader has yet to read its
// archived copy keeps its start counted: a minute closed between the two
// loses none, and the copy counts it not again.
func TestAStartCountsOnceWhenItsMinuteClosesBetweenPointerAndCopy(t *testing.T) {
	now := t0.Add(time.Hour)
	ended := instance("s", "CreateOrder", saga.StateCompleted, "", 0, 0)
	ended.History[1].At = now.Add(-time.Minute)
	c := newConsole(t, Config{Sagas: sagas{"running": instance("s", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 0), "ended": ended}})
	c.index.now = func() time.Time { return now }
	c.read("x.sagas.ended", 0, 0)
	for _, r := range []*kgo.Record{
		{Topic: "x.sagas", Key: []byte("s"), Value: []byte("running")},
		{Topic: "x.sagas", Key: []byte("s"), Value: []byte{}, Offset: 1, Headers: []kgo.RecordHeader{{Key: contracts.HeaderArchivedAt, Value: []byte("0")}}},
	} {
		if err := c.apply(r); err != nil {
			t.Fatal(err)
		}
	}
	c.index.closeMinutes(now.Add(-statsSettle))
	if err := c.apply(&kgo.Record{Topic: "x.sagas.ended", Key: []byte("s"), Value: []byte("ended")}); err != nil {
		t.Fatal(err)
	}
	minutes := c.index.Stats(now, 61)
	if minutes[0].Started != 1 || minutes[59].Completed != 1 {
		t.Errorf("the saga counts %+v at its start and %+v at its end, want one start and one completion", minutes[0], minutes[59])
	}
}

// An ended saga let go past MaxEnded whose running state is read late (a
// state partition read behind its archive's) counts its start once, a
// minute closed before its pointer is read included.
func TestASagaLetGoCountsItsStartOnceWhenReadLate(t *testing.T) {
	now := t0.Add(time.Hour)
	c := newConsole(t, Config{MaxEnded: 1, Sagas: sagas{
		"a": instance("a", "CreateOrder", saga.StateCompleted, "", 0, 0), "b": instance("b", "CreateOrder", saga.StateCompleted, "", 600, 0),
		"a running": instance("a", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 0),
	}})
	c.index.now = func() time.Time { return now }
	apply := func(r *kgo.Record) {
		t.Helper()
		if err := c.apply(r); err != nil {
			t.Fatal(err)
		}
	}
	apply(&kgo.Record{Topic: "x.sagas.ended", Key: []byte("a"), Value: []byte("a")})
	apply(&kgo.Record{Topic: "x.sagas.ended", Key: []byte("b"), Value: []byte("b"), Offset: 1}) // a, started first, is let go
	c.read("x.sagas.ended", 0, 2)
	apply(&kgo.Record{Topic: "x.sagas", Key: []byte("a"), Value: []byte("a running"), Offset: 5})
	c.index.closeMinutes(now.Add(-statsSettle))
	apply(&kgo.Record{Topic: "x.sagas", Key: []byte("a"), Value: []byte{}, Offset: 6, Headers: []kgo.RecordHeader{{Key: contracts.HeaderArchivedAt, Value: []byte("0")}}})
	if m := c.index.Stats(now, 61)[0]; m.Started != 1 {
		t.Errorf("the minute of a's start counts %+v, want one start", m)
	}
}

// The probe's ends count the transactions' markers: the reader, which
// reads them too, is read past them once it has read a committed
// transaction and an aborted one, and the minutes close.
func TestAProbeIsReadPastTheTransactionsMarkers(t *testing.T) {
	opts, _ := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter, contracts.TopicConsoleStats))
	writer, err := kgo.NewClient(append(opts, kgo.TransactionalID("writer"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	var clock atomic.Int64
	clock.Store(t0.Add(time.Hour).UnixMilli())
	codec := withStats{sagas{"a": instance("a", "CreateOrder", saga.StateRunning, "reserve_credit", 3600, 0)}}
	c := newConsole(t, Config{Kgo: opts, Sagas: codec, Stats: codec})
	c.index.now = func() time.Time { return time.UnixMilli(clock.Load()).UTC() }
	run(t, c)
	eventually(t, func() error { return isSet(&c.statsReady, "stats ready") })

	clock.Store(t0.Add(2 * time.Hour).UnixMilli())
	for _, commit := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort} {
		if err := writer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := writer.ProduceSync(t.Context(), &kgo.Record{Topic: "x.sagas", Key: []byte("a"), Value: []byte("a")},
			&kgo.Record{Topic: "x.sagas.ended", Key: []byte("x"), Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := writer.EndTransaction(t.Context(), commit); err != nil {
			t.Fatal(err)
		}
	}
	admin := kadm.NewClient(writer)
	var p probe
	c.probeRead(t.Context(), admin, &p)
	eventually(t, func() error {
		if !c.readPast(p.ends) {
			return fmt.Errorf("not read past %v", p.ends)
		}
		return nil
	})
	c.probeRead(t.Context(), admin, &p)
	c.saveStats(t.Context(), writer)
	if got, want := c.index.ClosedBefore(), t0.Add(2*time.Hour-statsSettle); !got.Equal(want) {
		t.Errorf("the minutes before %v are closed, want before %v", got, want)
	}
}

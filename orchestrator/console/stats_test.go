package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

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
	opts, client := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter, contracts.TopicConsoleStats))
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
	// Two running: the snapshot closes the minute the first started in.
	started := 2*time.Hour + 30*time.Minute
	s["late-running"] = instance("late", "CreateOrder", saga.StateRunning, "reserve_credit", int(started.Seconds()), 0)
	s["newest"] = instance("newest", "CreateOrder", saga.StateRunning, "reserve_credit", int((3 * time.Hour).Seconds()), 0)
	produce(&kgo.Record{Topic: "x.sagas", Key: []byte("late"), Value: []byte("late-running"), Timestamp: at(started + time.Second)},
		&kgo.Record{Topic: "x.sagas", Key: []byte("newest"), Value: []byte("newest"), Timestamp: at(3*time.Hour + time.Second)})

	now := at(5 * time.Hour) // the records read say when the minutes closed, not the clock
	first := newConsole(t, Config{Kgo: opts, Sagas: codec, Stats: codec, MaxEnded: 6})
	first.index.now = func() time.Time { return now }
	stop := run(t, first)
	eventually(t, func() error { return isSet(&first.statsReady, "stats ready") })
	stop() // writes its snapshot
	if got, want := first.index.ClosedBefore(), at(3*time.Hour-statsSettle); !got.Equal(want) {
		t.Fatalf("the first console closed the minutes before %v, want %v: %v after the newest saga record read", got, want, statsSettle)
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
		t.Errorf("for the stats it read %d sagas older than the list's, want none: the snapshot's minutes hold them", n)
	}
	if got, want := c.index.Stats(now, 400), all.index.Stats(now, 400); !slices.Equal(got, want) {
		t.Errorf("stats: got %v,\nwant those of the console that read every saga, %v", got, want)
	}
}

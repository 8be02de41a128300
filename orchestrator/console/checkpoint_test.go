package console

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/saga"
)

// A start reads each state topic from the checkpoint its console left
// when it stopped: the oldest record that is a running saga's latest, not
// the pointers of every saga ended before it. A saga that started before
// others ended is still listed running, and the ended ones, from the
// archive, as ended.
func TestAStartReadsTheStateTopicsFromTheCheckpoint(t *testing.T) {
	opts, client := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter))
	s := sagas{}
	var recs []*kgo.Record
	pointer := []kgo.RecordHeader{{Key: contracts.HeaderArchivedAt, Value: []byte("0")}}
	end := func(id string, started int) { // a running state, the archived end, the pointer to it
		s[id+" running"] = instance(id, "CreateOrder", saga.StateRunning, "reserve_credit", started, 1)
		s[id] = instance(id, "CreateOrder", saga.StateCompleted, "", started, 0)
		recs = append(recs, &kgo.Record{Topic: "x.sagas", Key: []byte(id), Value: []byte(id + " running")},
			&kgo.Record{Topic: "x.sagas.ended", Key: []byte(id), Value: []byte(id)},
			&kgo.Record{Topic: "x.sagas", Key: []byte(id), Value: []byte{}, Headers: pointer})
	}
	for i := range 20 {
		end(fmt.Sprintf("a%02d", i), i)
	}
	s["r"] = instance("r", "CreateOrder", saga.StateRunning, "reserve_credit", 20, 1)
	recs = append(recs, &kgo.Record{Topic: "x.sagas", Key: []byte("r"), Value: []byte("r")}) // offset 40 of x.sagas
	for i := range 20 {
		end(fmt.Sprintf("b%02d", i), 21+i)
	}
	if err := client.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		group string
		read  int64
	}{
		{"the first start", "console", 81 + 40},  // x.sagas whole, the archive whole
		{"a start after it", "console", 41 + 40}, // x.sagas from r's state on
		{"a start with no group", "", 81 + 40},   // x.sagas whole again
		{"a start with the group again", "console", 41 + 40},
	} {
		c, err := New(Config{Types: []SagaType{{Type: "CreateOrder", StateTopic: "x.sagas", EndedTopic: "x.sagas.ended"}},
			Kgo: opts, Sagas: s, DeadLetters: s, Group: tt.group})
		if err != nil {
			t.Fatal(err)
		}
		runUntilCaughtUp(t, c)
		if n := c.read.Load(); n != tt.read {
			t.Errorf("%s: read %d records, want %d", tt.name, n, tt.read)
		}
		running, _ := listAll(t, c.index, Query{State: saga.StateRunning, Limit: 10, Now: t0})
		all, total := listAll(t, c.index, Query{Limit: 10, Now: t0})
		if !slices.Equal(running, []string{"r"}) || total != 41 || len(all) != 41 {
			t.Errorf("%s: running %q of %d sagas, want r of 41", tt.name, running, total)
		}
	}
}

// runUntilCaughtUp runs c until it has caught up, then stops it: Run has
// returned.
func runUntilCaughtUp(t *testing.T, c *Console) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !c.caughtUp.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !c.caughtUp.Load() {
		t.Fatal("not caught up within 30 s")
	}
}

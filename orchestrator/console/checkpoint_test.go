package console

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/saga"
)

// A start reads each state topic from the checkpoint its console left
// when it stopped: in each partition, the oldest record that is a running
// saga's latest, or where it read to if none runs; not the pointers of
// every saga ended before it. A saga that started before others ended is
// still listed running, the ended ones, from the archive, as ended.
func TestAStartReadsTheStateTopicsFromTheCheckpoint(t *testing.T) {
	opts, _ := newCluster(t, kfake.SeedTopics(3, "x.sagas"), kfake.SeedTopics(1, "x.sagas.ended", contracts.TopicDeadLetter))
	s := sagas{}
	running := func(id string, started, partition int32) *kgo.Record {
		s[id+" running"] = instance(id, "CreateOrder", saga.StateRunning, "reserve_credit", int(started), 1)
		return &kgo.Record{Topic: "x.sagas", Partition: partition, Key: []byte(id), Value: []byte(id + " running")}
	}
	ended := func(id string, started, partition int32) []*kgo.Record { // its archived end, the pointer to it
		s[id] = instance(id, "CreateOrder", saga.StateCompleted, "", int(started), 0)
		return []*kgo.Record{{Topic: "x.sagas.ended", Key: []byte(id), Value: []byte(id)},
			{Topic: "x.sagas", Partition: partition, Key: []byte(id), Value: []byte{},
				Headers: []kgo.RecordHeader{{Key: contracts.HeaderArchivedAt, Value: []byte("0")}}}}
	}
	var recs []*kgo.Record
	for i := range int32(30) { // ten ended sagas in each partition
		recs = append(append(recs, running(fmt.Sprintf("a%02d", i), i, i%3)), ended(fmt.Sprintf("a%02d", i), i, i%3)...)
	}
	recs = append(recs, running("r", 30, 1)) // running since before the ten sagas after it ended
	for i := range int32(10) {
		recs = append(append(recs, running(fmt.Sprintf("b%02d", i), 31+i, 1)), ended(fmt.Sprintf("b%02d", i), 31+i, 1)...)
	}
	produce := func(recs ...*kgo.Record) {
		client, err := kgo.NewClient(append(slices.Clone(opts), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		if err := client.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(recs...)
	for _, tt := range []struct {
		name    string
		then    []*kgo.Record // produced before the start
		group   string
		read    int64
		running []string
	}{
		{"the first start", nil, "console", 81 + 40, []string{"r"}},          // x.sagas whole, the archive whole
		{"a start after it", nil, "console", 21 + 40, []string{"r"}},         // partition 1 from r's state on, 0 and 2 nothing
		{"a start with no group", nil, "", 81 + 40, []string{"r"}},           // x.sagas whole again
		{"a start once r ended", ended("r", 30, 1), "console", 22 + 41, nil}, // from r's state on still
		{"a start with none running", nil, "console", 41, nil},               // the archive only
	} {
		produce(tt.then...)
		c := newConsole(t, Config{Kgo: opts, Sagas: s, Group: tt.group})
		runUntilCaughtUp(t, c)
		if n := c.records.Load(); n != tt.read {
			t.Errorf("%s: read %d records, want %d", tt.name, n, tt.read)
		}
		running, _ := listAll(t, c.index, Query{State: saga.StateRunning, Limit: 10, Now: t0})
		if _, total := listAll(t, c.index, Query{Limit: 10, Now: t0}); !slices.Equal(running, tt.running) || total != 41 {
			t.Errorf("%s: running %q of %d sagas, want %q of 41", tt.name, running, total, tt.running)
		}
	}
}

// A checkpoint is of its topic: once the topic is deleted and made again,
// a start reads the new one from its start, though it has passed the
// checkpoint an instance running meanwhile committed of the old one.
func TestACheckpointOfATopicMadeAgainIsNotRead(t *testing.T) {
	opts, client := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter))
	s := sagas{"r": instance("r", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1)}
	for i := range 5 {
		id := fmt.Sprintf("a%d", i)
		s[id] = instance(id, "CreateOrder", saga.StateCompleted, "", i, 0)
	}
	states := func(ids ...string) {
		var recs []*kgo.Record
		for _, id := range ids {
			recs = append(recs, &kgo.Record{Topic: "x.sagas", Key: []byte(id), Value: []byte(id)})
		}
		producer, err := kgo.NewClient(opts...) // a new one: the old one would write to the deleted topic's id
		if err != nil {
			t.Fatal(err)
		}
		defer producer.Close()
		if err := producer.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	states("a0", "a1", "a2")
	old := newConsole(t, Config{Kgo: opts, Sagas: s, Group: "console"})
	runUntilCaughtUp(t, old) // at offset 3
	admin := kadm.NewClient(client)
	if _, err := admin.DeleteTopic(t.Context(), "x.sagas"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error { // the deletion completes
		created, err := admin.CreateTopic(t.Context(), 1, 1, nil, "x.sagas")
		if err == nil {
			err = created.Err
		}
		return err
	})
	// An instance running meanwhile commits offset 3 of the topic it read,
	// once its client has learnt the new topic's id.
	fresh, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	old.commitCheckpoint(t.Context(), kadm.NewClient(fresh))
	if committed, err := kadm.NewClient(fresh).FetchOffsets(t.Context(), "console"); err != nil || committed["x.sagas"][0].At != 3 {
		t.Fatalf("committed %v (%v), want offset 3 of x.sagas", committed, err)
	}
	states("r", "a3", "a4", "a0")
	c := newConsole(t, Config{Kgo: opts, Sagas: s, Group: "console"})
	runUntilCaughtUp(t, c)
	if running, _ := listAll(t, c.index, Query{State: saga.StateRunning, Limit: 10, Now: t0}); !slices.Equal(running, []string{"r"}) {
		t.Errorf("running %q, want r, the new topic's first record", running)
	}
}

// run runs c until the test ends or stop is called; stop returns once Run
// has.
func run(t *testing.T, c *Console) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(stop)
	return stop
}

// runUntilCaughtUp runs c until it has caught up, then stops it: Run has
// returned.
func runUntilCaughtUp(t *testing.T, c *Console) {
	t.Helper()
	defer run(t, c)()
	eventually(t, func() error { return isSet(&c.caughtUp, "caught up") })
}

// eventually calls cond until it returns nil, and fails the test with its
// last error if that takes more than 30 s.
func eventually(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 30 s: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// isSet says whether b is set, or that what is not.
func isSet(b *atomic.Bool, what string) error {
	if !b.Load() {
		return fmt.Errorf("not %s", what)
	}
	return nil
}

// The checkpoint finds a running saga's topic by its type: a saga read
// from a state topic its type is not kept in stops the checkpoints, rather
// than let another topic's checkpoint pass it.
func TestASagaInAnotherTypesTopicStopsTheCheckpoints(t *testing.T) {
	s := sagas{
		"a": instance("a", "A", saga.StateRunning, "first", 0, 1),
		"b": instance("b", "B", saga.StateRunning, "first", 0, 1),
	}
	c := newConsole(t, Config{Types: []SagaType{{Type: "A", StateTopic: "a.sagas", EndedTopic: "a.sagas.ended"},
		{Type: "B", StateTopic: "b.sagas", EndedTopic: "b.sagas.ended"}}, Sagas: s, Group: "console"})
	for _, p := range []topicPartition{{"a.sagas", 0}, {"b.sagas", 0}} {
		c.read(p.topic, p.partition, 0)
	}
	if err := c.apply(&kgo.Record{Topic: "a.sagas", Key: []byte("a"), Value: []byte("a"), Offset: 5}); err != nil {
		t.Fatal(err)
	}
	c.read("a.sagas", 0, 6) // as follow does, once the fetch's records of the partition are applied
	c.read("a.sagas.ended", 0, 9)
	if got := c.checkpoint()["a.sagas"][0].At; got != 5 {
		t.Errorf("a.sagas's checkpoint: got %d, want 5, a's record", got)
	}
	if got, ok := c.checkpoint()["a.sagas.ended"]; ok {
		t.Errorf("the checkpoint holds the archive's position %v, want the state topics' only", got)
	}
	if err := c.apply(&kgo.Record{Topic: "a.sagas", Key: []byte("b"), Value: []byte("b"), Offset: 6}); err != nil {
		t.Fatal(err)
	}
	c.read("a.sagas", 0, 7)
	if got := c.checkpoint(); got != nil {
		t.Errorf("checkpoint once a B saga was read from a.sagas: got %v, want none", got)
	}
}

// A start that Kafka refuses the checkpoint for good (an ACL that does not
// allow the group) reads the state topics from their start, rather than
// ask forever and never list a saga.
func TestAStartRefusedItsCheckpointReadsFromTheStart(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cluster.ControlKey(int16(kmsg.OffsetFetch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		req := kreq.(*kmsg.OffsetFetchRequest)
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.Version = req.Version
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		for _, g := range req.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, nil, true
	})
	opts := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	s := sagas{"r": instance("r", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1)}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.ProduceSync(t.Context(), &kgo.Record{Topic: "x.sagas", Key: []byte("r"), Value: []byte("r")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c := newConsole(t, Config{Kgo: opts, Sagas: s, Group: "console"})
	runUntilCaughtUp(t, c)
	if running, _ := listAll(t, c.index, Query{State: saga.StateRunning, Limit: 10, Now: t0}); !slices.Equal(running, []string{"r"}) {
		t.Errorf("running %q, want r", running)
	}
}

// A console commits its checkpoint once caught up only: restarted without
// one and stopped a second later, it has read less than the others, and
// would set theirs back.
func TestAConsoleNotCaughtUpCommitsNoCheckpoint(t *testing.T) {
	opts, client := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter))
	c := newConsole(t, Config{Kgo: opts, Sagas: sagas{}, Group: "console"})
	c.read("x.sagas", 0, 7)
	admin := kadm.NewClient(client)
	committed := func() int64 {
		got, err := admin.FetchOffsets(t.Context(), "console")
		if errors.Is(err, kerr.GroupIDNotFound) {
			return -1
		}
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := got.Lookup("x.sagas", 0); ok {
			return o.At
		}
		return -1
	}
	c.commitCheckpoint(t.Context(), admin)
	if got := committed(); got != -1 {
		t.Errorf("not caught up, it committed offset %d", got)
	}
	c.caughtUp.Store(true)
	c.commitCheckpoint(t.Context(), admin)
	if got := committed(); got != 7 {
		t.Errorf("caught up, it committed offset %d, want 7", got)
	}
}

// A console commits its checkpoint as soon as it has caught up, not a
// minute later: an instance killed within that minute leaves one all the
// same.
func TestACheckpointIsCommittedOnceCaughtUp(t *testing.T) {
	opts, client := newCluster(t, kfake.SeedTopics(1, "x.sagas", "x.sagas.ended", contracts.TopicDeadLetter))
	s := sagas{"a": instance("a", "CreateOrder", saga.StateCompleted, "", 0, 0)}
	if err := client.ProduceSync(t.Context(), &kgo.Record{Topic: "x.sagas", Key: []byte("a"), Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c := newConsole(t, Config{Kgo: opts, Sagas: s, Group: "console"})
	run(t, c)
	admin := kadm.NewClient(client)
	eventually(t, func() error {
		committed, err := admin.FetchOffsets(t.Context(), "console")
		if o, ok := committed.Lookup("x.sagas", 0); err == nil && ok && o.At == 1 {
			return nil
		}
		return fmt.Errorf("no checkpoint at offset 1 of the start, before stopping: %v (%v)", committed, err)
	})
}

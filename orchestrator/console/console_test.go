package console

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/saga"
)

// sagas decodes a payload that names one of its instances.
type sagas map[string]*saga.SagaInstance

func (s sagas) Decode(b []byte) (serde.Record, error) {
	if v, ok := s[string(b)]; ok {
		return v, nil
	}
	return nil, serde.ErrUndecodable
}

// TestApplyReadsTheStateAndArchiveTopics hands the console the records a
// saga leaves on its topics, in the order a reader of both may see them:
// its running state, its end in the archive, the state topic's pointer
// to it, a running state read late, and at last the pointer's tombstone.
func TestApplyReadsTheStateAndArchiveTopics(t *testing.T) {
	s := sagas{
		"running": instance("s", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1),
		"ended":   instance("s", "CreateOrder", saga.StateRejected, "", 0, 0),
	}
	c := newApplying(t, s)
	state := func() string {
		p := c.index.List(Query{Limit: 1, Now: t0})
		if len(p.Sagas) == 0 {
			return "gone"
		}
		return p.Sagas[0].State
	}
	steps := []struct {
		name string
		rec  *kgo.Record
		want string
	}{
		{"running", &kgo.Record{Topic: "x.sagas", Key: []byte("s"), Value: []byte("running")}, saga.StateRunning},
		{"archived", &kgo.Record{Topic: "x.sagas.ended", Key: []byte("s"), Value: []byte("ended")}, saga.StateRejected},
		{"pointer", &kgo.Record{Topic: "x.sagas", Key: []byte("s"), Value: []byte{},
			Headers: []kgo.RecordHeader{{Key: contracts.HeaderArchivedAt, Value: []byte("7")}}}, saga.StateRejected},
		{"pointer with a null value", &kgo.Record{Topic: "x.sagas", Key: []byte("s"),
			Headers: []kgo.RecordHeader{{Key: contracts.HeaderArchivedAt, Value: []byte("7")}}}, saga.StateRejected},
		{"running, read late", &kgo.Record{Topic: "x.sagas", Key: []byte("s"), Value: []byte("running")}, saga.StateRejected},
		{"undecodable", &kgo.Record{Topic: "x.sagas", Key: []byte("t"), Value: []byte("??")}, saga.StateRejected},
		{"tombstone", &kgo.Record{Topic: "x.sagas", Key: []byte("s")}, "gone"},
	}
	for _, step := range steps {
		if err := c.apply(step.rec); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := state(); got != step.want {
			t.Errorf("after %s: got %s, want %s", step.name, got, step.want)
		}
	}
	if err := c.apply(&kgo.Record{Topic: contracts.TopicDeadLetter, Key: []byte("k"), Value: []byte("ended")}); err != nil {
		t.Fatal(err)
	}
	if list, _ := c.deadLetters.page(t.Context(), nil, 10); len(list) != 1 || list[0].Record != "SagaInstance" {
		t.Errorf("dead letters: got %+v, want the one applied, decoded", list)
	}
}

// A saga's revision is the same on every instance, so that a page can
// tell which of two summaries of it, one from an instance's stream and
// one from another's list, is the later: the offset of its latest record
// in its state topic, which grows with each record whatever the clocks
// said, and the highest once it ended.
func TestTheRevisionGrowsWithEachRecordAndIsHighestOnceEnded(t *testing.T) {
	authorize := instance("s", "CreateOrder", saga.StateRunning, "authorize_payment", 0, 1)
	authorize.History[1].At = t0.Add(-time.Second) // a new owner's clock behind the old one's
	s := sagas{
		"reserve":   instance("s", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1),
		"authorize": authorize,
		"ended":     instance("s", "CreateOrder", saga.StateCompleted, "", 0, 0),
	}
	c := newApplying(t, s)
	steps := []struct {
		rec  *kgo.Record
		want int64
	}{
		{&kgo.Record{Topic: "x.sagas", Key: []byte("s"), Value: []byte("reserve"), Offset: 3}, 3},
		{&kgo.Record{Topic: "x.sagas", Key: []byte("s"), Value: []byte("authorize"), Offset: 8}, 8},
		{&kgo.Record{Topic: "x.sagas.ended", Key: []byte("s"), Value: []byte("ended"), Offset: 2}, endedRevision},
		{&kgo.Record{Topic: "x.sagas", Key: []byte("s"), Value: []byte{}, Offset: 9,
			Headers: []kgo.RecordHeader{{Key: contracts.HeaderArchivedAt, Value: []byte("2")}}}, endedRevision},
	}
	for _, step := range steps {
		if err := c.apply(step.rec); err != nil {
			t.Fatal(err)
		}
		p := c.index.List(Query{Limit: 1, Now: t0})
		if len(p.Sagas) != 1 || p.Sagas[0].Revision != step.want {
			t.Errorf("after %s at %s/%d: got %+v, want revision %d", step.rec.Value, step.rec.Topic, step.rec.Offset, p.Sagas, step.want)
		}
	}
}

// newApplying returns a console of the CreateOrder saga on the topics
// x.sagas and x.sagas.ended, decoding with s, for tests that hand it
// records themselves (its broker address is never dialled).
func newApplying(t *testing.T, s sagas) *Console {
	t.Helper()
	return newConsole(t, Config{Sagas: s})
}

// newConsole returns a console of cfg, whose types are by default the
// CreateOrder saga on the topics x.sagas and x.sagas.ended, whose dead
// letters are decoded as its sagas, and whose broker address is by default
// one never dialled.
func newConsole(t *testing.T, cfg Config) *Console {
	t.Helper()
	if cfg.Types == nil {
		cfg.Types = []SagaType{{Type: "CreateOrder", StateTopic: "x.sagas", EndedTopic: "x.sagas.ended"}}
	}
	if cfg.Kgo == nil {
		cfg.Kgo = []kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}
	}
	cfg.DeadLetters = cfg.Sagas
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Once caught up, the console streams each change of a saga to the open
// streams; with none open it makes no event.
func TestApplyStreamsChangesToOpenStreams(t *testing.T) {
	s := sagas{
		"reserve":   instance("s", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1),
		"authorize": instance("s", "CreateOrder", saga.StateRunning, "authorize_payment", 0, 1),
	}
	c := newApplying(t, s)
	c.caughtUp.Store(true)
	if err := c.apply(&kgo.Record{Topic: "x.sagas", Key: []byte("s"), Value: []byte("reserve")}); err != nil {
		t.Fatal(err)
	}
	events, leave := c.sagaEvents.subscribe()
	defer leave()
	if err := c.apply(&kgo.Record{Topic: "x.sagas", Key: []byte("s"), Value: []byte("authorize")}); err != nil {
		t.Fatal(err)
	}
	select {
	case data := <-events:
		var got Summary
		if err := json.Unmarshal(data, &got); err != nil || got.SagaID != "s" || got.Step != "authorize_payment" || got.Deadline == "" {
			t.Errorf("event: got %s (%v), want saga s on authorize_payment with its deadline", data, err)
		}
	default:
		t.Fatal("no event for the change applied while a stream was open")
	}
	select {
	case data := <-events:
		t.Errorf("a second event: %s, want only the change made while the stream was open", data)
	default:
	}
}

// An ended saga the index let go (past MaxEnded) whose running states are
// read after its archived end, as a restarted instance may read the state
// topic behind the archive, shows no more once its pointer is read, and
// its start counts once.
func TestAnEndedSagaLetGoIsNotShownRunningWhenReadLate(t *testing.T) {
	s := sagas{
		"a ended":   instance("a", "CreateOrder", saga.StateCompleted, "", 0, 0),
		"b ended":   instance("b", "CreateOrder", saga.StateCompleted, "", 1, 0),
		"a running": instance("a", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1),
	}
	c := newConsole(t, Config{Sagas: s, MaxEnded: 1})
	c.index.now = func() time.Time { return t0.Add(time.Minute) }
	pointer := []kgo.RecordHeader{{Key: contracts.HeaderArchivedAt, Value: []byte("7")}}
	for _, r := range []*kgo.Record{
		{Topic: "x.sagas.ended", Key: []byte("a"), Value: []byte("a ended")},
		{Topic: "x.sagas.ended", Key: []byte("b"), Value: []byte("b ended")}, // lets a go
		{Topic: "x.sagas", Key: []byte("a"), Value: []byte("a running")},
		{Topic: "x.sagas", Key: []byte("a"), Value: []byte{}, Headers: pointer},
		{Topic: "x.sagas", Key: []byte("b"), Value: []byte{}, Headers: pointer},
	} {
		if err := c.apply(r); err != nil {
			t.Fatal(err)
		}
	}
	ids, _ := listAll(t, c.index, Query{Limit: 10, Now: t0})
	if !slices.Equal(ids, []string{"b"}) {
		t.Errorf("the index lists %q, want only b", ids)
	}
	started := 0
	for _, m := range c.index.Stats(t0.Add(time.Minute), 2) {
		started += m.Started
	}
	if started != 2 {
		t.Errorf("%d sagas started, want 2", started)
	}
}

// A query that does not parse, or gives a parameter twice, is refused: Go's
// URL values drop the pairs they cannot read, and a filter dropped so
// listed every saga as if it matched.
func TestAMalformedQueryIsRefused(t *testing.T) {
	s := sagas{
		"running":  instance("r", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1),
		"rejected": instance("j", "CreateOrder", saga.StateRejected, "", 0, 0),
	}
	c := newApplying(t, s)
	for key, value := range map[string]string{"r": "running", "j": "rejected"} {
		if err := c.apply(&kgo.Record{Topic: "x.sagas", Key: []byte(key), Value: []byte(value)}); err != nil {
			t.Fatal(err)
		}
	}
	c.caughtUp.Store(true)
	for _, q := range []string{"state=REJECTED%zz", "type=CreateOrder;state=REJECTED", "state=REJECTED&state=RUNNING", "limit=%"} {
		rec := httptest.NewRecorder()
		c.listSagas(rec, httptest.NewRequest("GET", "/api/sagas?"+q, nil))
		var answer badValue
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || rec.Code != http.StatusBadRequest || answer.Error == "" {
			t.Errorf("%s: got %d %s, want 400 with an error", q, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	c.listSagas(rec, httptest.NewRequest("GET", "/api/sagas?state=REJECTED", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"total":1`) {
		t.Errorf("state=REJECTED: got %d %s, want 200 and the one rejected saga", rec.Code, rec.Body)
	}
}

// The routes that take no parameter refuse one, as the others refuse one
// they do not name: a stream asked for only rejected sagas would send
// every saga.
func TestARouteWithoutParametersRefusesOne(t *testing.T) {
	c := newApplying(t, sagas{})
	c.caughtUp.Store(true)
	h := handler(t, c)
	for _, path := range []string{"/api/sagas/stream?state=REJECTED", "/api/deadletters/stream?x=1", "/api/sagatypes?type=Nope"} {
		// Bounded: a stream that takes the request goes on until it ends.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", path, nil))
		cancel()
		var answer badValue
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || rec.Code != http.StatusBadRequest || answer.Error == "" || answer.Allowed == nil {
			t.Errorf("%s: got %d %s, want 400 with an error and none allowed", path, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/sagatypes", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/api/sagatypes: got %d %s, want 200", rec.Code, rec.Body)
	}
}

// Until the stats have read the day they count, /api/stats answers 503
// with Retry-After, not counts short of the sagas still to read.
func TestTheStatsAnswer503UntilReady(t *testing.T) {
	c := newApplying(t, sagas{})
	c.caughtUp.Store(true)
	rec := httptest.NewRecorder()
	c.stats(rec, httptest.NewRequest("GET", "/api/stats", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("before ready: got %d %v %s, want 503 with Retry-After and an error", rec.Code, rec.Header(), rec.Body)
	}
	c.statsReady.Store(true)
	rec = httptest.NewRecorder()
	c.stats(rec, httptest.NewRequest("GET", "/api/stats", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("once ready: got %d %s, want 200", rec.Code, rec.Body)
	}
}

// handler is the HTTP handler of a ready server with c's routes.
func handler(t *testing.T, c *Console) http.Handler {
	t.Helper()
	s, err := httpserver.New(httpserver.Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.Register(s)
	s.MarkReady()
	return s.Handler()
}

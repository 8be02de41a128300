package saga_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/saga/sagatest"
)

// testDefV2 is the next version of testDef: it inserts authorize between
// reserve and approve.
func testDefV2() saga.Definition[data] {
	def := testDef()
	def.Version = 2
	def.Steps = slices.Insert(def.Steps, 2, saga.Step[data]{
		Name:    "authorize",
		Invoke:  saga.Invoke(AuthorizePaymentInteraction, authorizePayment),
		Replies: saga.Replies{saga.On[PaymentAuthorized](saga.Success)},
	})
	return def
}

func authorizePayment(d *data) *AuthorizePayment {
	return &AuthorizePayment{OrderID: d.OrderID, Amount: d.OrderTotal}
}

func dataOf(id string) data { return data{OrderID: id, CustomerID: "c-" + id, OrderTotal: 10} }

func reservedOf(id string) *CreditReserved {
	return &CreditReserved{CustomerID: "c-" + id, OrderID: id, Amount: 10}
}

// lastTo returns the last command sent for saga id.
func lastTo(t *testing.T, h *sagatest.Harness[data], id string) sagatest.Sent {
	t.Helper()
	sent := h.Sent()
	for i := len(sent) - 1; i >= 0; i-- {
		if sent[i].Msg.Metadata.Get(saga.HeaderSagaID) == id {
			return sent[i]
		}
	}
	t.Fatalf("got no command sent for saga %s, want one", id)
	return sagatest.Sent{}
}

// answer replies to the last command of saga id, checking it is of step.
func answer(t *testing.T, h *sagatest.Harness[data], id, step string, body saga.Record) {
	t.Helper()
	cmd := lastTo(t, h, id)
	if got := cmd.Msg.Metadata.Get(saga.HeaderStep); got != step {
		t.Fatalf("saga %s: got its command of step %q, want %q", id, got, step)
	}
	if err := h.Reply(cmd, body); err != nil {
		t.Fatalf("saga %s: reply %T to %s: %v", id, body, step, err)
	}
}

// steps returns the steps of the commands sent for saga id, in order.
func steps(h *sagatest.Harness[data], id string) []string {
	var got []string
	for _, s := range h.Sent() {
		if s.Msg.Metadata.Get(saga.HeaderSagaID) == id {
			got = append(got, s.Msg.Metadata.Get(saga.HeaderStep))
		}
	}
	return got
}

func checkEnded(t *testing.T, h *sagatest.Harness[data], id string, version int, wantSteps []string) {
	t.Helper()
	v, _, _ := h.Engine.Instance(id)
	if v.State != saga.StateCompleted || v.PendingCommandID != "" || v.Version != version {
		t.Errorf("saga %s: got state %s, version %d, pending %q; want %s under version %d",
			id, v.State, v.Version, v.PendingCommandID, saga.StateCompleted, version)
	}
	if got := steps(h, id); !reflect.DeepEqual(got, wantSteps) {
		t.Errorf("saga %s: got commands %v, want %v", id, got, wantSteps)
	}
}

func TestNewEngineRejectsInvalidVersions(t *testing.T) {
	other := func(change func(d *saga.Definition[data])) saga.Definition[data] {
		d := testDefV2()
		change(&d)
		return d
	}
	tests := []struct {
		name     string
		versions saga.Versions[data]
		want     string
	}{
		{"none", nil, "no definition"},
		{"a version twice", saga.Versions[data]{testDef(), testDef()}, "version 1 is given twice"},
		{"another type", saga.Versions[data]{testDef(), other(func(d *saga.Definition[data]) { d.Type = "Other" })},
			`version 2 is of type "Other" on test.replies and test.sagas, version 1 of "Test"`},
		{"another reply topic", saga.Versions[data]{testDef(), other(func(d *saga.Definition[data]) { d.ReplyTopic = "other.replies" })},
			"the versions of one engine share their type and topics"},
		{"another state topic", saga.Versions[data]{testDef(), other(func(d *saga.Definition[data]) { d.StateTopic = "other.sagas" })},
			"the versions of one engine share their type and topics"},
		{"an invalid older version", saga.Versions[data]{other(func(d *saga.Definition[data]) { d.Version, d.Steps = 1, nil }), testDefV2()},
			"version 1: no steps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := saga.NewEngine(tt.versions, validConfig(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// A deploy that inserts a step in the middle (version 2) strands no saga
// in flight: each runs to its end under version 1, which the deploy keeps,
// while new sagas start under version 2 and go through the new step. An
// engine that ran the stored sagas under the newest version would send
// waits-approve's reply to the step that now sits at its index
// (authorize), and send waits-reserve through authorize.
func TestASagaRunsToItsEndUnderTheVersionItStartedUnder(t *testing.T) {
	h := newHarness(t) // version 1: open, reserve, approve
	h.Start("waits-reserve", dataOf("waits-reserve"))
	h.Start("waits-approve", dataOf("waits-approve"))
	answer(t, h, "waits-approve", "reserve", reservedOf("waits-approve"))

	h.Deploy(testDef(), testDefV2())

	h.Start("new", dataOf("new"))
	answer(t, h, "new", "reserve", reservedOf("new"))
	answer(t, h, "new", "authorize", &PaymentAuthorized{OrderID: "new"})
	answer(t, h, "new", "approve", &OrderApproved{OrderID: "new"})
	checkEnded(t, h, "new", 2, []string{"reserve", "authorize", "approve"})

	answer(t, h, "waits-approve", "approve", &OrderApproved{OrderID: "waits-approve"})
	checkEnded(t, h, "waits-approve", 1, []string{"reserve", "approve"})

	answer(t, h, "waits-reserve", "reserve", reservedOf("waits-reserve"))
	answer(t, h, "waits-reserve", "approve", &OrderApproved{OrderID: "waits-reserve"})
	checkEnded(t, h, "waits-reserve", 1, []string{"reserve", "approve"})
}

// The same step inserted without a new version strands the sagas in
// flight past it: the step at their index is another now, so their reply
// is unexpected (dead-lettered) and they wait for ever.
func TestAStepInsertedInPlaceStrandsTheSagasInFlight(t *testing.T) {
	h := newHarness(t)
	h.Start("waits-approve", dataOf("waits-approve"))
	answer(t, h, "waits-approve", "reserve", reservedOf("waits-approve"))
	cmd := lastTo(t, h, "waits-approve")
	before, _, _ := h.Engine.Instance("waits-approve")

	inPlace := testDefV2()
	inPlace.Version = 1
	h.Deploy(inPlace)

	if err := h.Reply(cmd, &OrderApproved{OrderID: "waits-approve"}); !errors.Is(err, saga.ErrUnexpectedReply) {
		t.Errorf("reply: got error %v, want %v", err, saga.ErrUnexpectedReply)
	}
	if after, _, _ := h.Engine.Instance("waits-approve"); !reflect.DeepEqual(after, before) {
		t.Errorf("got instance %+v, want it unchanged: %+v", after, before)
	}
}

// deployLogged is h.Deploy with an engine that logs to the returned buffer.
func deployLogged(t *testing.T, h *sagatest.Harness[data], versions ...saga.Definition[data]) *bytes.Buffer {
	t.Helper()
	var logs bytes.Buffer
	h.Metrics = prometheus.NewRegistry()
	cfg := validConfig()
	cfg.Instances, cfg.Codec, cfg.Clock, cfg.Metrics = h.Instances, h.Codec, h.Clock.Now, h.Metrics
	cfg.StepTimeout, cfg.MaxAttempts, cfg.MaxBackoff = 10*time.Second, 3, 25*time.Second
	engine, err := saga.NewEngine(versions, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.Engine = engine
	return &logs
}

// wantGauges checks saga_instances_running, and
// saga_instances_unknown_version, by version; the latter may be absent
// for 0: an engine that was given every version never sets it.
func wantGauges(t *testing.T, h *sagatest.Harness[data], running, unknown map[string]float64) {
	t.Helper()
	for name, want := range map[string]map[string]float64{"saga_instances_running": running, "saga_instances_unknown_version": unknown} {
		for version, n := range want {
			got, ok := h.Gauge(name, map[string]string{"saga_type": "Test", "version": version})
			if got != n || !ok && name == "saga_instances_running" {
				t.Errorf("%s{version=%q}: got %v (present: %t), want %v", name, version, got, ok, n)
			}
		}
	}
}

// An instance of a version the engine was not given is reported and left
// as it is: no reply or timeout moves it, until a deploy brings its
// version back; then its overdue command is re-sent and it runs to its
// end under its version.
func TestASagaOfAVersionNotGivenWaitsUntouched(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", dataOf("s1"))
	cmd := lastTo(t, h, "s1")
	before, _, _ := h.Engine.Instance("s1")

	logs := deployLogged(t, h, testDefV2()) // version 1 left out
	for _, want := range []string{"level=ERROR", "saga_type=Test", "saga_id=s1", "version=1"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log of the restore: got %q, want it to contain %q", logs.String(), want)
		}
	}
	wantGauges(t, h, map[string]float64{"1": 1, "2": 0}, map[string]float64{"1": 1})

	logs.Reset()
	err := h.Reply(cmd, reservedOf("s1"))
	if !errors.Is(err, saga.ErrUnexpectedReply) || !errors.Is(err, saga.ErrUnknownVersion) {
		t.Errorf("reply: got error %v, want %v (dead-lettered) and %v", err, saga.ErrUnexpectedReply, saga.ErrUnknownVersion)
	}
	if !strings.Contains(logs.String(), "saga_id=s1") || !strings.Contains(logs.String(), "version=1") {
		t.Errorf("log of the reply: got %q, want an error naming saga s1 and version 1", logs.String())
	}
	h.Clock.Advance(time.Hour)
	gets := h.Instances.Gets.Load()
	h.Engine.ResendOverdue(t.Context())
	if got := h.Instances.Gets.Load() - gets; got != 0 {
		t.Errorf("reads of the waiting saga by a tick: got %d, want 0", got)
	}
	h.Start("s1", dataOf("s1"))
	if got := len(h.Sent()); got != 1 {
		t.Errorf("got %d commands sent, want 1, the one before the deploy", got)
	}
	if after, _, _ := h.Engine.Instance("s1"); !reflect.DeepEqual(after, before) {
		t.Errorf("got instance %+v, want it unchanged: %+v", after, before)
	}
	if got := h.Engine.StepName(before); got != "" {
		t.Errorf("step name: got %q, want none: the engine does not know the step", got)
	}
	h.Start("s2", dataOf("s2")) // the engine runs its own versions meanwhile
	answer(t, h, "s2", "reserve", reservedOf("s2"))
	wantGauges(t, h, map[string]float64{"1": 1, "2": 1}, map[string]float64{"1": 1})

	h.Deploy(testDef(), testDefV2())
	wantGauges(t, h, map[string]float64{"1": 1, "2": 1}, map[string]float64{"1": 0})
	h.Clock.Advance(10 * time.Second) // a StepTimeout after the deploy: a reply was not waiting
	h.Engine.ResendOverdue(t.Context())
	if got, want := lastTo(t, h, "s1").Msg.Metadata, (map[string]string{saga.HeaderStep: "reserve", saga.HeaderAttempt: "2"}); got.Get(saga.HeaderStep) != want[saga.HeaderStep] || got.Get(saga.HeaderAttempt) != want[saga.HeaderAttempt] {
		t.Errorf("after the version is back: got step %s attempt %s re-sent, want %v", got.Get(saga.HeaderStep), got.Get(saga.HeaderAttempt), want)
	}
	answer(t, h, "s1", "reserve", reservedOf("s1"))
	answer(t, h, "s1", "approve", &OrderApproved{OrderID: "s1"})
	checkEnded(t, h, "s1", 1, []string{"reserve", "reserve", "approve"})
}

// A reply dead-lettered by an instance not given the saga's version (a
// rolling deploy moved the saga's partition to an older build, then back)
// leaves a step at its last attempt answered but not known to be: a saga
// taken over is sent its command once more, where it failed with
// TIMEOUT_RESERVE and compensated a credit reserved. So it is when its
// partition goes to an engine new (a restart), when a Resume follows the
// takeover seconds after (the deploy's next instance joining: the mark
// was made anew at each Resume, and cleared), and when the partition was
// lost and given back (still indexed as held, no Resume between). Once
// more, not for ever: unanswered again, the step is given up.
func TestASagaTakenOverAtItsLastAttemptIsSentOnceMore(t *testing.T) {
	for _, c := range []struct {
		name string
		back func(h *sagatest.Harness[data], newer *saga.Engine[data]) error
	}{
		{"to an engine new", func(h *sagatest.Harness[data], _ *saga.Engine[data]) error {
			h.Deploy(testDef(), testDefV2())
			return nil
		}},
		{"then a Resume seconds after", func(h *sagatest.Harness[data], _ *saga.Engine[data]) error {
			h.Deploy(testDef(), testDefV2())
			h.Clock.Advance(3 * time.Second)
			return h.Engine.Resume(context.Background())
		}},
		{"lost and given back", func(h *sagatest.Harness[data], newer *saga.Engine[data]) error {
			h.Engine = newer
			return h.Engine.Resume(context.Background())
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t) // StepTimeout 10 s, MaxAttempts 3
			h.Deploy(testDef(), testDefV2())
			h.Start("s1", dataOf("s1")) // version 2
			for range 2 {
				h.Clock.Advance(time.Minute)
				h.Engine.ResendOverdue(t.Context())
			}
			if v, _, _ := h.Engine.Instance("s1"); v.Attempt != 3 || h.Engine.StepName(v) != "reserve" {
				t.Fatalf("setup: step %s attempt %d, want reserve 3", h.Engine.StepName(v), v.Attempt)
			}
			newer := h.Engine
			newer.Forget() // its partitions lost
			cmd := lastTo(t, h, "s1")
			deployLogged(t, h, testDef()) // an instance of the build before version 2 has them
			if err := h.Reply(cmd, reservedOf("s1")); !errors.Is(err, saga.ErrUnknownVersion) {
				t.Fatalf("the reply on the older build: got %v, want it dead-lettered", err)
			}
			if err := c.back(h, newer); err != nil {
				t.Fatal(err)
			}
			h.Clock.Advance(time.Minute) // past the deadline and the grace
			h.Engine.ResendOverdue(t.Context())
			v, _, _ := h.Engine.Instance("s1")
			if got := lastTo(t, h, "s1").Msg.Metadata; v.FailureReason != "" || got.Get(saga.HeaderStep) != "reserve" || got.Get(saga.HeaderAttempt) != "4" {
				t.Fatalf("taken over: failure %q, state %s, last sent step %s attempt %s; want reserve sent again, attempt 4",
					v.FailureReason, v.State, got.Get(saga.HeaderStep), got.Get(saga.HeaderAttempt))
			}
			h.Clock.Advance(time.Minute)
			h.Engine.ResendOverdue(t.Context())
			if v, _, _ := h.Engine.Instance("s1"); v.FailureReason != "TIMEOUT_RESERVE" {
				t.Errorf("the attempt more unanswered too: failure %q, want TIMEOUT_RESERVE", v.FailureReason)
			}
		})
	}
}

// A Resume that finds the sagas it held already (a rebalance that left
// the partitions where they were) gives them no attempt more; nor do
// Resumes again and again: a saga taken over gets one, once. An attempt
// more at every Resume kept a saga of a participant down from failing
// for as long as the group rebalanced more often than its backoff.
func TestResumesGiveNoAttemptsBeyondOne(t *testing.T) {
	h := newHarness(t) // StepTimeout 10 s, MaxAttempts 3
	h.Start("s1", dataOf("s1"))
	for range 2 {
		h.Clock.Advance(time.Minute)
		h.Engine.ResendOverdue(t.Context())
	}
	for range 6 {
		h.Clock.Advance(time.Second)
		if err := h.Engine.Resume(t.Context()); err != nil { // a rebalance; the partitions kept
			t.Fatal(err)
		}
		h.Clock.Advance(2 * time.Minute)
		h.Engine.ResendOverdue(t.Context())
	}
	if v, _, _ := h.Engine.Instance("s1"); v.FailureReason != "TIMEOUT_RESERVE" || v.State != saga.StateCompensating && v.State != saga.StateRejected {
		t.Errorf("after 6 rebalances that kept its partition: failure %q, state %s; want TIMEOUT_RESERVE", v.FailureReason, v.State)
	}

	h = newHarness(t)
	h.Start("s2", dataOf("s2"))
	for range 2 {
		h.Clock.Advance(time.Minute)
		h.Engine.ResendOverdue(t.Context())
	}
	for range 3 { // taken over again and again (an engine new each time)
		h.Deploy(testDef(), testDefV2())
		h.Clock.Advance(2 * time.Minute)
		h.Engine.ResendOverdue(t.Context())
	}
	if v, _, _ := h.Engine.Instance("s2"); v.FailureReason != "TIMEOUT_RESERVE" {
		t.Errorf("after 3 takeovers: failure %q, attempt %d; want TIMEOUT_RESERVE after attempt 4", v.FailureReason, v.Attempt)
	}
}

// partitioned is a store that holds only some of the instances, as an
// instance of the orchestrator holds those of its partitions: the others
// are neither read nor ranged over.
type partitioned struct {
	*sagatest.Instances
	lost map[string]bool
}

func (p *partitioned) Get(id string) (saga.SagaInstance, bool, error) {
	if p.lost[id] {
		return saga.SagaInstance{}, false, fmt.Errorf("saga %s: not owned", id)
	}
	return p.Instances.Get(id)
}

func (p *partitioned) GetCommitted(id string) (saga.SagaInstance, bool, error) { return p.Get(id) }

func (p *partitioned) Range(fn func(id string, v saga.SagaInstance) bool) error {
	return p.Instances.Range(func(id string, v saga.SagaInstance) bool { return p.lost[id] || fn(id, v) })
}

// saga_instances_running counts the sagas in flight by version: every
// start and end moves it, and each Resume (a restore, a partition gained
// or lost) sets it to what the instances held say, whatever it said before.
func TestSagasInFlightAreCountedByVersion(t *testing.T) {
	h := newHarness(t) // version 1
	for _, id := range []string{"a", "b", "c", "ended"} {
		h.Start(id, dataOf(id))
	}
	answer(t, h, "ended", "reserve", &CreditLimitExceeded{CustomerID: "c-ended", OrderID: "ended"})
	answer(t, h, "ended", "open:compensate", &OrderRejected{OrderID: "ended"})

	// A deploy of versions 1 and 2 on a store of which some can be lost.
	store := &partitioned{Instances: h.Instances, lost: map[string]bool{}}
	h.Metrics = prometheus.NewRegistry()
	cfg := validConfig()
	cfg.Instances, cfg.Codec, cfg.Clock, cfg.Metrics = store, h.Codec, h.Clock.Now, h.Metrics
	engine, err := saga.NewEngine(saga.Versions[data]{testDef(), testDefV2()}, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h.Engine = engine
	resume := func() {
		t.Helper()
		if err := engine.Resume(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	none := map[string]float64{}
	resume()
	wantGauges(t, h, map[string]float64{"1": 3, "2": 0}, none)

	h.Start("d", dataOf("d"))
	wantGauges(t, h, map[string]float64{"1": 3, "2": 1}, none)
	answer(t, h, "a", "reserve", reservedOf("a"))
	h.Clock.Advance(time.Hour)
	engine.ResendOverdue(t.Context()) // re-sends every command: nothing starts or ends
	wantGauges(t, h, map[string]float64{"1": 3, "2": 1}, none)
	answer(t, h, "a", "approve", &OrderApproved{OrderID: "a"})
	wantGauges(t, h, map[string]float64{"1": 2, "2": 1}, none)

	store.lost["b"] = true // its partition moved to another instance
	resume()
	wantGauges(t, h, map[string]float64{"1": 1, "2": 1}, none)
	resume() // a rebalance that moved nothing
	wantGauges(t, h, map[string]float64{"1": 1, "2": 1}, none)
	delete(store.lost, "b") // and back
	resume()
	wantGauges(t, h, map[string]float64{"1": 2, "2": 1}, none)

	for _, id := range []string{"a", "b", "c", "d", "ended"} {
		store.lost[id] = true
	}
	resume()
	h.Clock.Advance(time.Hour)
	engine.ResendOverdue(t.Context())
	wantGauges(t, h, map[string]float64{"1": 0, "2": 0}, none)
}

// losing is a store whose partition is lost in the middle of the next
// Update, after its ownership was checked: onLose (the engine's Forget, as
// process.OnLost calls it) runs before the engine's change indexes the
// saga, and the write is then refused.
type losing struct {
	*sagatest.Instances
	onLose     func()
	lose, lost bool
}

var errLost = errors.New("not owned")

func (l *losing) Get(id string) (saga.SagaInstance, bool, error) {
	if l.lost {
		return saga.SagaInstance{}, false, errLost
	}
	return l.Instances.Get(id)
}

func (l *losing) Update(ctx context.Context, id string, fn func(*saga.SagaInstance, bool) (*saga.Outgoing, error), over func(bool)) error {
	if !l.lose {
		return l.Instances.Update(ctx, id, fn, over)
	}
	l.lose = false
	return l.Instances.Update(ctx, id, func(v *saga.SagaInstance, exists bool) (*saga.Outgoing, error) {
		l.onLose()
		l.lost = true
		if _, err := fn(v, exists); err != nil {
			return nil, err
		}
		return nil, errLost
	}, over)
}

// A timeout running as the partitions are lost indexes its saga again
// after Forget cleared it: given back, the saga counted as held, was not
// taken over, and failed at its last attempt.
func TestALossDuringATimeoutStillTakesTheSagaOver(t *testing.T) {
	clock := sagatest.NewClock()
	store := &losing{Instances: sagatest.NewInstances(&sagatest.Publisher{})}
	engine := engineOn(t, store, clock, tenSeconds) // MaxAttempts 3
	store.onLose = engine.Forget
	if err := engine.Start(t.Context(), "s1", sagaData); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		clock.Advance(time.Minute)
		engine.ResendOverdue(t.Context())
	}
	clock.Advance(time.Minute)
	store.lose = true
	engine.ResendOverdue(t.Context()) // the tick meets the loss
	store.lost = false                // given back
	if err := engine.Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	engine.ResendOverdue(t.Context())
	if v, _, _ := store.Get("s1"); v.FailureReason != "" || v.Attempt != 4 {
		t.Fatalf("failure %q, attempt %d; want the command sent once more, attempt 4", v.FailureReason, v.Attempt)
	}
}

package saga_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/saga/sagatest"
)

type data = OrderData

// testDef has the shapes the engine must handle: a first step with only a
// compensation, a step that can fail, and a last step without compensation.
func testDef() saga.Definition[data] {
	return saga.Definition[data]{
		Type:       "Test",
		Version:    1,
		ReplyTopic: "test.replies",
		StateTopic: "test.sagas",
		Steps: []saga.Step[data]{
			{
				Name:              "open",
				Compensate:        saga.Compensate(RejectOrderInteraction, rejectOrder),
				CompensateReplies: saga.Replies{saga.On[OrderRejected](saga.Success)},
			},
			{
				Name:   "reserve",
				Invoke: saga.Invoke(ReserveCreditInteraction, reserveCredit),
				Replies: saga.Replies{
					saga.On[CreditReserved](saga.Success),
					saga.On[CreditLimitExceeded](saga.Failure("NO_CREDIT")),
				},
				Compensate:        saga.Compensate(ReleaseCreditInteraction, releaseCredit),
				CompensateReplies: saga.Replies{saga.On[CreditReleased](saga.Success)},
			},
			{
				Name:    "approve",
				Invoke:  saga.Invoke(ApproveOrderInteraction, approveOrder),
				Replies: saga.Replies{saga.On[OrderApproved](saga.Success)},
			},
		},
	}
}

func rejectOrder(d *data, reason string) *RejectOrder {
	return &RejectOrder{OrderID: d.OrderID, Reason: reason}
}

func reserveCredit(d *data) *ReserveCredit {
	return &ReserveCredit{CustomerID: d.CustomerID, OrderID: d.OrderID, Amount: d.OrderTotal}
}

func releaseCredit(d *data, _ string) *ReleaseCredit {
	return &ReleaseCredit{CustomerID: d.CustomerID, OrderID: d.OrderID}
}

func approveOrder(d *data) *ApproveOrder { return &ApproveOrder{OrderID: d.OrderID} }

var (
	sagaData = data{OrderID: "s1", CustomerID: "c1", OrderTotal: 10}
	reserved = &CreditReserved{CustomerID: "c1", OrderID: "s1", Amount: 10}
)

func newHarness(t *testing.T) *sagatest.Harness[data] {
	t.Helper()
	return sagatest.NewHarness(t, testDef(), tenSeconds)
}

func TestNewEngineRejectsInvalidDefinitions(t *testing.T) {
	tests := []struct {
		name   string
		change func(d *saga.Definition[data])
		want   string
	}{
		{"no type", func(d *saga.Definition[data]) { d.Type = "" }, "saga type is empty"},
		{"no version", func(d *saga.Definition[data]) { d.Version = 0 }, "version 0: version is 0, want 1 or more"},
		{"no reply topic", func(d *saga.Definition[data]) { d.ReplyTopic = "" }, "reply topic is empty"},
		{"no state topic", func(d *saga.Definition[data]) { d.StateTopic = "" }, "state topic is empty"},
		{"no steps", func(d *saga.Definition[data]) { d.Steps = nil }, "no steps"},
		{"unnamed step", func(d *saga.Definition[data]) { d.Steps[1].Name = "" }, "name is empty"},
		{"step name with colon", func(d *saga.Definition[data]) { d.Steps[1].Name = "a:b" }, "contains ':'"},
		{"compensation on another topic", func(d *saga.Definition[data]) {
			d.Steps[1].Compensate = saga.Compensate(RejectOrderInteraction, rejectOrder)
		}, "invokes on customer but compensates on order"},
		{"a reply the interaction does not declare", func(d *saga.Definition[data]) {
			d.Steps[1].Replies = append(d.Steps[1].Replies, saga.On[CustomerNotFound](saga.Failure("X")))
		}, `step 1 "reserve" Replies: kafkasaga.sagatest.CustomerNotFound is not a reply interaction ReserveCredit declares`},
		{"a reply that sets another saga's data", func(d *saga.Definition[data]) {
			d.Steps[1].Replies[0] = saga.OnReply(saga.Success, func(*ReserveCredit, *CreditReserved) {})
		}, "kafkasaga.sagatest.CreditReserved sets data of type *saga_test.ReserveCredit, not the saga's *saga_test.OrderData"},
		{"a declared reply left out", func(d *saga.Definition[data]) {
			d.Steps[1].Replies = d.Steps[1].Replies[:1]
		}, `step 1 "reserve" Replies: kafkasaga.sagatest.CreditLimitExceeded, a reply interaction ReserveCredit declares, is missing`},
		{"a compensation reply the interaction does not declare", func(d *saga.Definition[data]) {
			d.Steps[0].CompensateReplies = saga.Replies{saga.On[OrderApproved](saga.Success)}
		}, `step 0 "open" CompensateReplies: kafkasaga.sagatest.OrderApproved is not a reply interaction RejectOrder declares`},
		{"step name twice", func(d *saga.Definition[data]) { d.Steps[2].Name = "reserve" }, "used twice"},
		{"command without replies", func(d *saga.Definition[data]) { d.Steps[2].Replies = nil }, "could never be answered"},
		{"replies without command", func(d *saga.Definition[data]) { d.Steps[0].Replies = d.Steps[2].Replies }, "given without a command"},
		{"compensation without replies", func(d *saga.Definition[data]) { d.Steps[0].CompensateReplies = nil }, "could never be answered"},
		{"reply listed twice", func(d *saga.Definition[data]) {
			d.Steps[2].Replies = append(d.Steps[2].Replies, saga.On[OrderApproved](saga.Failure("X")))
		}, "listed twice"},
		{"no successful reply", func(d *saga.Definition[data]) {
			d.Steps[2].Replies = saga.Replies{saga.On[OrderApproved](saga.Failure("X"))}
		}, "no reply succeeds"},
		{"failing compensation reply", func(d *saga.Definition[data]) {
			d.Steps[1].CompensateReplies = append(d.Steps[1].CompensateReplies, saga.On[CustomerNotFound](saga.Failure("X")))
		}, "a compensation cannot fail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := testDef()
			tt.change(&def)
			_, err := saga.NewEngine(saga.Versions[data]{def}, validConfig(), slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// engineOn is an engine of testDef on store, on clock's time, with cfg's
// timeouts and attempts.
func engineOn(t *testing.T, store saga.Instances, clock *sagatest.Clock, cfg saga.EngineConfig) *saga.Engine[data] {
	t.Helper()
	cfg.Instances, cfg.Codec, cfg.Clock = store, sagatest.NewCodec(), clock.Now
	engine, err := saga.NewEngine(saga.Versions[data]{testDef()}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return engine
}

// tenSeconds is the engine of newHarness: a step times out after 10s, is
// sent 3 times at most, 25s apart at most.
var tenSeconds = saga.EngineConfig{StepTimeout: 10 * time.Second, MaxAttempts: 3, MaxBackoff: 25 * time.Second}

func validConfig() saga.EngineConfig {
	pub := &sagatest.Publisher{}
	return saga.EngineConfig{Instances: sagatest.NewInstances(pub), Codec: sagatest.NewCodec()}
}

func TestNewEngineReportsEveryConfigProblem(t *testing.T) {
	_, err := saga.NewEngine(saga.Versions[data]{testDef()}, saga.EngineConfig{MaxAttempts: -1}, nil)
	if err == nil {
		t.Fatal("got no error, want one")
	}
	for _, want := range []string{"Instances is nil", "Codec is nil", "MaxAttempts is -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got error %q, want it to contain %q", err, want)
		}
	}
}

// A first wait longer than the default longest one (STEP_TIMEOUT=2m) is
// taken as the longest too, not refused.
func TestAStepTimeoutPastAMinuteIsTheLongestWaitToo(t *testing.T) {
	cfg := validConfig()
	cfg.StepTimeout = 2 * time.Minute
	if _, err := saga.NewEngine(saga.Versions[data]{testDef()}, cfg, nil); err != nil {
		t.Errorf("NewEngine with a StepTimeout of 2m and no MaxBackoff: %v", err)
	}
}

func TestNewEngineRejectsDataThatIsNotARecord(t *testing.T) {
	def := saga.Definition[struct{}]{Type: "T", Version: 1, ReplyTopic: "r", StateTopic: "s", Steps: []saga.Step[struct{}]{{Name: "only"}}}
	if _, err := saga.NewEngine(saga.Versions[struct{}]{def}, validConfig(), nil); err == nil {
		t.Error("got no error for data struct{}, want one")
	}
}

func TestStartSendsTheFirstCommand(t *testing.T) {
	h := newHarness(t)
	if err := h.Engine.Start(t.Context(), "s1", sagaData); err != nil {
		t.Fatalf("start: %v", err)
	}
	sent := h.Sent()
	if len(sent) != 1 {
		t.Fatalf("got %d commands sent, want 1", len(sent))
	}
	if sent[0].Topic != "customer" || sent[0].Key != "c1" {
		t.Errorf("topic and key: got %q %q, want %q %q", sent[0].Topic, sent[0].Key, "customer", "c1")
	}
	wantHeaders := message.Metadata{
		saga.HeaderSagaID:    "s1",
		saga.HeaderSagaType:  "Test",
		saga.HeaderStep:      "reserve",
		saga.HeaderCommandID: "s1:reserve:invoke",
		saga.HeaderAttempt:   "1",
		saga.HeaderReplyTo:   "test.replies",
	}
	if got := sent[0].Msg.Metadata; !reflect.DeepEqual(got, wantHeaders) {
		t.Errorf("headers: got %v, want %v", got, wantHeaders)
	}
	wantBody := &ReserveCredit{CustomerID: "c1", OrderID: "s1", Amount: 10}
	if got := h.Body(sent[0]); !reflect.DeepEqual(got, wantBody) {
		t.Errorf("body: got %#v, want %#v", got, wantBody)
	}

	v, ok, _ := h.Engine.Instance("s1")
	if !ok {
		t.Fatal("got no instance s1, want one")
	}
	now := h.Clock.Now()
	want := saga.SagaInstance{SagaID: "s1", SagaType: "Test", Version: 1, State: saga.StateRunning, Step: 1,
		PendingCommandID: "s1:reserve:invoke", Attempt: 1, Deadline: now.Add(10 * time.Second), Data: v.Data,
		History: []saga.SagaTransition{{At: now, Event: saga.EventStarted, State: saga.StateRunning, Step: "reserve"}}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("instance: got %+v, want %+v", v, want)
	}
	if got, err := h.Engine.Data(v); err != nil || *got != sagaData {
		t.Errorf("data: got %+v (%v), want %+v", got, err, sagaData)
	}
	if got := h.Codec.Topics()[0]; got != "test.sagas" {
		t.Errorf("data encoded for topic %q, want the state topic %q", got, "test.sagas")
	}
}

// A reply sets what the saga keeps of it in the data, which the commands
// after it are built from.
func TestAReplySetsTheSagaData(t *testing.T) {
	def := testDef()
	def.Steps[1].Replies[0] = saga.OnReply(saga.Success, func(d *data, r *CreditReserved) { d.CustomerID = r.CustomerID + "-reserved" })
	def.Steps[2].Invoke = saga.Invoke(ApproveOrderInteraction, func(d *data) *ApproveOrder { return &ApproveOrder{OrderID: d.CustomerID} })
	h := sagatest.NewHarness(t, def, saga.EngineConfig{StepTimeout: time.Second})
	h.Start("s1", sagaData)
	if err := h.Reply(h.Last(), reserved); err != nil {
		t.Fatal(err)
	}
	if got, want := h.Body(h.Last()), (&ApproveOrder{OrderID: "c1-reserved"}); !reflect.DeepEqual(got, want) {
		t.Errorf("next command: got %#v, want %#v", got, want)
	}
	v, _, _ := h.Engine.Instance("s1")
	if got, err := h.Engine.Data(v); err != nil || got.CustomerID != "c1-reserved" {
		t.Errorf("stored data: got %+v (%v), want customer c1-reserved", got, err)
	}
}

func TestStartTwiceStartsOneSaga(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", sagaData)
	h.Start("s1", data{OrderID: "s1", CustomerID: "other", OrderTotal: 99})
	if got := len(h.Sent()); got != 1 {
		t.Errorf("got %d commands sent, want 1", got)
	}
	v, _, _ := h.Engine.Instance("s1")
	if got, _ := h.Engine.Data(v); *got != sagaData {
		t.Errorf("data: got %+v, want the first start's %+v", got, sagaData)
	}
}

// checkingPublisher records, for each command, whether the store already
// held the transition that sent it.
type checkingPublisher struct {
	sagatest.Publisher
	instances *sagatest.Instances
	mu        sync.Mutex
	unsaved   []string
}

func (p *checkingPublisher) Send(topic, key string, m *message.Message) error {
	v, _, _ := p.instances.Get(m.Metadata.Get(saga.HeaderSagaID))
	if v.PendingCommandID != m.Metadata.Get(saga.HeaderCommandID) {
		p.mu.Lock()
		p.unsaved = append(p.unsaved, m.Metadata.Get(saga.HeaderCommandID))
		p.mu.Unlock()
	}
	return p.Publisher.Send(topic, key, m)
}

func TestTransitionsAreSavedBeforeTheirCommandIsSent(t *testing.T) {
	cfg := validConfig()
	pub := &checkingPublisher{}
	instances := sagatest.NewInstances(pub)
	pub.instances = instances
	codec := sagatest.NewCodec()
	cfg.Instances, cfg.Codec = instances, codec
	engine, err := saga.NewEngine(saga.Versions[data]{testDef()}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(t.Context(), "s1", sagaData); err != nil {
		t.Fatal(err)
	}
	for _, reply := range []saga.Record{&CreditLimitExceeded{CustomerID: "c1", OrderID: "s1"}, &OrderRejected{OrderID: "s1"}} {
		sent := pub.Sent()
		msg, err := sagatest.Reply(codec, sent[len(sent)-1].Msg, reply)
		if err != nil {
			t.Fatal(err)
		}
		if err := engine.HandleReply(msg); err != nil {
			t.Fatalf("reply %T: %v", reply, err)
		}
	}
	if got := len(pub.Sent()); got != 2 {
		t.Fatalf("got %d commands sent, want 2", got)
	}
	if len(pub.unsaved) > 0 {
		t.Errorf("got commands %v sent before their transition was saved, want none", pub.unsaved)
	}
}

// A transition's command goes with its write: when the write fails, nothing
// changes and the error is returned, so the start event or the reply is
// redelivered and handled then.
func TestATransitionWhoseWriteFailsChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.Publisher.Fail(errors.New("broker down"))
	if err := h.Engine.Start(t.Context(), "s1", sagaData); err == nil {
		t.Fatal("start: got no error, want the write error")
	}
	if _, ok, _ := h.Engine.Instance("s1"); ok {
		t.Fatal("got the saga stored after a failed start, want none")
	}
	h.Publisher.Fail(nil)
	h.Start("s1", sagaData) // the start event redelivered
	cmd := h.Last()
	before, _, _ := h.Engine.Instance("s1")

	h.Publisher.Fail(errors.New("broker down"))
	if err := h.Reply(cmd, reserved); err == nil {
		t.Fatal("reply: got no error, want the write error")
	}
	if got, _, _ := h.Engine.Instance("s1"); !reflect.DeepEqual(got, before) {
		t.Fatalf("got instance %+v after a failed write, want it unchanged: %+v", got, before)
	}
	h.Publisher.Fail(nil)
	if err := h.Reply(cmd, reserved); err != nil { // the reply redelivered
		t.Fatalf("reply: %v", err)
	}
	if got := len(h.Sent()); got != 2 {
		t.Fatalf("got %d commands sent, want 2", got)
	}
	if got := h.Last().Msg.Metadata.Get(saga.HeaderCommandID); got != "s1:approve:invoke" {
		t.Errorf("command id: got %q, want %q", got, "s1:approve:invoke")
	}
}

func TestRepliesThatDoNotAnswerThePendingCommandAreIgnored(t *testing.T) {
	tests := []struct {
		name  string
		reply func(h *sagatest.Harness[data]) *message.Message
	}{
		{"duplicate", func(h *sagatest.Harness[data]) *message.Message {
			return reply(t, h, h.Sent()[0], reserved) // the saga moved on to approve
		}},
		{"other command", func(h *sagatest.Harness[data]) *message.Message {
			m := reply(t, h, h.Last(), &OrderApproved{OrderID: "s1"})
			m.Metadata.Set(saga.HeaderCommandID, "s1:reserve:compensate")
			return m
		}},
		{"unknown saga", func(h *sagatest.Harness[data]) *message.Message {
			m := reply(t, h, h.Last(), &OrderApproved{OrderID: "s1"})
			m.Metadata.Set(saga.HeaderSagaID, "s2")
			return m
		}},
		{"unexpected type to an old command", func(h *sagatest.Harness[data]) *message.Message {
			return reply(t, h, h.Sent()[0], &PaymentDeclined{OrderID: "s1"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.Start("s1", sagaData)
			if err := h.Reply(h.Last(), reserved); err != nil {
				t.Fatal(err)
			}
			before, _, _ := h.Engine.Instance("s1")

			if err := h.Engine.HandleReply(tt.reply(h)); err != nil {
				t.Fatalf("got error %v, want nil (ack)", err)
			}
			if got := len(h.Sent()); got != 2 {
				t.Errorf("got %d commands sent, want 2", got)
			}
			if after, _, _ := h.Engine.Instance("s1"); !reflect.DeepEqual(after, before) {
				t.Errorf("instance changed: got %+v, want %+v", after, before)
			}
			if got := h.Counter("saga_stale_replies_total", map[string]string{"saga_type": "Test"}); got != 1 {
				t.Errorf("stale replies counted: got %v, want 1", got)
			}
		})
	}
}

func TestRepliesToAnEndedSagaAreIgnored(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", sagaData)
	for _, r := range []saga.Record{reserved, &OrderApproved{OrderID: "s1"}} {
		if err := h.Reply(h.Last(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Reply(h.Last(), &OrderApproved{OrderID: "s1"}); err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	if got := h.Counter("saga_stale_replies_total", nil); got != 1 {
		t.Errorf("stale replies counted: got %v, want 1", got)
	}
	if got := h.Counter("saga_ended_total", map[string]string{"outcome": saga.StateCompleted}); got != 1 {
		t.Errorf("completed sagas counted: got %v, want 1", got)
	}
}

func reply(t *testing.T, h *sagatest.Harness[data], cmd sagatest.Sent, body saga.Record) *message.Message {
	t.Helper()
	m, err := sagatest.Reply(h.Codec, cmd.Msg, body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUnexpectedReplies(t *testing.T) {
	tests := []struct {
		name  string
		reply func(h *sagatest.Harness[data]) *message.Message
		want  error // nil: any error but ErrUnexpectedReply
	}{
		{"type not listed for the step", func(h *sagatest.Harness[data]) *message.Message {
			return reply(t, h, h.Last(), &OrderApproved{OrderID: "s1"})
		}, saga.ErrUnexpectedReply},
		{"forward reply to a compensation", func(h *sagatest.Harness[data]) *message.Message {
			if err := h.Engine.HandleReply(reply(t, h, h.Last(), &CreditLimitExceeded{OrderID: "s1"})); err != nil {
				t.Fatal(err)
			}
			return reply(t, h, h.Last(), &OrderApproved{OrderID: "s1"})
		}, saga.ErrUnexpectedReply},
		{"no saga id", func(h *sagatest.Harness[data]) *message.Message {
			m := reply(t, h, h.Last(), reserved)
			delete(m.Metadata, saga.HeaderSagaID)
			return m
		}, saga.ErrUnexpectedReply},
		{"undecodable", func(h *sagatest.Harness[data]) *message.Message {
			m := reply(t, h, h.Last(), reserved)
			m.Payload = []byte("garbage")
			return m
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.Start("s1", sagaData)
			msg := tt.reply(h)
			before, _, _ := h.Engine.Instance("s1")
			sent := len(h.Sent())

			err := h.Engine.HandleReply(msg)
			switch {
			case err == nil:
				t.Fatal("got no error, want one")
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Errorf("got error %v, want %v", err, tt.want)
			case tt.want == nil && errors.Is(err, saga.ErrUnexpectedReply):
				t.Errorf("got error %v, want a decode error", err)
			}
			if after, _, _ := h.Engine.Instance("s1"); !reflect.DeepEqual(after, before) {
				t.Errorf("instance changed: got %+v, want %+v", after, before)
			}
			if got := len(h.Sent()); got != sent {
				t.Errorf("got %d commands sent, want %d", got, sent)
			}
		})
	}
}

// TestTransitionsAreTraced: a transition's span is a child of the span of
// the handling that led to it (a start event's, a reply's), or, for a
// timeout, of the saga's previous transition, whose trace context the
// instance keeps; each command is sent on behalf of its transition, whose
// span is in its context.
func TestTransitionsAreTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := sagatest.NewHarness(t, testDef(), saga.EngineConfig{StepTimeout: 10 * time.Second, MaxAttempts: 3, MaxBackoff: 25 * time.Second, Traces: tp})
	tracer := tp.Tracer("test")

	// last returns the latest transition span, and checks that its command
	// and the stored instance carry its context.
	last := func(what string) sdktrace.ReadOnlySpan {
		t.Helper()
		var transition sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if strings.HasPrefix(s.Name(), "Test ") {
				transition = s
			}
		}
		if transition == nil {
			t.Fatalf("%s: got no transition span", what)
		}
		if got := trace.SpanContextFromContext(h.Last().Msg.Context()); got.SpanID() != transition.SpanContext().SpanID() {
			t.Errorf("%s: command's context: got span %s, want the transition's, %s", what, got.SpanID(), transition.SpanContext().SpanID())
		}
		v, _, _ := h.Engine.Instance("s1")
		want := fmt.Sprintf("00-%s-%s-01", transition.SpanContext().TraceID(), transition.SpanContext().SpanID())
		if v.Traceparent != want {
			t.Errorf("%s: stored traceparent: got %q, want the transition's, %q", what, v.Traceparent, want)
		}
		return transition
	}
	checkParent := func(what string, span sdktrace.ReadOnlySpan, name string, parent trace.SpanContext) {
		t.Helper()
		if span.Name() != name || span.Parent().SpanID() != parent.SpanID() || span.SpanContext().TraceID() != parent.TraceID() {
			t.Errorf("%s: got span %q with parent %s in trace %s, want %q with parent %s in trace %s", what,
				span.Name(), span.Parent().SpanID(), span.SpanContext().TraceID(), name, parent.SpanID(), parent.TraceID())
		}
	}

	ctx, event := tracer.Start(t.Context(), "process events")
	if err := h.Engine.Start(ctx, "s1", sagaData); err != nil {
		t.Fatal(err)
	}
	event.End()
	checkParent("start", last("start"), "Test started", event.SpanContext())

	m := reply(t, h, h.Last(), reserved)
	ctx, handling := tracer.Start(t.Context(), "process replies")
	m.SetContext(ctx)
	if err := h.Engine.HandleReply(m); err != nil {
		t.Fatal(err)
	}
	handling.End()
	replied := last("reply")
	checkParent("reply", replied, "Test CreditReserved", handling.SpanContext())

	h.Clock.Advance(time.Hour)
	h.Engine.ResendOverdue(context.Background())
	checkParent("timeout", last("timeout"), "Test timeout", replied.SpanContext())
}

// An operator's action continues the saga's trace, linked to the
// operator's request: made a part of the request's trace, it took the rest
// of the saga with it.
func TestAnOperatorActionContinuesTheSagasTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := sagatest.NewHarness(t, testDef(), saga.EngineConfig{StepTimeout: 10 * time.Second, MaxAttempts: 3, Traces: tp})
	tracer := tp.Tracer("test")
	ctx, event := tracer.Start(t.Context(), "process events")
	if err := h.Engine.Start(ctx, "s1", sagaData); err != nil {
		t.Fatal(err)
	}
	event.End()
	ctx, request := tracer.Start(t.Context(), "POST /sagas/s1/retry")
	if err := h.Engine.Retry(ctx, "s1", saga.Operator{By: "ada"}); err != nil {
		t.Fatal(err)
	}
	request.End()
	var started, retried sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "Test started":
			started = s
		case "Test retry":
			retried = s
		}
	}
	if started == nil || retried == nil {
		t.Fatalf("spans: got %d, want the start's and the retry's", len(rec.Ended()))
	}
	if retried.SpanContext().TraceID() != started.SpanContext().TraceID() || retried.Parent().SpanID() != started.SpanContext().SpanID() {
		t.Errorf("retry: got trace %s, parent %s; want the saga's trace %s, after its start %s", retried.SpanContext().TraceID(),
			retried.Parent().SpanID(), started.SpanContext().TraceID(), started.SpanContext().SpanID())
	}
	if links := retried.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != request.SpanContext().SpanID() {
		t.Errorf("retry: got links %v, want one to the operator's request %s", links, request.SpanContext().SpanID())
	}
}

// A saga its caller chose not to sample (its traceparent's flags 00) keeps
// that trace all the same: its timeouts continue it, unsampled, where they
// began a trace of their own, which the sampler kept.
func TestAnUnsampledSagaKeepsItsTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)) // parent-based, always on
	h := sagatest.NewHarness(t, testDef(), saga.EngineConfig{StepTimeout: 10 * time.Second, MaxAttempts: 3, Traces: tp})
	caller := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, Remote: true})
	if err := h.Engine.Start(trace.ContextWithRemoteSpanContext(t.Context(), caller), "s1", sagaData); err != nil {
		t.Fatal(err)
	}
	v, _, _ := h.Engine.Instance("s1")
	if want := "00-" + caller.TraceID().String() + "-"; !strings.HasPrefix(v.Traceparent, want) || !strings.HasSuffix(v.Traceparent, "-00") {
		t.Errorf("stored traceparent: got %q, want the caller's trace, unsampled: %s...-00", v.Traceparent, want)
	}
	h.Clock.Advance(time.Hour)
	h.Engine.ResendOverdue(context.Background())
	for _, s := range rec.Ended() {
		t.Errorf("span %q recorded in trace %s: want none, the saga's trace unsampled", s.Name(), s.SpanContext().TraceID())
	}
	if got := trace.SpanContextFromContext(h.Last().Msg.Context()).TraceID(); got != caller.TraceID() {
		t.Errorf("the re-sent command's trace: got %s, want the caller's, %s", got, caller.TraceID())
	}
}

// sendState is what a test expects the last command and the instance to be.
type sendState struct {
	step     string
	attempt  string
	deadline time.Duration // after the clock's current time
	state    string
}

// timeOut lets saga s1's pending command time out.
func timeOut(t *testing.T, h *sagatest.Harness[data]) {
	t.Helper()
	v, _, _ := h.Engine.Instance("s1")
	h.Clock.Advance(v.Deadline.Sub(h.Clock.Now()))
	h.Engine.ResendOverdue(t.Context())
}

// timeOutEach lets saga s1's pending command time out again and again,
// checking each send that follows against want in turn, the first of them
// being the sent-th command sent.
func timeOutEach(t *testing.T, h *sagatest.Harness[data], want []sendState, sent int) {
	t.Helper()
	for i, w := range want {
		timeOut(t, h)
		checkSent(t, h, w, sent+i)
	}
}

func checkSent(t *testing.T, h *sagatest.Harness[data], want sendState, wantSent int) {
	t.Helper()
	if got := len(h.Sent()); got != wantSent {
		t.Fatalf("got %d commands sent, want %d", got, wantSent)
	}
	md := h.Last().Msg.Metadata
	if md.Get(saga.HeaderStep) != want.step || md.Get(saga.HeaderAttempt) != want.attempt {
		t.Errorf("last command: got step %s attempt %s, want step %s attempt %s",
			md.Get(saga.HeaderStep), md.Get(saga.HeaderAttempt), want.step, want.attempt)
	}
	v, _, _ := h.Engine.Instance("s1")
	if got, wantAt := v.Deadline, h.Clock.Now().Add(want.deadline); !got.Equal(wantAt) || v.State != want.state {
		t.Errorf("instance: got state %s deadline %s, want %s %s", v.State, got, want.state, wantAt)
	}
}

func TestTimeouts(t *testing.T) {
	h := newHarness(t) // StepTimeout 10s, MaxBackoff 25s, MaxAttempts 3
	h.Start("s1", sagaData)
	checkSent(t, h, sendState{"reserve", "1", 10 * time.Second, saga.StateRunning}, 1)

	h.Clock.Advance(10*time.Second - time.Millisecond)
	h.Engine.ResendOverdue(t.Context())
	if got := len(h.Sent()); got != 1 {
		t.Fatalf("before the deadline: got %d commands sent, want 1", got)
	}

	steps := []sendState{
		{"reserve", "2", 20 * time.Second, saga.StateRunning},
		{"reserve", "3", 25 * time.Second, saga.StateRunning},
		// out of attempts: undo reserve itself, since it may have happened
		{"reserve:compensate", "1", 10 * time.Second, saga.StateCompensating},
		{"reserve:compensate", "2", 20 * time.Second, saga.StateCompensating},
		{"reserve:compensate", "3", 25 * time.Second, saga.StateCompensating},
		// its participant answers nothing: the release waits behind the
		// reserve in Kafka, and the saga goes on compensating
		{"open:compensate", "1", 10 * time.Second, saga.StateCompensating},
		// compensations of steps that answered are retried for ever
		{"open:compensate", "2", 20 * time.Second, saga.StateCompensating},
		{"open:compensate", "3", 25 * time.Second, saga.StateCompensating},
		{"open:compensate", "4", 25 * time.Second, saga.StateCompensating},
	}
	timeOutEach(t, h, steps, 2)
	if got := h.Counter("saga_timeouts_total", map[string]string{"step": "reserve"}); got != 3 {
		t.Errorf("timeouts of reserve counted: got %v, want 3", got)
	}
	if got, want := h.Body(h.Last()), (&RejectOrder{OrderID: "s1", Reason: "TIMEOUT_RESERVE"}); !reflect.DeepEqual(got, want) {
		t.Errorf("last command: got %#v, want %#v", got, want)
	}
	if err := h.Reply(h.Last(), &OrderRejected{OrderID: "s1"}); err != nil {
		t.Fatal(err)
	}
	v, _, _ := h.Engine.Instance("s1")
	if v.State != saga.StateRejected || v.FailureReason != "TIMEOUT_RESERVE" || v.PendingCommandID != "" {
		t.Errorf("got state %s reason %q pending %q, want %s TIMEOUT_RESERVE and none pending",
			v.State, v.FailureReason, v.PendingCommandID, saga.StateRejected)
	}
}

// A reply that arrives after its command was re-sent still counts: the
// command id stays the same across attempts.
func TestAReplyToAnEarlierAttemptIsAccepted(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", sagaData)
	first := h.Last()
	h.Clock.Advance(10 * time.Second)
	h.Engine.ResendOverdue(t.Context())
	if err := h.Reply(first, reserved); err != nil {
		t.Fatal(err)
	}
	if got := h.Last().Msg.Metadata.Get(saga.HeaderStep); got != "approve" {
		t.Errorf("last command step: got %q, want %q", got, "approve")
	}
}

func TestResumeTracksPendingCommandsAndTheTickResendsTheOverdue(t *testing.T) {
	h := newHarness(t)
	h.Start("waiting", data{OrderID: "waiting", CustomerID: "c1"})
	h.Start("overdue", data{OrderID: "overdue", CustomerID: "c2"})
	h.Start("done", data{OrderID: "done", CustomerID: "c3"})
	if err := h.Reply(h.Last(), &CreditLimitExceeded{OrderID: "done"}); err != nil {
		t.Fatal(err)
	}
	if err := h.Reply(h.Last(), &OrderRejected{OrderID: "done"}); err != nil {
		t.Fatal(err)
	}
	// "overdue" is due now, "waiting" in an hour.
	for id, deadline := range map[string]time.Time{"overdue": h.Clock.Now(), "waiting": h.Clock.Now().Add(time.Hour)} {
		if err := h.Instances.Update(t.Context(), id, func(v *saga.SagaInstance, _ bool) (*saga.Outgoing, error) {
			v.Deadline = deadline
			return nil, nil
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	before := len(h.Sent())

	cfg := validConfig()
	cfg.Instances, cfg.Codec, cfg.Clock = h.Instances, h.Codec, h.Clock.Now
	restarted, err := saga.NewEngine(saga.Versions[data]{testDef()}, cfg, nil) // has tracked nothing yet
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.Resume(t.Context()); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if got := len(h.Sent()) - before; got != 0 {
		t.Errorf("commands Resume sent: got %d, want 0 (each was sent with its transition)", got)
	}
	restarted.ResendOverdue(t.Context())
	if got := len(h.Sent()) - before; got != 0 {
		t.Errorf("commands re-sent at once after Resume: got %d, want 0: a reply may be waiting", got)
	}
	h.Clock.Advance(10 * time.Second) // a StepTimeout
	restarted.ResendOverdue(t.Context())

	got := map[string]string{}
	for _, s := range h.Sent()[before:] {
		got[s.Msg.Metadata.Get(saga.HeaderCommandID)] = s.Msg.Metadata.Get(saga.HeaderAttempt)
	}
	want := map[string]string{"overdue:reserve:invoke": "2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("commands re-sent at the tick (id: attempt): got %v, want %v", got, want)
	}
}

func TestHistoryRecordsEveryTransition(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", sagaData)
	start := h.Clock.Now()
	h.Clock.Advance(10 * time.Second)
	h.Engine.ResendOverdue(t.Context())
	h.Clock.Advance(time.Second)
	if err := h.Reply(h.Last(), reserved); err != nil {
		t.Fatal(err)
	}
	if err := h.Reply(h.Last(), &OrderApproved{OrderID: "s1"}); err != nil {
		t.Fatal(err)
	}
	v, _, _ := h.Engine.Instance("s1")
	want := []saga.SagaTransition{
		{At: start, Event: "started", State: saga.StateRunning, Step: "reserve"},
		{At: start.Add(10 * time.Second), Event: "timeout", State: saga.StateRunning, Step: "reserve"},
		{At: start.Add(11 * time.Second), Event: "CreditReserved", State: saga.StateRunning, Step: "approve"},
		{At: start.Add(11 * time.Second), Event: "OrderApproved", State: saga.StateCompleted, Step: ""},
	}
	if !reflect.DeepEqual(v.History, want) {
		t.Errorf("history:\n got %+v\nwant %+v", v.History, want)
	}
	for event, want := range map[string]float64{"started": 1, "timeout": 1, "CreditReserved": 1, "OrderApproved": 1} {
		if got := h.Counter("saga_transitions_total", map[string]string{"event": event}); got != want {
			t.Errorf("transitions on %s: got %v, want %v", event, got, want)
		}
	}
}

// A command re-sent until answered adds a timeout to the history each time,
// for as long as its participant is down: the history keeps its first
// transition and its latest, so the instance stays small.
func TestHistoryKeepsItsFirstAndLatestTransitions(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", sagaData)
	if err := h.Reply(h.Last(), reserved); err != nil { // approve: re-sent until answered
		t.Fatal(err)
	}
	const timeouts = 200
	for range timeouts {
		h.Clock.Advance(2 * time.Minute) // past the longest backoff
		h.Engine.ResendOverdue(t.Context())
	}
	v, _, _ := h.Engine.Instance("s1")
	if v.Attempt != timeouts+1 || v.State != saga.StateRunning {
		t.Fatalf("got attempt %d in state %s, want %d in %s", v.Attempt, v.State, timeouts+1, saga.StateRunning)
	}
	if len(v.History) != 64 {
		t.Fatalf("history: got %d transitions, want 64", len(v.History))
	}
	first, last := v.History[0], v.History[len(v.History)-1]
	if first.Event != saga.EventStarted || last.Event != saga.EventTimeout || !last.At.Equal(h.Clock.Now()) {
		t.Errorf("history: got first %+v and last %+v, want started and the timeout of now (%s)", first, last, h.Clock.Now())
	}
	if gap := last.At.Sub(v.History[1].At); gap != 62*2*time.Minute {
		t.Errorf("history after its first: got %s between its oldest and newest, want the latest 63 timeouts (%s)", gap, 62*2*time.Minute)
	}
}

// Run and HandleReply may race on one instance; the store serializes them
// and each re-checks the state, so the saga takes exactly one path.
func TestConcurrentRepliesAndTimeouts(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", sagaData)
	cmd := h.Last()
	h.Clock.Advance(10 * time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { h.Engine.ResendOverdue(t.Context()) })
		wg.Go(func() {
			if err := h.Reply(cmd, reserved); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	v, _, _ := h.Engine.Instance("s1")
	if v.State != saga.StateRunning || h.Engine.StepName(v) != "approve" {
		t.Errorf("got state %s step %s, want %s approve", v.State, h.Engine.StepName(v), saga.StateRunning)
	}
	if got := h.Counter("saga_transitions_total", map[string]string{"event": "CreditReserved"}); got != 1 {
		t.Errorf("CreditReserved transitions: got %v, want 1", got)
	}
	if got := h.Counter("saga_timeouts_total", nil); got > 1 {
		t.Errorf("timeouts: got %v, want at most 1", got)
	}
}

// unreadable is a store whose Range cannot read every instance, as one
// whose schema registry does not answer.
type unreadable struct{ *sagatest.Instances }

var errRegistryDown = errors.New("schema registry unreachable")

func (unreadable) Range(func(string, saga.SagaInstance) bool) error { return errRegistryDown }

// A restarted orchestrator that cannot read every instance must not start:
// a saga it did not read would never be timed out again.
func TestResumeFailsUnlessItReadsEveryInstance(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", sagaData)
	before := len(h.Sent())
	cfg := validConfig()
	cfg.Instances, cfg.Codec, cfg.Clock = unreadable{h.Instances}, h.Codec, h.Clock.Now
	restarted, err := saga.NewEngine(saga.Versions[data]{testDef()}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.Resume(t.Context()); !errors.Is(err, errRegistryDown) {
		t.Errorf("Resume: got %v, want %v", err, errRegistryDown)
	}
	if got := len(h.Sent()) - before; got != 0 {
		t.Errorf("commands sent by a Resume that failed: got %d, want 0", got)
	}
}

// frozenRange returns the instances as they were when frozen, as a Range
// that raced with an Update would.
type frozenRange struct {
	*sagatest.Instances
	frozen map[string]saga.SagaInstance
}

func (f *frozenRange) Range(fn func(id string, v saga.SagaInstance) bool) error {
	for id, v := range f.frozen {
		if !fn(id, v) {
			return nil
		}
	}
	return nil
}

// startS1 starts saga s1 on an engine over instances, whose steps time out
// after a second of clock.
func startS1(t *testing.T, instances saga.Instances, clock *sagatest.Clock) *saga.Engine[data] {
	t.Helper()
	engine := engineOn(t, instances, clock, saga.EngineConfig{StepTimeout: time.Second})
	if err := engine.Start(t.Context(), "s1", sagaData); err != nil {
		t.Fatal(err)
	}
	return engine
}

func TestATimeoutSeenTwiceIsHandledOnce(t *testing.T) {
	clock := sagatest.NewClock()
	pub := &sagatest.Publisher{}
	store := &frozenRange{Instances: sagatest.NewInstances(pub)}
	engine := startS1(t, store, clock)
	v, _, _ := store.Get("s1")
	store.frozen = map[string]saga.SagaInstance{"s1": v}

	clock.Advance(time.Second)
	engine.ResendOverdue(t.Context())
	clock.Advance(time.Second) // attempt 2 waits 2s: not overdue yet
	engine.ResendOverdue(t.Context())

	if got := len(pub.Sent()); got != 2 {
		t.Errorf("got %d commands sent, want 2", got)
	}
	if v, _, _ := store.Get("s1"); v.Attempt != 2 {
		t.Errorf("got attempt %d, want 2", v.Attempt)
	}
}

// A deadline recorded for a saga that has ended since (a transition that
// recorded its deadline after a later one recorded the end) is dropped at
// the first tick that reads the saga, not read again at every tick.
func TestATickForgetsTheDeadlineOfAnEndedSaga(t *testing.T) {
	clock := sagatest.NewClock()
	pub := &sagatest.Publisher{}
	store := &frozenRange{Instances: sagatest.NewInstances(pub)}
	engine := startS1(t, store, clock)
	pending, _, _ := store.Get("s1")
	if err := store.Update(t.Context(), "s1", func(v *saga.SagaInstance, _ bool) (*saga.Outgoing, error) {
		v.State, v.PendingCommandID = saga.StateRejected, "" // ended
		return nil, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	store.frozen = map[string]saga.SagaInstance{"s1": pending}
	if err := engine.Resume(t.Context()); err != nil { // records the stale deadline
		t.Fatal(err)
	}
	sent := len(pub.Sent())

	clock.Advance(time.Minute)
	engine.ResendOverdue(t.Context())
	before := store.Gets.Load()
	clock.Advance(time.Minute)
	engine.ResendOverdue(t.Context())
	if got := store.Gets.Load() - before; got != 0 {
		t.Errorf("reads of the ended saga by a later tick: got %d, want 0", got)
	}
	if got := len(pub.Sent()) - sent; got != 0 {
		t.Errorf("commands sent by the ticks: got %d, want 0", got)
	}
}

// flaky is a store whose Get fails while down, as when the schema
// registry does not answer.
type flaky struct {
	*sagatest.Instances
	down atomic.Bool
}

func (f *flaky) Get(id string) (saga.SagaInstance, bool, error) {
	if f.down.Load() {
		return saga.SagaInstance{}, false, errRegistryDown
	}
	return f.Instances.Get(id)
}

func (f *flaky) GetCommitted(id string) (saga.SagaInstance, bool, error) { return f.Get(id) }

// A tick that cannot read an overdue saga keeps its deadline: the next tick
// times it out.
func TestATickThatCannotReadASagaTriesAgain(t *testing.T) {
	clock := sagatest.NewClock()
	pub := &sagatest.Publisher{}
	store := &flaky{Instances: sagatest.NewInstances(pub)}
	engine := startS1(t, store, clock)
	clock.Advance(time.Second)
	store.down.Store(true)
	engine.ResendOverdue(t.Context())
	store.down.Store(false)
	engine.ResendOverdue(t.Context())
	if v, _, _ := store.Get("s1"); v.Attempt != 2 || len(pub.Sent()) != 2 {
		t.Errorf("got attempt %d and %d commands sent, want attempt 2 re-sent once the saga could be read", v.Attempt, len(pub.Sent()))
	}
}

// An instance whose version was changed in place since it was saved, its
// step gone, must not be driven by a step that merely sits at the same
// index now.
func TestAnInstanceThatNoLongerFitsTheDefinitionIsNotDriven(t *testing.T) {
	for name, edit := range map[string]func(def *saga.Definition[data]){
		"its step renamed":             func(def *saga.Definition[data]) { def.Steps[1].Name = "reserve_v2" },
		"its step's command taken out": func(def *saga.Definition[data]) { def.Steps[1].Invoke, def.Steps[1].Replies = saga.Call[data]{}, nil },
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.Start("s1", sagaData)
			cmd := h.Last()

			def := testDef()
			edit(&def)
			cfg := validConfig()
			cfg.Instances, cfg.Codec, cfg.Clock = h.Instances, h.Codec, h.Clock.Now
			engine, err := saga.NewEngine(saga.Versions[data]{def}, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := engine.Resume(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := engine.HandleReply(reply(t, h, cmd, reserved)); !errors.Is(err, saga.ErrUnexpectedReply) {
				t.Errorf("reply: got error %v, want %v", err, saga.ErrUnexpectedReply)
			}
			h.Clock.Advance(time.Hour)
			engine.ResendOverdue(t.Context())
			gets := h.Instances.Gets.Load()
			h.Clock.Advance(time.Hour)
			engine.ResendOverdue(t.Context())
			if got := h.Instances.Gets.Load() - gets; got != 0 {
				t.Errorf("reads of the saga by the tick after it was found not to fit: got %d, want 0", got)
			}
			var stateErr *saga.StateError
			if err := engine.Retry(t.Context(), "s1", saga.Operator{By: "alice"}); !errors.As(err, &stateErr) {
				t.Errorf("retry: got error %v, want a StateError", err)
			}
			if got := len(h.Sent()); got != 1 {
				t.Errorf("got %d commands sent, want 1", got)
			}
			if v, _, _ := h.Engine.Instance("s1"); v.Step != 1 || v.PendingCommandID != "s1:reserve:invoke" || v.Attempt != 1 {
				t.Errorf("got instance at step %d waiting for %s attempt %d, want it unchanged", v.Step, v.PendingCommandID, v.Attempt)
			}
		})
	}
}

// The timeout ticks look at the sagas in flight, not at every saga ever run:
// only Run, at start, reads the whole store.
func TestTimeoutTicksDoNotScanTheStore(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", sagaData)
	h.Clock.Advance(time.Hour)
	h.Engine.ResendOverdue(t.Context())
	if got := h.Last().Msg.Metadata.Get(saga.HeaderAttempt); got != "2" {
		t.Errorf("overdue command: got attempt %q re-sent, want 2", got)
	}
	if got := h.Instances.Ranges.Load(); got != 0 {
		t.Errorf("store scans by a timeout tick: got %d, want 0", got)
	}
}

// errorsOf records a test's errors instead of failing it.
type errorsOf struct {
	testing.TB
	errs []string
}

func (e *errorsOf) Helper() {}

func (e *errorsOf) Errorf(format string, args ...any) {
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

// A compensation keyed otherwise than its step's command fails a test that
// plays the saga: it could reach another partition and overtake the
// command it undoes.
func TestPlayChecksThatACompensationSharesItsCommandsKey(t *testing.T) {
	byOrder := saga.Interaction[*ReleaseCredit, ReleaseCreditReply]{
		Topic:   "customer",
		Key:     func(c *ReleaseCredit) string { return c.OrderID }, // not the customer, as ReserveCredit
		Replies: []ReleaseCreditReply{&CreditReleased{}},
	}
	def := testDef()
	def.Steps = []saga.Step[data]{def.Steps[1], def.Steps[1]}
	def.Steps[0].Name, def.Steps[1].Name = "hold", "again"
	for _, c := range []struct {
		name    string
		release saga.Interaction[*ReleaseCredit, ReleaseCreditReply]
		key     string
		errs    int
	}{
		{"same key", ReleaseCreditInteraction, "c1", 0},
		{"another key", byOrder, "s1", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			def.Steps[0].Compensate = saga.Compensate(c.release, releaseCredit)
			rec := &errorsOf{TB: t}
			h := sagatest.NewHarness(rec, def, saga.EngineConfig{StepTimeout: 10 * time.Second, MaxAttempts: 3, MaxBackoff: 25 * time.Second})
			h.Start("s1", sagaData)
			h.Play("test.replies", []sagatest.Exchange{
				{Topic: "customer", Key: "c1", Step: "hold", Command: reserveCredit(&sagaData), Reply: reserved},
				{Topic: "customer", Key: "c1", Step: "again", Command: reserveCredit(&sagaData), Reply: &CreditLimitExceeded{CustomerID: "c1", OrderID: "s1"}},
				{Topic: "customer", Key: c.key, Step: "hold:compensate", Command: releaseCredit(&sagaData, ""), Reply: &CreditReleased{CustomerID: "c1", OrderID: "s1"}},
			})
			if len(rec.errs) != c.errs {
				t.Errorf("got errors %q, want %d", rec.errs, c.errs)
			}
		})
	}
}

// A step out of attempts whose deadline passed while no instance drove the
// saga (a restart, a takeover) is not failed at the first tick after
// Resume: its reply may be waiting in the reply topic, handled only after
// the restore. Its order was rejected although the participant answered.
func TestAStepOutOfAttemptsIsNotFailedBeforeItsWaitingReplyIsRead(t *testing.T) {
	h := newHarness(t) // StepTimeout 10s, MaxAttempts 3, MaxBackoff 25s
	h.Start("s1", sagaData)
	cmd := h.Last()
	for range 2 {
		h.Clock.Advance(25 * time.Second)
		h.Engine.ResendOverdue(t.Context())
	}
	if v, _, _ := h.Engine.Instance("s1"); v.Attempt != 3 {
		t.Fatalf("attempt %d, want 3, the last", v.Attempt)
	}
	h.Clock.Advance(30 * time.Second) // past its deadline, while no instance ran it
	h.Deploy(testDef())
	h.Engine.ResendOverdue(t.Context())
	if err := h.Reply(cmd, reserved); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := h.Engine.Instance("s1"); v.State != saga.StateRunning || h.Engine.StepName(v) != "approve" {
		t.Errorf("after the waiting reply: %s at %q, want RUNNING at approve", v.State, h.Engine.StepName(v))
	}
}

// A reply whose write fails within that grace (its transaction refused, its
// handler's context ended by a rebalance) leaves the grace as it was: the
// next tick timed the saga out, at the stored deadline long past, and the
// reply, handled again, found it compensating.
func TestAFailedWriteKeepsTheGraceOfAResume(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", sagaData)
	cmd := h.Last()
	for range 2 {
		h.Clock.Advance(25 * time.Second)
		h.Engine.ResendOverdue(t.Context())
	}
	h.Clock.Advance(30 * time.Second)
	h.Deploy(testDef())
	h.Publisher.Fail(errors.New("transaction refused"))
	if err := h.Reply(cmd, reserved); err == nil {
		t.Fatal("a reply whose write fails: got nil, want its error")
	}
	h.Publisher.Fail(nil)
	h.Clock.Advance(time.Second) // within the grace
	h.Engine.ResendOverdue(t.Context())
	if err := h.Reply(cmd, reserved); err != nil { // handled again
		t.Fatal(err)
	}
	if v, _, _ := h.Engine.Instance("s1"); v.State != saga.StateRunning || h.Engine.StepName(v) != "approve" {
		t.Errorf("after the reply handled again: %s at %q, want RUNNING at approve", v.State, h.Engine.StepName(v))
	}
}

// resumeDuring is a store whose first Update, once armed, starts a Resume
// (an assignment, or the restore after an abort) and holds its wave of
// transitions until that Resume waits for them.
type resumeDuring struct {
	*sagatest.Instances
	t       *testing.T
	engine  *saga.Engine[data]
	armed   atomic.Bool // the next Update starts the Resume
	holding atomic.Bool // from then on, Updates wait for it
	held    chan struct{}
	resumed chan struct{}
}

func (s *resumeDuring) Update(ctx context.Context, id string, fn func(v *saga.SagaInstance, exists bool) (*saga.Outgoing, error), over func(bool)) error {
	err := s.Instances.Update(ctx, id, fn, over)
	if s.armed.CompareAndSwap(true, false) {
		startResume(s.t, s.engine, s.resumed)
		close(s.held)
	}
	if s.holding.Load() {
		<-s.held
	}
	return err
}

// A tick times out its overdue sagas a wave at a time, each from what it
// read before the first. One that a Resume came before keeps the grace the
// Resume gave it: it was failed from the tick's old reading, and its
// waiting reply, read after the Resume, found it compensating.
func TestATimeoutAfterAResumeKeepsItsGrace(t *testing.T) {
	clock := sagatest.NewClock()
	store := &resumeDuring{Instances: sagatest.NewInstances(&sagatest.Publisher{}), t: t,
		held: make(chan struct{}), resumed: make(chan struct{})}
	cfg := tenSeconds
	cfg.MaxAttempts = 1
	store.engine = engineOn(t, store, clock, cfg)
	const n = 65 // more than a wave
	for i := range n {
		if err := store.engine.Start(t.Context(), fmt.Sprint("s", i), sagaData); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(11 * time.Second) // each at its last attempt, overdue
	store.holding.Store(true)
	store.armed.Store(true)
	store.engine.ResendOverdue(t.Context())
	<-store.resumed
	running := 0
	for i := range n {
		if v, _, _ := store.engine.Instance(fmt.Sprint("s", i)); v.State == saga.StateRunning {
			running++
		}
	}
	if running == 0 {
		t.Errorf("all %d sagas timed out; want those the tick reached after the Resume running, within its grace", n)
	}
}

// twice is a store that runs an Update's function once on a copy (a write
// refused as a stale read, made again), then for real.
type twice struct{ *sagatest.Instances }

func (s twice) Update(ctx context.Context, id string, fn func(v *saga.SagaInstance, exists bool) (*saga.Outgoing, error), over func(bool)) error {
	v, ok, _ := s.Instances.Get(id)
	if _, err := fn(&v, ok); err != nil {
		return err
	}
	return s.Instances.Update(ctx, id, fn, over)
}

// A write that fails after its function ran twice puts back the deadline
// indexed before the first run, not the one the first run indexed: the
// re-send that never went out waited a whole backoff.
func TestAFailedWriteMadeTwiceKeepsTheDeadlineBeforeIt(t *testing.T) {
	clock := sagatest.NewClock()
	pub := &sagatest.Publisher{}
	engine := engineOn(t, twice{sagatest.NewInstances(pub)}, clock, tenSeconds)
	if err := engine.Start(t.Context(), "s1", sagaData); err != nil {
		t.Fatal(err)
	}
	clock.Advance(11 * time.Second)
	pub.Fail(errors.New("transaction refused"))
	engine.ResendOverdue(t.Context()) // the re-send fails
	pub.Fail(nil)
	n := len(pub.Sent())
	clock.Advance(time.Second)
	engine.ResendOverdue(t.Context())
	if got := len(pub.Sent()); got != n+1 {
		t.Errorf("a tick after a failed re-send: sent %d more, want 1 (the stored command is overdue)", got-n)
	}
}

// racing is a store whose Update runs after, once, between its write and
// its return: as a write outside a handler, which waits for its commit
// after it released the key, lets another transition of the saga through.
type racing struct {
	*sagatest.Instances
	after func()
}

func (r *racing) Update(ctx context.Context, id string, fn func(v *saga.SagaInstance, exists bool) (*saga.Outgoing, error), over func(bool)) error {
	err := r.Instances.Update(ctx, id, fn, over)
	if after := r.after; after != nil {
		r.after = nil
		after()
	}
	return err
}

// A transition that returns after a later one (a tick's re-send whose
// commit was awaited while the reply to the command was handled) does not
// put its older deadline, or its saga, back in the index: the next step's
// timeout came up to a backoff late, and an ended saga was counted running.
func TestAnOlderTransitionDoesNotOverwriteTheIndex(t *testing.T) {
	clock := sagatest.NewClock()
	pub := &sagatest.Publisher{}
	store := &racing{Instances: sagatest.NewInstances(pub)}
	cfg := validConfig()
	cfg.Instances, cfg.Codec, cfg.Clock = store, sagatest.NewCodec(), clock.Now
	cfg.StepTimeout, cfg.MaxAttempts, cfg.MaxBackoff = 10*time.Second, 3, 25*time.Second
	engine, err := saga.NewEngine(saga.Versions[data]{testDef()}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(t.Context(), "s1", sagaData); err != nil {
		t.Fatal(err)
	}
	first := pub.Sent()[0]
	clock.Advance(10 * time.Second)
	store.after = func() { // the reply to the first send, handled while the re-send's commit is awaited
		msg, err := sagatest.Reply(cfg.Codec.(*sagatest.Codec), first.Msg, reserved)
		if err != nil {
			t.Fatal(err)
		}
		if err := engine.HandleReply(msg); err != nil {
			t.Fatal(err)
		}
	}
	engine.ResendOverdue(t.Context()) // reserve re-sent (deadline +20s), then approve sent (deadline +10s)
	if v, _, _ := store.Get("s1"); engine.StepName(v) != "approve" {
		t.Fatalf("step %q, want approve", engine.StepName(v))
	}
	sent := len(pub.Sent())
	clock.Advance(10 * time.Second)
	engine.ResendOverdue(t.Context())
	if got := pub.Sent()[sent:]; len(got) != 1 || got[0].Msg.Metadata.Get(saga.HeaderStep) != "approve" {
		t.Errorf("at approve's deadline: got %d commands sent, want approve re-sent", len(got))
	}
}

// committing is a store whose Update, once waiting, as a write outside a
// handler that waits for its commit, returns only once another write
// joined it, or after a second.
type committing struct {
	*sagatest.Instances
	waiting atomic.Bool
	mu      sync.Mutex
	joined  chan struct{} // closed by the second write in flight
	alone   atomic.Int64  // writes that waited the second out
}

func (c *committing) Update(ctx context.Context, id string, fn func(v *saga.SagaInstance, exists bool) (*saga.Outgoing, error), over func(bool)) error {
	err := c.Instances.Update(ctx, id, fn, over)
	if !c.waiting.Load() {
		return err
	}
	c.mu.Lock()
	if c.joined == nil {
		c.joined = make(chan struct{})
	} else {
		close(c.joined)
		c.joined = nil
		c.mu.Unlock()
		return err
	}
	joined := c.joined
	c.mu.Unlock()
	select {
	case <-joined:
	case <-time.After(time.Second):
		c.alone.Add(1)
		c.mu.Lock()
		if c.joined == joined {
			c.joined = nil
		}
		c.mu.Unlock()
	}
	return err
}

// A tick times its overdue sagas out at once, so that their writes share a
// commit: one at a time, each waited for its own, and a backlog of them
// (a participant down while thousands of sagas ran) held every timeout
// behind it.
func TestATickTimesItsOverdueSagasOutTogether(t *testing.T) {
	clock := sagatest.NewClock()
	pub := &sagatest.Publisher{}
	store := &committing{Instances: sagatest.NewInstances(pub)}
	engine := engineOn(t, store, clock, tenSeconds)
	for _, id := range []string{"s1", "s2"} {
		if err := engine.Start(t.Context(), id, sagaData); err != nil {
			t.Fatal(err)
		}
	}
	store.waiting.Store(true) // from here, writes wait for their commit
	if err := engine.Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	engine.ResendOverdue(t.Context())
	if n := len(pub.Sent()); n != 4 {
		t.Fatalf("commands sent: got %d, want 4, each saga's and its re-send", n)
	}
	if n := store.alone.Load(); n != 0 {
		t.Errorf("%d of the tick's 2 re-sends waited for a commit of their own, want none", n)
	}
}

// An action on a saga this engine does not know (the orchestrator asks
// each saga type's engine in turn) records no span: there was no
// transition, and nothing failed.
func TestAnActionOnAnUnknownSagaRecordsNoSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := sagatest.NewHarness(t, testDef(), saga.EngineConfig{StepTimeout: 10 * time.Second, MaxAttempts: 3, Traces: tp})
	for name, act := range map[string]func() error{
		"retry": func() error { return h.Engine.Retry(t.Context(), "nope", saga.Operator{By: "alice"}) },
		"abort": func() error { return h.Engine.Abort(t.Context(), "nope", saga.Operator{By: "alice"}) },
	} {
		if err := act(); !errors.Is(err, saga.ErrNoSaga) {
			t.Errorf("%s of an unknown saga: got %v, want ErrNoSaga", name, err)
		}
	}
	for _, s := range rec.Ended() {
		t.Errorf("span %q recorded (status %v): want none", s.Name(), s.Status())
	}
}

// openWrites is a store whose writes are all in a transaction still open:
// Get reads them, GetCommitted what was there before them (nothing).
type openWrites struct{ *sagatest.Instances }

func (openWrites) GetCommitted(string) (saga.SagaInstance, bool, error) {
	return saga.SagaInstance{}, false, nil
}

// Engine.Instance, which GET /sagas/{id} answers with, reads what
// committed, not a transition still open, which may abort.
func TestInstanceReadsWhatCommitted(t *testing.T) {
	store := openWrites{sagatest.NewInstances(&sagatest.Publisher{})}
	engine := startS1(t, store, sagatest.NewClock())
	if _, ok, err := store.Get("s1"); !ok || err != nil {
		t.Fatalf("the saga was not stored: %v, %v", ok, err)
	}
	if v, ok, err := engine.Instance("s1"); ok || err != nil {
		t.Errorf("Instance: got %q, %v, %v; want none: its start is not committed", v.State, ok, err)
	}
}

// resumeOnRead is a store whose next Get, once armed, starts a Resume (an
// assignment, or the restore after an abort) and returns once it waits.
type resumeOnRead struct {
	*sagatest.Instances
	t       *testing.T
	engine  *saga.Engine[data]
	armed   atomic.Bool
	resumed chan struct{}
}

func (s *resumeOnRead) Get(id string) (saga.SagaInstance, bool, error) {
	if s.armed.CompareAndSwap(true, false) {
		startResume(s.t, s.engine, s.resumed)
	}
	return s.Instances.Get(id)
}

// startResume starts a Resume of engine (an assignment, or the restore
// after an abort), which closes resumed once done, and returns once it
// waits for, or holds, the engine's resuming lock.
func startResume(t *testing.T, engine *saga.Engine[data], resumed chan struct{}) {
	go func() {
		defer close(resumed)
		if err := engine.Resume(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); !saga.Resuming(engine); {
		if time.Now().After(deadline) {
			t.Error("the Resume did not come within 10s")
			return
		}
		time.Sleep(time.Millisecond) // poll interval, not synchronisation
	}
}

// A Resume that comes while a tick reads its overdue sagas again keeps the
// grace it gave every one of them: the reads after it indexed their stored
// deadlines over it, the tick's timeouts left them to a later tick, and
// that one failed the steps at their last attempt whose replies waited.
func TestAResumeDuringATicksReadsKeepsItsGrace(t *testing.T) {
	clock := sagatest.NewClock()
	store := &resumeOnRead{Instances: sagatest.NewInstances(&sagatest.Publisher{}), t: t, resumed: make(chan struct{})}
	cfg := tenSeconds
	cfg.MaxAttempts = 1
	store.engine = engineOn(t, store, clock, cfg)
	const n = 3
	for i := range n {
		if err := store.engine.Start(t.Context(), fmt.Sprint("s", i), sagaData); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(11 * time.Second) // each at its last attempt, overdue
	store.armed.Store(true)
	store.engine.ResendOverdue(t.Context())
	<-store.resumed
	clock.Advance(time.Second) // within the Resume's grace
	store.engine.ResendOverdue(t.Context())
	for i := range n {
		if v, _, _ := store.engine.Instance(fmt.Sprint("s", i)); v.State != saga.StateRunning {
			t.Errorf("s%d: %s (%s) a second after a Resume, want RUNNING within its grace", i, v.State, v.FailureReason)
		}
	}
}

// A saga taken over at its last attempt is sent its command once more
// whatever the clocks of the two instances say: the one that sent it,
// its clock ahead, recorded the send later than this one took the saga
// over, and the step was given up.
func TestATakeoverFromAnInstanceWhoseClockIsAheadSendsOnceMore(t *testing.T) {
	store, codec := sagatest.NewInstances(&sagatest.Publisher{}), sagatest.NewCodec()
	on := func(clock *sagatest.Clock) *saga.Engine[data] {
		cfg := tenSeconds
		cfg.MaxAttempts = 1
		cfg.Instances, cfg.Codec, cfg.Clock = store, codec, clock.Now
		engine, err := saga.NewEngine(saga.Versions[data]{testDef()}, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return engine
	}
	ahead, behind := sagatest.NewClock(), sagatest.NewClock()
	ahead.Advance(2 * time.Second)
	if err := on(ahead).Start(t.Context(), "s1", sagaData); err != nil {
		t.Fatal(err)
	}
	behind.Advance(time.Second) // a second after the send, by the other clock before it
	taker := on(behind)
	if err := taker.Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	behind.Advance(12 * time.Second) // past the deadline and the grace
	taker.ResendOverdue(t.Context())
	if v, _, _ := store.Get("s1"); v.State != saga.StateRunning || v.Attempt != 2 {
		t.Errorf("taken over: %s at attempt %d (%s), want RUNNING, the command sent once more, attempt 2", v.State, v.Attempt, v.FailureReason)
	}
}

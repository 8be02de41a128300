package saga_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/saga/sagatest"
)

// The states an operator finds a saga of testDef in, each reached through
// the engine: the name of the state, and how to get there from a start.
var sagaStates = []struct {
	name  string
	reach func(t *testing.T, h *sagatest.Harness[data])
}{
	{"running reserve", func(*testing.T, *sagatest.Harness[data]) {}},
	{"running approve", func(t *testing.T, h *sagatest.Harness[data]) { mustReply(t, h, reserved) }},
	{"compensating", func(t *testing.T, h *sagatest.Harness[data]) { mustReply(t, h, &CreditLimitExceeded{OrderID: "s1"}) }},
	{"completed", func(t *testing.T, h *sagatest.Harness[data]) {
		mustReply(t, h, reserved)
		mustReply(t, h, &OrderApproved{OrderID: "s1"})
	}},
	{"rejected", func(t *testing.T, h *sagatest.Harness[data]) {
		mustReply(t, h, &CreditLimitExceeded{OrderID: "s1"})
		mustReply(t, h, &OrderRejected{OrderID: "s1"})
	}},
}

// mustReply answers the last command sent.
func mustReply(t *testing.T, h *sagatest.Harness[data], body saga.Record) {
	t.Helper()
	if err := h.Reply(h.Last(), body); err != nil {
		t.Fatalf("reply %T: %v", body, err)
	}
}

// lastTransition returns the newest entry of the saga's history.
func lastTransition(t *testing.T, h *sagatest.Harness[data]) saga.SagaTransition {
	t.Helper()
	v, ok, err := h.Engine.Instance("s1")
	if !ok || err != nil {
		t.Fatalf("instance s1: got ok %v err %v, want it", ok, err)
	}
	return v.History[len(v.History)-1]
}

func TestRetryInEachState(t *testing.T) {
	want := map[string]struct {
		state        string // of the saga; with a command re-sent, or refused with it
		step         string // of the command re-sent; "" if the retry is refused
		refusedState string
	}{
		"running reserve": {state: saga.StateRunning, step: "reserve"},
		"running approve": {state: saga.StateRunning, step: "approve"},
		"compensating":    {state: saga.StateCompensating, step: "open:compensate"},
		"completed":       {state: saga.StateCompleted},
		"rejected":        {state: saga.StateRejected},
	}
	for _, st := range sagaStates {
		t.Run(st.name, func(t *testing.T) {
			w := want[st.name]
			h := newHarness(t) // StepTimeout 10s, MaxBackoff 25s, MaxAttempts 3
			h.Start("s1", sagaData)
			st.reach(t, h)
			h.Clock.Advance(3 * time.Second)
			before, _, _ := h.Engine.Instance("s1")
			sent := len(h.Sent())

			err := h.Engine.Retry(t.Context(), "s1", saga.Operator{By: "alice"})
			if w.step == "" {
				checkRefused(t, h, "retry", err, w.state, before, sent)
				return
			}
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			// The same command, as the next attempt, sent now.
			checkSent(t, h, sendState{w.step, "2", 20 * time.Second, w.state}, sent+1)
			if got, want := h.Last().Msg.Metadata.Get(saga.HeaderCommandID), before.PendingCommandID; got != want {
				t.Errorf("command id: got %q, want the pending %q", got, want)
			}
			wantEntry := saga.SagaTransition{At: h.Clock.Now(), Event: saga.EventRetry, State: w.state, Step: w.step, By: "alice"}
			if got := lastTransition(t, h); !reflect.DeepEqual(got, wantEntry) {
				t.Errorf("history: got last %+v, want %+v", got, wantEntry)
			}
			if got := h.Counter("saga_transitions_total", map[string]string{"event": saga.EventRetry}); got != 1 {
				t.Errorf("retries counted: got %v, want 1", got)
			}
		})
	}
}

// A retry is one attempt more: a forward command that has used its
// attempts is sent once again, and fails the saga when that one is not
// answered either.
func TestRetryAfterTheLastAttemptIsOneMore(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", sagaData)
	for range 2 {
		timeOut(t, h)
	}
	if err := h.Engine.Retry(t.Context(), "s1", saga.Operator{By: "alice"}); err != nil {
		t.Fatal(err)
	}
	checkSent(t, h, sendState{"reserve", "4", 25 * time.Second, saga.StateRunning}, 4)
	h.Clock.Advance(25 * time.Second)
	h.Engine.ResendOverdue(t.Context())
	checkSent(t, h, sendState{"reserve:compensate", "1", 10 * time.Second, saga.StateCompensating}, 5)
	if v, _, _ := h.Engine.Instance("s1"); v.FailureReason != "TIMEOUT_RESERVE" {
		t.Errorf("failure reason: got %q, want TIMEOUT_RESERVE", v.FailureReason)
	}
}

// An action names the saga as the operator saw it: the step it waited on
// and the attempt. One that moved on since is left as it is.
func TestAnActionForASagaThatMovedOnIsRefused(t *testing.T) {
	actions := map[string]func(h *sagatest.Harness[data], op saga.Operator) error{
		"retry": func(h *sagatest.Harness[data], op saga.Operator) error { return h.Engine.Retry(t.Context(), "s1", op) },
		"abort": func(h *sagatest.Harness[data], op saga.Operator) error { return h.Engine.Abort(t.Context(), "s1", op) },
	}
	for name, act := range actions {
		for _, seen := range []saga.Operator{
			{By: "alice", Step: "reserve"},             // it moved on to approve
			{By: "alice", Step: "approve", Attempt: 2}, // on its first attempt
		} {
			h := newHarness(t)
			h.Start("s1", sagaData)
			mustReply(t, h, reserved) // waits on approve, attempt 1
			before, _, _ := h.Engine.Instance("s1")
			err := act(h, seen)
			checkRefused(t, h, name, err, saga.StateRunning, before, len(h.Sent()))
			if want := "it has moved on: it waits on approve, attempt 1"; !strings.Contains(err.Error(), want) {
				t.Errorf("%s of %+v: got %v, want it to say %q", name, seen, err, want)
			}
		}
	}
	h := newHarness(t)
	h.Start("s1", sagaData)
	timeOut(t, h) // reserve, attempt 2
	if err := h.Engine.Retry(t.Context(), "s1", saga.Operator{By: "alice", Step: "reserve", Attempt: 2}); err != nil {
		t.Fatalf("retry of the saga as seen: %v", err)
	}
	if err := h.Engine.Abort(t.Context(), "s1", saga.Operator{By: "alice", Step: "reserve", Attempt: 3}); err != nil {
		t.Fatalf("abort of the saga as seen: %v", err)
	}
}

func TestAbortInEachState(t *testing.T) {
	want := map[string]struct {
		state string // of the saga the abort found
		step  string // of the compensation sent; "" if the abort is refused
	}{
		"running reserve": {state: saga.StateRunning, step: "reserve:compensate"},
		"running approve": {state: saga.StateRunning}, // past the pivot: it completes
		"compensating":    {state: saga.StateCompensating},
		"completed":       {state: saga.StateCompleted},
		"rejected":        {state: saga.StateRejected},
	}
	for _, st := range sagaStates {
		t.Run(st.name, func(t *testing.T) {
			w := want[st.name]
			h := newHarness(t)
			h.Start("s1", sagaData)
			st.reach(t, h)
			h.Clock.Advance(3 * time.Second)
			before, _, _ := h.Engine.Instance("s1")
			sent := len(h.Sent())

			err := h.Engine.Abort(t.Context(), "s1", saga.Operator{By: "bob"})
			if w.step == "" {
				checkRefused(t, h, "abort", err, w.state, before, sent)
				return
			}
			if err != nil {
				t.Fatalf("abort: %v", err)
			}
			// The aborted step is compensated itself: its effect is unknown.
			checkSent(t, h, sendState{w.step, "1", 10 * time.Second, saga.StateCompensating}, sent+1)
			if got, want := h.Body(h.Last()), (&ReleaseCredit{CustomerID: "c1", OrderID: "s1"}); !reflect.DeepEqual(got, want) {
				t.Errorf("command: got %#v, want %#v", got, want)
			}
			wantEntry := saga.SagaTransition{At: h.Clock.Now(), Event: saga.EventAbort, State: saga.StateCompensating, Step: w.step, By: "bob"}
			if got := lastTransition(t, h); !reflect.DeepEqual(got, wantEntry) {
				t.Errorf("history: got last %+v, want %+v", got, wantEntry)
			}

			// Then as any failure: the steps before, and the end, with ABORTED.
			mustReply(t, h, &CreditReleased{OrderID: "s1"})
			if got, want := h.Body(h.Last()), (&RejectOrder{OrderID: "s1", Reason: saga.ReasonAborted}); !reflect.DeepEqual(got, want) {
				t.Errorf("command: got %#v, want %#v", got, want)
			}
			mustReply(t, h, &OrderRejected{OrderID: "s1"})
			v, _, _ := h.Engine.Instance("s1")
			if v.State != saga.StateRejected || v.FailureReason != saga.ReasonAborted || v.PendingCommandID != "" {
				t.Errorf("got state %s reason %q pending %q, want %s %s and nothing pending",
					v.State, v.FailureReason, v.PendingCommandID, saga.StateRejected, saga.ReasonAborted)
			}
			if got := lastTransition(t, h).By; got != "" {
				t.Errorf("the engine's own transition after the abort: got by %q, want none", got)
			}
		})
	}
}

// The reply to the aborted command may still come, success or failure:
// it is stale, and changes nothing.
func TestALateReplyOfAnAbortedStepIsStale(t *testing.T) {
	for _, late := range []saga.Record{reserved, &CreditLimitExceeded{OrderID: "s1"}} {
		t.Run(reflect.TypeOf(late).Elem().Name(), func(t *testing.T) {
			h := newHarness(t)
			h.Start("s1", sagaData)
			aborted := h.Last()
			if err := h.Engine.Abort(t.Context(), "s1", saga.Operator{By: "bob"}); err != nil {
				t.Fatal(err)
			}
			before, _, _ := h.Engine.Instance("s1")

			if err := h.Reply(aborted, late); err != nil {
				t.Fatalf("late reply: got error %v, want nil (ack)", err)
			}
			if after, _, _ := h.Engine.Instance("s1"); !reflect.DeepEqual(after, before) {
				t.Errorf("instance changed: got %+v, want %+v", after, before)
			}
			if got := len(h.Sent()); got != 2 {
				t.Errorf("got %d commands sent, want 2 (the command and its compensation)", got)
			}
			if got := h.Counter("saga_stale_replies_total", nil); got != 1 {
				t.Errorf("stale replies counted: got %v, want 1", got)
			}
		})
	}
}

func TestActionsOnAnUnknownSaga(t *testing.T) {
	h := newHarness(t)
	for name, act := range map[string]func() error{
		"retry": func() error { return h.Engine.Retry(t.Context(), "nope", saga.Operator{By: "alice"}) },
		"abort": func() error { return h.Engine.Abort(t.Context(), "nope", saga.Operator{By: "alice"}) },
	} {
		if err := act(); !errors.Is(err, saga.ErrNoSaga) {
			t.Errorf("%s: got error %v, want ErrNoSaga", name, err)
		}
	}
	if _, ok, _ := h.Engine.Instance("nope"); ok {
		t.Error("an action created saga nope")
	}
}

// twoReserves has two steps that can fail, so a saga can be aborted after
// a step that answered.
func twoReserves() saga.Definition[data] {
	def := testDef()
	more := def.Steps[1]
	more.Name = "reserve_more"
	def.Steps = append(def.Steps[:2], more, def.Steps[2])
	return def
}

// The compensation of the aborted step, which may never have answered, is
// given up after its attempts, as a timed-out step's is; the compensation
// of a step that answered is sent until it is answered.
func TestAnAbortedStepsCompensationIsGivenUpAfterItsAttempts(t *testing.T) {
	h := abortedWaiting(t, twoReserves(), true)
	steps := []sendState{
		{"reserve_more:compensate", "2", 20 * time.Second, saga.StateCompensating},
		{"reserve_more:compensate", "3", 25 * time.Second, saga.StateCompensating},
		// given up: it waits in Kafka behind reserve_more's command
		{"reserve:compensate", "1", 10 * time.Second, saga.StateCompensating},
		{"reserve:compensate", "2", 20 * time.Second, saga.StateCompensating},
		{"reserve:compensate", "3", 25 * time.Second, saga.StateCompensating},
		// reserve answered: its compensation is sent until answered
		{"reserve:compensate", "4", 25 * time.Second, saga.StateCompensating},
		{"reserve:compensate", "5", 25 * time.Second, saga.StateCompensating},
	}
	timeOutEach(t, h, steps, 4)
}

// checkRefused checks that an action on a saga in state was refused with a
// StateError, and changed nothing: no command sent since sent, the
// instance as it was before.
func checkRefused(t *testing.T, h *sagatest.Harness[data], action string, err error, state string, before saga.SagaInstance, sent int) {
	t.Helper()
	var se *saga.StateError
	if !errors.As(err, &se) || se.State != state {
		t.Fatalf("refused %s: got error %v, want a StateError with state %s", action, err, state)
	}
	if after, _, _ := h.Engine.Instance("s1"); len(h.Sent()) != sent || !reflect.DeepEqual(after, before) {
		t.Errorf("refused %s: got %d commands sent and instance %+v, want %d and %+v", action, len(h.Sent()), after, sent, before)
	}
}

// An action whose write fails leaves the saga as it was, its timeout
// included: the re-send that was due comes when it was due, not a
// backoff after the failed action.
func TestAFailedActionKeepsTheSagasTimeout(t *testing.T) {
	h := newHarness(t)
	h.Start("s1", sagaData) // its command is due again in 10s
	h.Clock.Advance(9 * time.Second)
	h.Publisher.Fail(errors.New("broker unreachable"))
	if err := h.Engine.Retry(t.Context(), "s1", saga.Operator{By: "alice"}); err == nil {
		t.Fatal("Retry whose write fails: got nil, want its error")
	}
	h.Publisher.Fail(nil)
	h.Clock.Advance(2 * time.Second)
	h.Engine.ResendOverdue(t.Context())
	if n := len(h.Sent()); n != 2 {
		t.Fatalf("commands sent 11s after the start: got %d, want 2 (the first, and its re-send when due)", n)
	}
}

// The history's cap keeps the abort and the entry before it, which say
// which step the abort found pending: after many retries of the aborted
// step's compensation, that compensation is still given up after its
// attempts, where it was re-sent for ever once the cap dropped the abort.
func TestAnAbortOutlivesTheHistorysCap(t *testing.T) {
	for name, c := range map[string]struct {
		h    *sagatest.Harness[data]
		next string // sent once the aborted step's compensation is given up
	}{
		"aborted at its second step that can fail": {abortedWaiting(t, twoReserves(), true), "reserve:compensate"},
		"aborted at its first transition":          {abortedWaiting(t, testDef(), false), "open:compensate"},
	} {
		h := c.h
		for range 70 {
			if err := h.Engine.Retry(t.Context(), "s1", saga.Operator{By: "ops"}); err != nil {
				t.Fatal(err)
			}
		}
		if v, _, _ := h.Engine.Instance("s1"); len(v.History) > 64 {
			t.Errorf("%s: history: %d entries, want 64 at most", name, len(v.History))
		}
		timeOut(t, h)
		if got := h.Last().Msg.Metadata.Get(saga.HeaderStep); got != c.next {
			t.Errorf("%s: after the aborted step's compensation used its attempts: got %s sent, want %s: it is given up", name, got, c.next)
		}
	}
}

// abortedWaiting starts saga s1 of def, answers its first step if
// answered, and aborts it, waiting on its next step.
func abortedWaiting(t *testing.T, def saga.Definition[data], answered bool) *sagatest.Harness[data] {
	t.Helper()
	h := sagatest.NewHarness(t, def, saga.EngineConfig{StepTimeout: 10 * time.Second, MaxAttempts: 3, MaxBackoff: 25 * time.Second})
	h.Start("s1", sagaData)
	if answered {
		mustReply(t, h, reserved)
	}
	if err := h.Engine.Abort(t.Context(), "s1", saga.Operator{By: "bob"}); err != nil {
		t.Fatal(err)
	}
	return h
}

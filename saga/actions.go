package saga

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// What an operator may do to a saga in flight, beside what the engine does
// by itself. Each action is a transition like any other, written with the
// command it leads to, and recorded in the saga's history with who asked.
const (
	EventRetry = "retry" // the pending command sent again now
	EventAbort = "abort" // the saga failed on purpose, and compensates

	// ReasonAborted is the failure reason of a saga an operator aborted.
	ReasonAborted = "ABORTED"
)

// ErrNoSaga means the engine holds no saga with the given id.
var ErrNoSaga = errors.New("no such saga")

// StateError means a saga's state does not allow an operator action: it
// has ended, say. State is the saga's state.
type StateError struct {
	SagaID, Action, State string
	Err                   error // why
}

func (e *StateError) Error() string {
	return fmt.Sprintf("%s saga %s: %v", e.Action, e.SagaID, e.Err)
}

func (e *StateError) Unwrap() error { return e.Err }

// Operator is who asks for an action (By, for the history) and, if set,
// the saga as they saw it: the step it waited on, with its direction as
// StepName names it ("authorize_payment", "reserve_credit:compensate"),
// and the attempt. A saga that has moved on since is a *StateError, and
// is left as it is: the action was meant for what the operator saw.
type Operator struct {
	By      string
	Step    string
	Attempt int
}

// Retry sends the saga's pending command again now, as its next attempt
// with a new deadline: what its timeout would do, without waiting for it.
// A forward command that has used its MaxAttempts gets this one more. An
// ended saga is a *StateError.
func (e *Engine[D]) Retry(ctx context.Context, id string, op Operator) error {
	return e.act(ctx, id, EventRetry, op, func(v *SagaInstance, now time.Time) error {
		if _, _, err := e.pendingStep(*v); err != nil {
			return err
		}
		v.Attempt++
		v.Deadline = now.Add(e.backoff(v.Attempt))
		return nil
	})
}

// Abort fails a running saga with ReasonAborted, as its pending step would
// fail after its last attempt: the step, whose effect is unknown, and every
// step before it are compensated, in reverse, and the saga ends REJECTED.
// The reply to the aborted command, should it still come, is stale. As for
// a step that timed out, the step's own compensation is given up after
// MaxAttempts: it waits in Kafka behind the command, for its participant.
//
// A saga that is compensating already is left as it is (a *StateError):
// it ends REJECTED once its compensations are answered. So is one past its
// last step that can fail: it is committed to completing.
func (e *Engine[D]) Abort(ctx context.Context, id string, op Operator) error {
	return e.act(ctx, id, EventAbort, op, func(v *SagaInstance, now time.Time) error {
		def, _, err := e.pendingStep(*v)
		switch {
		case err != nil:
			return err
		case v.State == StateCompensating:
			return errors.New("it is compensating already, and ends REJECTED once its compensations are answered")
		case def.committed(v.Step):
			return errors.New("it is past its last step that can fail, so it completes; retry sends its command again")
		}
		v.FailureReason = ReasonAborted
		e.backward(def, v, v.Step, now)
		return nil
	})
}

// act runs an operator's action on the saga with the given id. change
// returns why the saga's state does not allow the action, if it does not.
func (e *Engine[D]) act(ctx context.Context, id, action string, op Operator, change func(v *SagaInstance, now time.Time) error) error {
	asked := operatorAction{by: op.By}
	if e.tracer != nil {
		// The action continues the saga's trace, as a timeout does, with
		// a link to the operator's request rather than as a part of it:
		// the rest of the saga would follow it into that trace.
		seen, ok, err := e.cfg.Instances.Get(id)
		switch {
		case err == nil && !ok:
			// Another saga type's, maybe: no transition, no span.
			return fmt.Errorf("%s saga %s: %w", action, id, ErrNoSaga)
		case err == nil && seen.Traceparent != "":
			asked.request = trace.LinkFromContext(ctx)
			ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{HeaderTraceparent: seen.Traceparent})
		}
	}
	err := e.transition(context.WithValue(ctx, operatorKey{}, asked), id, func(v *SagaInstance, exists bool, now time.Time) (string, error) {
		if !exists {
			return "", fmt.Errorf("%s saga %s: %w", action, id, ErrNoSaga)
		}
		if Ended(v) {
			return "", &StateError{SagaID: id, Action: action, State: v.State, Err: errors.New("it has ended")}
		}
		if step := e.StepName(*v); op.Step != "" && op.Step != step || op.Attempt != 0 && op.Attempt != v.Attempt {
			return "", &StateError{SagaID: id, Action: action, State: v.State, Err: fmt.Errorf(
				"it has moved on: it waits on %s, attempt %d", step, v.Attempt)}
		}
		if err := change(v, now); err != nil {
			return "", &StateError{SagaID: id, Action: action, State: v.State, Err: err}
		}
		return action, nil
	})
	if err != nil {
		return err
	}
	e.logger.Info("operator action", "saga_id", id, "action", action, "by", op.By)
	return nil
}

// abortedUnanswered reports whether v compensates the step that an
// operator aborted while its command was pending: like a step that timed
// out, it may never have answered, and its compensation queues behind its
// command. The history entry before the latest abort names that step.
func abortedUnanswered(v SagaInstance, step string) bool {
	if v.FailureReason != ReasonAborted {
		return false
	}
	for i := len(v.History) - 1; i > 0; i-- {
		if v.History[i].Event == EventAbort {
			return v.History[i-1].Step == step
		}
	}
	return false
}

// operatorKey is the context key of the operator action a transition is
// of (an operatorAction).
type operatorKey struct{}

// operatorAction is who asked for an operator action, and the span of
// their request, which the transition's span links to.
type operatorAction struct {
	by      string
	request trace.Link
}

// withoutOperator is ctx for what a transition leads to: no operator's.
func withoutOperator(ctx context.Context) context.Context {
	return context.WithValue(ctx, operatorKey{}, operatorAction{})
}

// operator returns who asked for the transition ctx is of: "" for the
// engine's own.
func operator(ctx context.Context) string {
	a, _ := ctx.Value(operatorKey{}).(operatorAction)
	return a.by
}

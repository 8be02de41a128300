package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
)

// Saga states, as stored in SagaInstance.State.
const (
	StateRunning      = "RUNNING"      // a step's command is pending
	StateCompensating = "COMPENSATING" // a step's compensation is pending
	StateCompleted    = "COMPLETED"
	StateRejected     = "REJECTED"
)

// Ended reports whether a saga instance is over: completed or rejected,
// with nothing pending. An ended instance never changes again.
func Ended(v *SagaInstance) bool {
	return v.PendingCommandID == "" && (v.State == StateCompleted || v.State == StateRejected)
}

// History events besides the short names of replies (e.g. "CreditReserved").
const (
	EventStarted = "started"
	EventTimeout = "timeout"
)

// maxHistory bounds an instance's history, which keeps its first transition
// and its latest: a command re-sent until answered (a step after the last
// that can fail, a compensation) adds a timeout each time, for as long as
// its participant is down, and an instance must stay far below Kafka's
// record size limit.
const maxHistory = 64

// ErrUnexpectedReply means a reply answers the pending command with a record
// type its step does not list, or lacks the saga headers. Retrying cannot
// help: dead-letter it.
var ErrUnexpectedReply = errors.New("unexpected reply")

// errStale aborts an Update whose instance moved on: the reply is a duplicate
// or late, or another tick already handled the timeout.
var errStale = errors.New("stale")

// Codec encodes and decodes records; contracts/serde.Serde implements it
// with the Confluent wire format.
type Codec interface {
	Encode(topic string, v Record) ([]byte, error)
	Decode(data []byte) (Record, error)
}

// Outgoing is a command to send with an instance's write.
type Outgoing struct {
	Topic string
	Key   string // the Kafka record key: the aggregate the participant serializes on
	Msg   *message.Message
}

// Instances stores saga instances by saga id.
type Instances interface {
	// Get returns the instance; ok is false if there is none, and an error
	// says it could not be read (the schema registry unreachable, say).
	Get(id string) (v SagaInstance, ok bool, err error)
	// Update loads the instance, lets fn change it and saves it before
	// returning, and sends the command fn returns (nil for none) in the same
	// request as the write. An error from fn aborts the write and is
	// returned; a failed write or send is returned too, and leaves the stored
	// instance unchanged (though either part may have reached Kafka). Calls
	// for one id are serialized.
	Update(ctx context.Context, id string, fn func(v *SagaInstance, exists bool) (*Outgoing, error)) error
	// Range calls fn for every instance until fn returns false; an error
	// means it could not read them all (the registry unreachable), and may
	// come after some calls of fn.
	Range(fn func(id string, v SagaInstance) bool) error
}

// EngineConfig configures an Engine.
type EngineConfig struct {
	Instances Instances // saves each transition and sends its command
	Codec     Codec

	Clock       func() time.Time // default time.Now
	StepTimeout time.Duration    // how long the first send of a command waits for its reply; default 10s
	MaxAttempts int              // sends of a forward command before the saga fails; default 5
	MaxBackoff  time.Duration    // the longest wait for one reply; default 1m

	Metrics prometheus.Registerer // optional
}

func (c *EngineConfig) setDefaults() {
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.StepTimeout == 0 {
		c.StepTimeout = 10 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = time.Minute
	}
}

// Validate reports every missing or invalid field at once.
func (c EngineConfig) Validate() error {
	var errs []error
	if c.Instances == nil {
		errs = append(errs, errors.New("Instances is nil"))
	}
	if c.Codec == nil {
		errs = append(errs, errors.New("Codec is nil"))
	}
	if c.StepTimeout <= 0 {
		errs = append(errs, fmt.Errorf("StepTimeout is %s, want > 0", c.StepTimeout))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("MaxAttempts is %d, want >= 1", c.MaxAttempts))
	}
	if c.MaxBackoff < c.StepTimeout {
		errs = append(errs, fmt.Errorf("MaxBackoff %s is shorter than StepTimeout %s", c.MaxBackoff, c.StepTimeout))
	}
	return errors.Join(errs...)
}

// Engine runs the instances of one saga definition.
type Engine[D any] struct {
	def     Definition[D]
	cfg     EngineConfig
	logger  *slog.Logger
	metrics *metrics

	// deadlines holds the deadline of every pending command by saga id, so
	// the timeout ticks look at the sagas in flight only, not at every saga
	// ever run. Run fills it from the store; every transition keeps it.
	mu        sync.Mutex
	deadlines map[string]time.Time
}

// NewEngine checks the definition and the config and returns an engine.
func NewEngine[D any](def Definition[D], cfg EngineConfig, logger *slog.Logger) (*Engine[D], error) {
	if _, ok := any(new(D)).(Record); !ok {
		return nil, fmt.Errorf("saga %q: data type %T is not an Avro record", def.Type, new(D))
	}
	if err := def.validate(); err != nil {
		return nil, fmt.Errorf("saga %q: invalid definition: %w", def.Type, err)
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("saga %q: invalid config: %w", def.Type, err)
	}
	m, err := newMetrics(cfg.Metrics, def.Type)
	if err != nil {
		return nil, fmt.Errorf("saga %q: register metrics: %w", def.Type, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Engine[D]{def: def, cfg: cfg, logger: logger.With("saga_type", def.Type), metrics: m,
		deadlines: map[string]time.Time{}}, nil
}

// Instance returns the saga instance with the given id; ok is false if
// there is none, and an error says it could not be read.
func (e *Engine[D]) Instance(id string) (v SagaInstance, ok bool, err error) {
	return e.cfg.Instances.Get(id)
}

// Data decodes the saga data stored in an instance.
func (e *Engine[D]) Data(v SagaInstance) (*D, error) {
	rec, err := e.cfg.Codec.Decode(v.Data)
	if err != nil {
		return nil, fmt.Errorf("decode data of saga %s: %w", v.SagaID, err)
	}
	d, ok := any(rec).(*D)
	if !ok {
		return nil, fmt.Errorf("decode data of saga %s: got %T, want %T", v.SagaID, rec, new(D))
	}
	return d, nil
}

// setData lets reply set what it keeps of rec in v's data.
func (e *Engine[D]) setData(v *SagaInstance, reply Reply, rec Record) error {
	d, err := e.Data(*v)
	if err != nil {
		return err
	}
	reply.set(d, rec)
	if v.Data, err = e.cfg.Codec.Encode(e.def.StateTopic, any(d).(Record)); err != nil {
		return fmt.Errorf("encode data of saga %s: %w", v.SagaID, err)
	}
	return nil
}

// StepName returns the pending step with its direction ("reserve_credit",
// "reserve_credit:compensate"), or "" once the saga has ended.
func (e *Engine[D]) StepName(v SagaInstance) string {
	step, err := e.pendingStep(v)
	switch {
	case err != nil:
		return ""
	case v.State == StateCompensating:
		return step.Name + ":compensate"
	}
	return step.Name
}

// pendingStep returns the step whose command the instance waits for. The
// definition may have changed since the instance was saved; an instance
// that no longer fits it is reported, not guessed at.
func (e *Engine[D]) pendingStep(v SagaInstance) (Step[D], error) {
	if v.PendingCommandID == "" {
		return Step[D]{}, fmt.Errorf("saga %s has ended", v.SagaID)
	}
	if v.Step < 0 || v.Step >= len(e.def.Steps) || commandID(v.SagaID, e.def.Steps[v.Step].Name, v.State) != v.PendingCommandID {
		return Step[D]{}, fmt.Errorf("saga %s waits for %s, which the definition has no step %d for", v.SagaID, v.PendingCommandID, v.Step)
	}
	return e.def.Steps[v.Step], nil
}

// commandID is deterministic, so a participant recognizes a re-sent command.
func commandID(sagaID, step, state string) string {
	direction := "invoke"
	if state == StateCompensating {
		direction = "compensate"
	}
	return sagaID + ":" + step + ":" + direction
}

// Start starts a saga with the given id and sends its first command. A saga
// that already exists is left alone, so a duplicate start event is harmless.
func (e *Engine[D]) Start(ctx context.Context, sagaID string, data D, traceparent string) error {
	if sagaID == "" {
		return errors.New("start saga: empty saga id")
	}
	err := e.transition(ctx, sagaID, func(v *SagaInstance, exists bool, now time.Time) (string, error) {
		if exists {
			return "", errStale
		}
		encoded, err := e.cfg.Codec.Encode(e.def.StateTopic, any(&data).(Record))
		if err != nil {
			return "", fmt.Errorf("encode saga data: %w", err)
		}
		*v = SagaInstance{SagaID: sagaID, SagaType: e.def.Type, Data: encoded, Traceparent: traceparent}
		e.forward(v, 0, now)
		return EventStarted, nil
	})
	if errors.Is(err, errStale) {
		e.logger.Debug("saga already started", "saga_id", sagaID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("start saga %s: %w", sagaID, err)
	}
	return nil
}

// HandleReply applies a participant's reply. It is a watermill
// NoPublishHandlerFunc for the saga's reply topic. A reply to anything but
// the pending command is counted and acknowledged.
func (e *Engine[D]) HandleReply(msg *message.Message) error {
	sagaID := msg.Metadata.Get(HeaderSagaID)
	cmdID := msg.Metadata.Get(HeaderCommandID)
	if sagaID == "" || cmdID == "" {
		return fmt.Errorf("reply %s lacks the %s or %s header: %w",
			msg.UUID, HeaderSagaID, HeaderCommandID, ErrUnexpectedReply)
	}
	rec, err := e.cfg.Codec.Decode(msg.Payload)
	if err != nil {
		return fmt.Errorf("decode reply to %s: %w", cmdID, err)
	}
	name, event := recordName(rec.Schema(), true), recordName(rec.Schema(), false)

	err = e.transition(msg.Context(), sagaID, func(v *SagaInstance, exists bool, now time.Time) (string, error) {
		if !exists || v.PendingCommandID != cmdID {
			return "", errStale
		}
		step, err := e.pendingStep(*v)
		if err != nil {
			return "", fmt.Errorf("%s to %s: %w: %w", event, cmdID, ErrUnexpectedReply, err)
		}
		replies := step.Replies
		if v.State == StateCompensating {
			replies = step.CompensateReplies
		}
		reply, ok := replies.find(name)
		if !ok {
			return "", fmt.Errorf("%s to %s: %w", event, cmdID, ErrUnexpectedReply)
		}
		if reply.set != nil {
			if err := e.setData(v, reply, rec); err != nil {
				return "", err
			}
		}
		switch {
		case v.State == StateCompensating:
			e.backward(v, v.Step-1, now)
		case reply.outcome == Success:
			e.forward(v, v.Step+1, now)
		default:
			v.FailureReason = string(reply.outcome)
			e.backward(v, v.Step-1, now)
		}
		return event, nil
	})
	if errors.Is(err, errStale) {
		e.metrics.stale.Inc()
		e.logger.Debug("stale reply ignored", "saga_id", sagaID, "command_id", cmdID, "reply", event)
		return nil
	}
	return err
}

// Resume reads every instance, to learn the pending commands and their
// deadlines, so the ticks of Run time them out. Call it whenever the
// instances held change (process.OnRestored: at start and after each
// rebalance), before any reply is handled. It sends nothing: an instance
// and the command its transition leads to are written in one transaction,
// so a stored pending command was sent. An error means it could not read
// every instance (the schema registry unreachable, say): the start must
// fail rather than leave a saga that is never timed out again.
func (e *Engine[D]) Resume(context.Context) error {
	err := e.cfg.Instances.Range(func(_ string, v SagaInstance) bool {
		if v.PendingCommandID != "" && v.SagaType == e.def.Type {
			e.track(v)
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("read the saga instances: %w", err)
	}
	return nil
}

// Run calls ResendOverdue a few times per StepTimeout until ctx ends.
func (e *Engine[D]) Run(ctx context.Context) error {
	ticker := time.NewTicker(min(max(e.cfg.StepTimeout/4, 10*time.Millisecond), 5*time.Second))
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			e.ResendOverdue(ctx)
		}
	}
}

// ResendOverdue handles the pending commands past their deadline: each is
// re-sent as its next attempt, unless it is a forward command that has used
// its MaxAttempts: then the saga fails and compensates.
func (e *Engine[D]) ResendOverdue(ctx context.Context) {
	now := e.cfg.Clock()
	var due []SagaInstance
	for _, id := range e.overdue(now) {
		// A reply or another tick may have moved it on since, or recorded
		// its deadline before an earlier transition recorded an older one:
		// look again, and keep the index to what is stored.
		v, ok, err := e.cfg.Instances.Get(id)
		if err != nil {
			e.logger.Warn("read overdue saga; again at the next tick", "saga_id", id, "error", err)
			continue // keep its deadline
		}
		if !ok {
			v = SagaInstance{SagaID: id} // nothing pending: forget it
		}
		e.track(v)
		if v.PendingCommandID != "" && !v.Deadline.After(now) {
			due = append(due, v)
		}
	}
	for _, v := range due {
		if err := e.timeout(ctx, v); err != nil {
			e.logger.Warn("time out pending command", "saga_id", v.SagaID, "step", e.StepName(v), "error", err)
		}
	}
}

// track records the deadline of v's pending command, or forgets v once it
// has none.
func (e *Engine[D]) track(v SagaInstance) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v.PendingCommandID == "" {
		delete(e.deadlines, v.SagaID)
		return
	}
	e.deadlines[v.SagaID] = v.Deadline
}

// overdue returns the sagas whose pending command is past its deadline.
func (e *Engine[D]) overdue(now time.Time) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for id, deadline := range e.deadlines {
		if !deadline.After(now) {
			ids = append(ids, id)
		}
	}
	return ids
}

// timeout handles the overdue command of seen, a snapshot of an instance:
// re-sends it as the next attempt, or fails the saga when a forward step
// has used its attempts.
func (e *Engine[D]) timeout(ctx context.Context, seen SagaInstance) error {
	err := e.transition(ctx, seen.SagaID, func(v *SagaInstance, exists bool, now time.Time) (string, error) {
		if !exists || v.PendingCommandID != seen.PendingCommandID || v.Attempt != seen.Attempt {
			return "", errStale // answered, or timed out by another call, meanwhile
		}
		step, err := e.pendingStep(*v)
		if err != nil {
			return "", err
		}
		outOfAttempts := v.Attempt >= e.cfg.MaxAttempts
		switch {
		case v.State == StateRunning && outOfAttempts && !e.def.committed(v.Step):
			v.FailureReason = timeoutReason(step.Name)
			e.backward(v, v.Step, now) // its effect is unknown: undo it too
			return EventTimeout, nil
		case v.State == StateCompensating && outOfAttempts && v.FailureReason == timeoutReason(step.Name):
			// The step never answered its command, and now not its
			// compensation either: its participant is down. Both wait in
			// Kafka in that order (same topic and key, which the consumer keeps),
			// so the participant will undo the step once it is back.
			// Waiting longer would hold the saga for nothing.
			e.backward(v, v.Step-1, now)
			return EventTimeout, nil
		}
		v.Attempt++
		v.Deadline = now.Add(e.backoff(v.Attempt))
		return EventTimeout, nil
	})
	if errors.Is(err, errStale) {
		return nil
	}
	if err == nil {
		e.metrics.timeouts.WithLabelValues(e.StepName(seen)).Inc()
	}
	return err
}

// transition changes one instance in a single Update, recording the change
// in its history, and hands the command it leads to to that Update, which
// sends it in the same produce request as the instance: one round trip per
// transition. The two are not atomic, and need not be:
//
//   - if the command lands and the instance does not, the Update fails, so
//     the reply or timeout that caused it is handled again; meanwhile the
//     participant's reply to the new command is stale (not the pending
//     command) and ignored, and the pending command is re-sent on its
//     timeout, the participant answering it again from its recorded
//     decision;
//   - if the instance lands and the command does not, the timeout re-sends
//     it;
//   - Sarama retries the failed part of a request.
//
// So an instance is never acted on before it is saved (write-ahead).
func (e *Engine[D]) transition(ctx context.Context, id string,
	change func(v *SagaInstance, exists bool, now time.Time) (event string, err error),
) error {
	var (
		event string
		after SagaInstance
		out   *Outgoing
	)
	err := e.cfg.Instances.Update(ctx, id, func(v *SagaInstance, exists bool) (*Outgoing, error) {
		now := e.cfg.Clock()
		var err error
		if event, err = change(v, exists, now); err != nil {
			return nil, err
		}
		if len(v.History) >= maxHistory {
			v.History = slices.Delete(v.History, 1, len(v.History)-maxHistory+2)
		}
		v.History = append(v.History, SagaTransition{At: now, Event: event, State: v.State, Step: e.StepName(*v)})
		// Encoding before saving means a codec failure leaves the saga untouched.
		if out, err = e.command(*v); err != nil {
			return nil, err
		}
		after = *v
		return out, nil
	})
	if err != nil {
		return err
	}
	e.track(after)
	e.metrics.transitions.WithLabelValues(event).Inc()
	if after.PendingCommandID == "" {
		e.metrics.ended.WithLabelValues(after.State).Inc()
	}
	e.logger.Info("saga transition", "saga_id", id, "step", e.StepName(after), "state", after.State, "event", event)
	if out != nil {
		e.logger.Debug("command sent", "saga_id", id, "step", e.StepName(after), "topic", out.Topic,
			"command_id", after.PendingCommandID, "attempt", after.Attempt)
	}
	return nil
}

// forward makes the first step from step i on that has a command pending;
// with none left the saga has completed.
func (e *Engine[D]) forward(v *SagaInstance, i int, now time.Time) {
	for ; i < len(e.def.Steps); i++ {
		if e.def.Steps[i].Invoke.sends() {
			e.pend(v, StateRunning, i, now)
			return
		}
	}
	e.end(v, StateCompleted)
}

// backward makes the first compensation from step i down pending; with none
// left the saga is rejected.
func (e *Engine[D]) backward(v *SagaInstance, i int, now time.Time) {
	for ; i >= 0; i-- {
		if e.def.Steps[i].Compensate.sends() {
			e.pend(v, StateCompensating, i, now)
			return
		}
	}
	e.end(v, StateRejected)
}

func (e *Engine[D]) pend(v *SagaInstance, state string, step int, now time.Time) {
	v.State, v.Step, v.Attempt = state, step, 1
	v.PendingCommandID = commandID(v.SagaID, e.def.Steps[step].Name, state)
	v.Deadline = now.Add(e.backoff(1))
}

func (e *Engine[D]) end(v *SagaInstance, state string) {
	v.State, v.PendingCommandID, v.Attempt, v.Deadline = state, "", 0, time.Time{}
}

// timeoutReason is the failure reason of a saga whose step never answered.
func timeoutReason(step string) string { return "TIMEOUT_" + strings.ToUpper(step) }

// backoff is how long attempt n waits for its reply: StepTimeout doubled for
// each earlier attempt, at most MaxBackoff.
func (e *Engine[D]) backoff(attempt int) time.Duration {
	d := e.cfg.StepTimeout
	for range attempt - 1 {
		if d >= e.cfg.MaxBackoff {
			break
		}
		d *= 2
	}
	return min(d, e.cfg.MaxBackoff)
}

// command builds the instance's pending command, if any.
func (e *Engine[D]) command(v SagaInstance) (*Outgoing, error) {
	if v.PendingCommandID == "" {
		return nil, nil
	}
	step, err := e.pendingStep(v)
	if err != nil {
		return nil, err
	}
	d, err := e.Data(v)
	if err != nil {
		return nil, err
	}
	call := step.Invoke
	if v.State == StateCompensating {
		call = step.Compensate
	}
	cmd, declared := call.build(d, v.FailureReason), call.declared
	payload, err := e.cfg.Codec.Encode(declared.topic, cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command %s: %w", v.PendingCommandID, err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(HeaderSagaID, v.SagaID)
	msg.Metadata.Set(HeaderSagaType, v.SagaType)
	msg.Metadata.Set(HeaderStep, e.StepName(v))
	msg.Metadata.Set(HeaderCommandID, v.PendingCommandID)
	msg.Metadata.Set(HeaderAttempt, strconv.Itoa(v.Attempt))
	msg.Metadata.Set(HeaderReplyTo, e.def.ReplyTopic)
	if v.Traceparent != "" {
		msg.Metadata.Set(HeaderTraceparent, v.Traceparent)
	}
	return &Outgoing{Topic: declared.topic, Key: declared.key(cmd), Msg: msg}, nil
}

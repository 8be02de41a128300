package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
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
// and its latest (trimmed): a command re-sent until answered (a step after the last
// that can fail, a compensation) adds a timeout each time, for as long as
// its participant is down, and an instance must stay far below Kafka's
// record size limit.
const maxHistory = 64

// trimmed returns h with room for one more entry within maxHistory: its
// first, and its newest, and the latest abort with the entry before it,
// which names the step the abort found pending (abortedUnanswered).
func trimmed(h []SagaTransition) []SagaTransition {
	if len(h) < maxHistory {
		return h
	}
	newest := maxHistory - 2
	out := append(make([]SagaTransition, 0, maxHistory), h[0])
	for a := len(h) - 1; a >= 1; a-- {
		if h[a].Event == EventAbort {
			if a-1 < len(h)-newest { // it would go
				if a > 1 { // else the entry before it is the first
					out = append(out, h[a-1])
					newest--
				}
				out = append(out, h[a])
				newest--
			}
			break
		}
	}
	return append(out, h[len(h)-newest:]...)
}

// ErrUnexpectedReply means a reply answers the pending command with a record
// type its step does not list, or lacks the saga headers. Retrying cannot
// help: dead-letter it.
var ErrUnexpectedReply = errors.New("unexpected reply")

// ErrUnknownVersion means an instance runs under a version of its saga's
// definition that the engine was not given. The engine leaves such an
// instance as it is, neither timed out nor re-sent, and reports it
// (saga_instances_unknown_version and an error log naming the saga) until
// an engine given that version runs it. A reply to it is an
// ErrUnexpectedReply too: it is dead-lettered, and answered again once
// the version is back, as a tick a StepTimeout after Resume re-sends the
// overdue command (at its last attempt too: once more after a Resume).
var ErrUnknownVersion = errors.New("saga definition version not given to the engine")

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
	// GetCommitted is Get of what committed: an instance whose latest
	// write is in a transaction still open (which may abort) reads as it
	// was before that write, absent if it did not exist. It answers
	// readers outside the engine (GET /sagas/{id}); the engine reads its
	// own writes with Get.
	GetCommitted(id string) (v SagaInstance, ok bool, err error)
	// Update loads the instance, lets fn change it and saves it before
	// returning, and sends the command fn returns (nil for none) in the same
	// request as the write. An error from fn aborts the write and is
	// returned; a failed write or send is returned too, and leaves the stored
	// instance unchanged (though either part may have reached Kafka). Calls
	// for one id are serialized. over, if not nil, learns whether the write
	// committed, which may be after Update returns (a handler's write
	// commits with its batch); it is not called when fn fails, and may
	// learn of an abort that Update returns as its error.
	Update(ctx context.Context, id string, fn func(v *SagaInstance, exists bool) (*Outgoing, error), over func(committed bool)) error
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
	MaxBackoff  time.Duration    // the longest wait for one reply; default 1m, or StepTimeout if longer

	Metrics prometheus.Registerer // optional
	// Traces, when set, traces every transition (nil: no spans, at no cost).
	Traces trace.TracerProvider
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
		c.MaxBackoff = max(time.Minute, c.StepTimeout)
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

// Engine runs the instances of one saga type, each under the version of
// the definition it started under.
type Engine[D any] struct {
	versions map[int]*Definition[D]
	latest   *Definition[D] // new instances start under it
	cfg      EngineConfig
	logger   *slog.Logger
	metrics  *metrics
	tracer   trace.Tracer // nil: no spans

	// resuming is held by every transition and each tick's reads, and by
	// Resume alone, so the index Resume rebuilds misses no change. resumes
	// counts the Resumes, under it: a tick's timeout of a saga seen overdue
	// before one gives way to the grace it gave.
	resuming sync.RWMutex
	resumes  uint64

	// inFlight indexes the sagas with a pending command by saga id: its
	// deadline, so the timeout ticks look at the sagas in flight only, not
	// at every saga ever run, and its version; running counts them by
	// version. Resume rebuilds both from the store; every transition keeps
	// them.
	mu       sync.Mutex
	inFlight map[string]inFlight
	running  map[int]int
	// taken are the sagas in flight a Resume found that the engine did
	// not hold before (all, after a restart), with the command then
	// pending: while it still is, it was sent by another instance, or
	// before the restart. (Not the time it was taken, against the time of
	// the saga's last transition: that one is the other host's clock.)
	// Kept while in flight, through the Resumes after.
	taken map[string]sent
	// forgot says Forget ran since the last Resume: every saga that
	// Resume finds is taken over, an index entry a transition racing the
	// loss put back included.
	forgot bool
}

// sent is a command sent, by its id and attempt.
type sent struct {
	command string
	attempt int
}

// inFlight is what the engine keeps in memory of a saga in flight.
type inFlight struct {
	deadline time.Time
	version  int
}

// NewEngine checks the versions of a saga type and the config and returns
// an engine that starts new instances under the highest version and runs
// every stored instance under the version it records.
func NewEngine[D any](versions Versions[D], cfg EngineConfig, logger *slog.Logger) (*Engine[D], error) {
	var sagaType string
	if len(versions) > 0 {
		sagaType = versions[0].Type
	}
	if _, ok := any(new(D)).(Record); !ok {
		return nil, fmt.Errorf("saga %q: data type %T is not an Avro record", sagaType, new(D))
	}
	if err := versions.validate(); err != nil {
		return nil, fmt.Errorf("saga %q: invalid definition: %w", sagaType, err)
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("saga %q: invalid config: %w", sagaType, err)
	}
	m, err := newMetrics(cfg.Metrics, sagaType)
	if err != nil {
		return nil, fmt.Errorf("saga %q: register metrics: %w", sagaType, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	e := &Engine[D]{versions: map[int]*Definition[D]{}, cfg: cfg, logger: logger.With("saga_type", sagaType), metrics: m,
		inFlight: map[string]inFlight{}, running: map[int]int{}}
	for _, def := range versions {
		e.versions[def.Version] = &def
	}
	if cfg.Traces != nil {
		e.tracer = cfg.Traces.Tracer("github.com/kafkasaga/kafkasaga/saga")
	}
	latest := versions.latest()
	e.latest = e.versions[latest.Version]
	return e, nil
}

// Instance returns the saga instance with the given id as committed
// (Instances.GetCommitted); ok is false if there is none, and an error
// says it could not be read.
func (e *Engine[D]) Instance(id string) (v SagaInstance, ok bool, err error) {
	return e.cfg.Instances.GetCommitted(id)
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
	if v.Data, err = e.cfg.Codec.Encode(e.latest.StateTopic, any(d).(Record)); err != nil {
		return fmt.Errorf("encode data of saga %s: %w", v.SagaID, err)
	}
	return nil
}

// StepName returns the pending step with its direction ("reserve_credit",
// "reserve_credit:compensate"), or "" once the saga has ended, or if the
// engine lacks its version.
func (e *Engine[D]) StepName(v SagaInstance) string {
	_, step, err := e.pendingStep(v)
	switch {
	case err != nil:
		return ""
	case v.State == StateCompensating:
		return step.Name + ":compensate"
	}
	return step.Name
}

// definition returns the version of the definition v runs under.
func (e *Engine[D]) definition(v SagaInstance) (*Definition[D], error) {
	def, ok := e.versions[v.Version]
	if !ok {
		return nil, fmt.Errorf("saga %s runs under version %d of %s: %w", v.SagaID, v.Version, e.latest.Type, ErrUnknownVersion)
	}
	return def, nil
}

// pendingStep returns the step whose command the instance waits for, in
// the version it runs under. That version may have been changed in place
// since the instance was saved; an instance that no longer fits it is
// reported, not guessed at.
func (e *Engine[D]) pendingStep(v SagaInstance) (*Definition[D], Step[D], error) {
	if v.PendingCommandID == "" {
		return nil, Step[D]{}, fmt.Errorf("saga %s has ended", v.SagaID)
	}
	def, err := e.definition(v)
	if err != nil {
		return nil, Step[D]{}, err
	}
	if v.Step < 0 || v.Step >= len(def.Steps) || commandID(v.SagaID, def.Steps[v.Step].Name, v.State) != v.PendingCommandID {
		return nil, Step[D]{}, fmt.Errorf("saga %s waits for %s, which version %d has no step %d for", v.SagaID, v.PendingCommandID, v.Version, v.Step)
	}
	step := def.Steps[v.Step]
	call := step.Invoke
	if v.State == StateCompensating {
		call = step.Compensate
	}
	if !call.sends() {
		return nil, Step[D]{}, fmt.Errorf("saga %s waits for %s, which step %s of version %d no longer sends", v.SagaID, v.PendingCommandID, step.Name, v.Version)
	}
	return def, step, nil
}

// commandID is deterministic, so a participant recognizes a re-sent command.
func commandID(sagaID, step, state string) string {
	direction := "invoke"
	if state == StateCompensating {
		direction = "compensate"
	}
	return sagaID + ":" + step + ":" + direction
}

// Start starts a saga with the given id under the latest version and sends
// its first command. A saga that already exists is left alone, so a
// duplicate start event is harmless. The saga's trace continues the span
// of ctx (the handling of the event that starts it).
func (e *Engine[D]) Start(ctx context.Context, sagaID string, data D) error {
	if sagaID == "" {
		return errors.New("start saga: empty saga id")
	}
	err := e.transition(ctx, sagaID, func(v *SagaInstance, exists bool, now time.Time) (string, error) {
		if exists {
			return "", errStale
		}
		def := e.latest
		encoded, err := e.cfg.Codec.Encode(def.StateTopic, any(&data).(Record))
		if err != nil {
			return "", fmt.Errorf("encode saga data: %w", err)
		}
		*v = SagaInstance{SagaID: sagaID, SagaType: def.Type, Version: def.Version, Data: encoded}
		e.forward(def, v, 0, now)
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
		def, step, err := e.pendingStep(*v)
		if errors.Is(err, ErrUnknownVersion) {
			e.logger.Error("reply to a saga whose version this engine was not given: dead-lettered, the saga waits untouched",
				"saga_id", sagaID, "version", v.Version, "reply", event)
		}
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
			e.backward(def, v, v.Step-1, now)
		case reply.outcome == Success:
			e.forward(def, v, v.Step+1, now)
		default:
			v.FailureReason = string(reply.outcome)
			e.backward(def, v, v.Step-1, now)
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

// Resume reads every instance held, to learn the pending commands, their
// deadlines and versions, so the ticks of Run time them out and
// saga_instances_running counts them. It forgets the sagas no longer held.
// Call it whenever the instances held change (process.OnRestored: at start
// and after each rebalance), before any reply is handled; transitions wait
// while it runs. The ticks time each out no sooner than a StepTimeout from
// now. It sends nothing: an instance and the command its transition leads
// to are written in one transaction, so a stored pending command was sent. An instance of a version the engine was not given is
// logged as an error and counted, and left as it is. An error means it
// could not read every instance (the schema registry unreachable, say):
// the start must fail rather than leave a saga that is never timed out
// again.
func (e *Engine[D]) Resume(context.Context) error {
	e.resuming.Lock()
	defer e.resuming.Unlock()
	e.resumes++
	now := e.cfg.Clock()
	index, pending := map[string]inFlight{}, map[string]sent{}
	// A deadline that passed while no instance drove the saga (a restart,
	// a takeover) is a step away: its reply may be waiting in the reply
	// topic, which is handled only after this. Timed out at the first
	// tick, a step out of attempts would fail although it was answered.
	grace := now.Add(e.cfg.StepTimeout)
	err := e.cfg.Instances.Range(func(_ string, v SagaInstance) bool {
		if v.PendingCommandID != "" && v.SagaType == e.latest.Type {
			index[v.SagaID] = inFlight{deadline: later(v.Deadline, grace), version: v.Version}
			pending[v.SagaID] = sent{v.PendingCommandID, v.Attempt}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("read the saga instances: %w", err)
	}
	for id, f := range index {
		if e.versions[f.version] == nil {
			e.logger.Error("saga runs under a version this engine was not given: it waits untouched until an engine given the version runs it",
				"saga_id", id, "version", f.version)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	taken := map[string]sent{}
	for id := range index {
		if was, ok := e.taken[id]; ok {
			taken[id] = was
		} else if _, held := e.inFlight[id]; !held || e.forgot {
			taken[id] = pending[id]
		}
	}
	e.taken, e.inFlight, e.forgot = taken, index, false
	versions := map[int]bool{}
	for v := range e.versions {
		versions[v] = true
	}
	for v := range e.running {
		versions[v] = true // a version counted before: back to 0 if none is left
	}
	clear(e.running)
	for _, f := range index {
		e.running[f.version]++
		versions[f.version] = true
	}
	for v := range versions {
		e.count(v)
	}
	return nil
}

// Forget drops what the engine knows of the sagas in flight, as if it
// held none: their partitions were lost (process.OnLost), and another
// instance may have driven them since. The next Resume indexes the sagas
// held then as taken over. It takes no lock a transition holds.
func (e *Engine[D]) Forget() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.inFlight)
	clear(e.taken)
	e.forgot = true
	for v := range e.running {
		e.running[v] = 0
		e.count(v)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
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

// resendsAtOnce is how many overdue sagas a tick times out at once. A
// write outside a handler waits for its transaction's commit: one at a
// time, a backlog of them (a participant down while thousands of sagas
// were in flight) took a commit each, and the tick after it waited.
const resendsAtOnce = 64

// ResendOverdue handles the pending commands past their deadline: each is
// re-sent as its next attempt, unless it is a forward command that has used
// its MaxAttempts: then the saga fails and compensates. It times out up to
// resendsAtOnce sagas at once, so that their writes share commits.
func (e *Engine[D]) ResendOverdue(ctx context.Context) {
	now := e.cfg.Clock()
	// A Resume comes before the reads or after them all: one between two
	// would have the reads after it index their stored deadlines over
	// the grace it gave, and the timeouts, finding it came, leave them.
	e.resuming.RLock()
	resumes := e.resumes
	var due []SagaInstance
	for _, id := range e.overdue(now) {
		if v, ok := e.reread(id, now); ok {
			due = append(due, v)
		}
	}
	e.resuming.RUnlock()
	var wg sync.WaitGroup
	slots := make(chan struct{}, resendsAtOnce)
	for _, v := range due {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := e.timeout(ctx, v, resumes); err != nil {
				e.logger.Warn("time out pending command", "saga_id", v.SagaID, "step", e.StepName(v), "error", err)
			}
		})
	}
	wg.Wait()
}

// reread reads an overdue saga again, keeps the index to what is stored,
// and returns the saga if it is overdue still. A reply or another tick may
// have moved it on since, or recorded its deadline before an earlier
// transition recorded an older one. The caller holds resuming.
func (e *Engine[D]) reread(id string, now time.Time) (SagaInstance, bool) {
	v, err := e.trackStored(id, nil)
	if err != nil {
		e.logger.Warn("read overdue saga; again at the next tick", "saga_id", id, "error", err)
		return v, false // keep its deadline
	}
	if v.PendingCommandID == "" || v.Deadline.After(now) || e.versions[v.Version] == nil {
		return v, false
	}
	if _, _, err := e.pendingStep(v); err != nil {
		// Its version's definition changed in place: no tick can drive
		// it, and reading it at each would only warn again.
		e.logger.Error("saga does not fit its version's definition: left as it is until the orchestrator restarts or rebalances",
			"saga_id", id, "error", err)
		e.park(id)
		return v, false
	}
	return v, true
}

// park keeps saga id in flight, counted, but times it out no more until
// Resume indexes it again.
func (e *Engine[D]) park(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f, ok := e.inFlight[id]; ok {
		f.deadline = time.Unix(1<<62, 0)
		e.inFlight[id] = f
	}
}

// trackStored indexes saga id as it is stored, and returns it. Given a
// grace, the later of the stored deadline and the grace's stays if the saga
// still waits on the grace's command: in one step, so that no tick sees
// the stored deadline alone between the two.
func (e *Engine[D]) trackStored(id string, g *grace) (SagaInstance, error) {
	v, ok, err := e.cfg.Instances.Get(id)
	if err != nil {
		return v, err
	}
	if !ok {
		v = SagaInstance{SagaID: id} // nothing pending: forget it
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.trackLocked(v)
	if g != nil && v.PendingCommandID != "" && v.PendingCommandID == g.command {
		if f, ok := e.inFlight[id]; ok && f.version == g.before.version {
			f.deadline = later(f.deadline, g.before.deadline)
			e.inFlight[id] = f
		}
	}
	return v, nil
}

// grace is what a saga was indexed with before a transition that failed:
// the deadline it had (a Resume's grace, say) while it waited on command.
type grace struct {
	command string
	before  inFlight
}

// track records the deadline and version of v's pending command, or
// forgets v once it has none, and returns what it replaced.
func (e *Engine[D]) track(v SagaInstance) (old inFlight) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.trackLocked(v)
}

// trackLocked is track, with mu held.
func (e *Engine[D]) trackLocked(v SagaInstance) (old inFlight) {
	old, had := e.inFlight[v.SagaID]
	pending := v.PendingCommandID != ""
	if pending {
		e.inFlight[v.SagaID] = inFlight{deadline: v.Deadline, version: v.Version}
	} else {
		delete(e.inFlight, v.SagaID)
	}
	if had && pending && old.version == v.Version {
		return old // counted already
	}
	if had {
		e.running[old.version]--
		e.count(old.version)
	}
	if pending {
		e.running[v.Version]++
		e.count(v.Version)
	}
	return old
}

// count sets the gauges of a version to the sagas in flight under it.
// Called with mu held.
func (e *Engine[D]) count(version int) {
	label := strconv.Itoa(version)
	e.metrics.running.WithLabelValues(label).Set(float64(e.running[version]))
	if e.versions[version] == nil {
		e.metrics.unknown.WithLabelValues(label).Set(float64(e.running[version]))
	}
}

// overdue returns the sagas whose pending command is past its deadline,
// but those of versions the engine was not given: they wait.
func (e *Engine[D]) overdue(now time.Time) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for id, f := range e.inFlight {
		if !f.deadline.After(now) && e.versions[f.version] != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// timeout handles the overdue command of seen, a snapshot of an instance
// taken after the resumes-th Resume: re-sends it as the next attempt, or
// fails the saga when a forward step has used its attempts.
func (e *Engine[D]) timeout(ctx context.Context, seen SagaInstance, resumes uint64) error {
	if e.tracer != nil {
		// No message led here: the re-send continues the saga's trace.
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{HeaderTraceparent: seen.Traceparent})
	}
	err := e.transition(ctx, seen.SagaID, func(v *SagaInstance, exists bool, now time.Time) (string, error) {
		if !exists || v.PendingCommandID != seen.PendingCommandID || v.Attempt != seen.Attempt {
			return "", errStale // answered, or timed out by another call, meanwhile
		}
		if e.resumes != resumes {
			// Resumed meanwhile (an assignment, the restore after an
			// abort): its grace holds, and a later tick sees it.
			return "", errStale
		}
		def, step, err := e.pendingStep(*v)
		if err != nil {
			return "", err
		}
		// A command another instance sent, or this one before a restart,
		// is sent once more before its step is given up: its reply may
		// have reached an instance that could not apply it (one not given
		// the saga's version, in a rolling deploy, dead-letters it), and
		// the participant answers again from its decision.
		e.mu.Lock()
		was, taken := e.taken[v.SagaID]
		e.mu.Unlock()
		once := taken && was == sent{v.PendingCommandID, v.Attempt}
		outOfAttempts := v.Attempt > e.cfg.MaxAttempts || v.Attempt == e.cfg.MaxAttempts && !once
		switch {
		case v.State == StateRunning && outOfAttempts && !def.committed(v.Step):
			v.FailureReason = timeoutReason(step.Name)
			e.backward(def, v, v.Step, now) // its effect is unknown: undo it too
			return EventTimeout, nil
		case v.State == StateCompensating && outOfAttempts &&
			(v.FailureReason == timeoutReason(step.Name) || abortedUnanswered(*v, step.Name)):
			// The step never answered its command (it timed out, or an
			// operator aborted it while it waited), and now not its
			// compensation either: its participant is down. Both wait in
			// Kafka in that order (same topic and key, which the consumer keeps),
			// so the participant will undo the step once it is back.
			// Waiting longer would hold the saga for nothing.
			e.backward(def, v, v.Step-1, now)
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
// writes it with the instance. The orchestrator's Instances write both in
// one Kafka transaction: a reader sees both or neither, and a failed
// Update leaves neither, so the reply or timeout that caused it is handled
// again. A command whose reply is lost is re-sent on its timeout, the
// participant answering it again from its recorded decision. So an
// instance is never acted on before it is saved (write-ahead).
//
// A transition is traced, when the engine traces, as a child of ctx's span
// (the handling of a reply or start event, or the saga's stored trace
// context for a timeout), and its command is sent as the transition's
// child. The instance keeps the transition's trace context, for the next
// timeout to continue.
func (e *Engine[D]) transition(ctx context.Context, id string,
	change func(v *SagaInstance, exists bool, now time.Time) (event string, err error),
) error {
	// What the Update's function leaves, in one variable: it escapes
	// with the function, one allocation rather than three.
	var r struct {
		event   string
		after   SagaInstance
		out     *Outgoing
		tracked bool
		was     string   // the pending command change found
		before  inFlight // and its index, a Resume's grace included
	}
	ctx, span := e.startSpan(ctx, id)
	defer span.End()
	e.resuming.RLock()
	defer e.resuming.RUnlock()
	err := e.cfg.Instances.Update(ctx, id, func(v *SagaInstance, exists bool) (*Outgoing, error) {
		now := e.cfg.Clock()
		r.was = v.PendingCommandID
		var err error
		if r.event, err = change(v, exists, now); err != nil {
			return nil, err
		}
		if span.SpanContext().IsValid() { // recorded or not: an unsampled saga stays so
			carrier := propagation.MapCarrier{}
			propagation.TraceContext{}.Inject(ctx, carrier)
			v.Traceparent = carrier[HeaderTraceparent]
		}
		v.History = trimmed(v.History)
		v.History = append(v.History, SagaTransition{At: now, Event: r.event, State: v.State, Step: e.StepName(*v), By: operator(ctx)})
		// Encoding before saving means a codec failure leaves the saga untouched.
		if r.out, err = e.command(*v); err != nil {
			return nil, err
		}
		if r.out != nil {
			// Sent on behalf of the transition: its trace, not who asked
			// for it, which a reply handled in this process would inherit.
			r.out.Msg.SetContext(withoutOperator(ctx))
		}
		r.after = *v
		// Indexed here, while the store holds the saga's key: after
		// Update returns, a write outside a handler has released it to
		// wait for its commit, and a later transition may have been
		// indexed meanwhile. A write that fails after this either aborts
		// its transaction, and Resume indexes what is stored again, or
		// never joined one (an action whose caller left, a write
		// refused): then what is stored is indexed again below.
		// A store may run this again (a stale read): what the first run
		// replaced is what a failure puts back.
		if old := e.track(r.after); !r.tracked {
			r.before = old
		}
		r.tracked = true
		return r.out, nil
	}, func(committed bool) {
		// Counted once committed: a transition whose transaction
		// aborted is made again, and counted then.
		if committed {
			e.metrics.transitions.WithLabelValues(r.event).Inc()
			if r.after.PendingCommandID == "" {
				e.metrics.ended.WithLabelValues(r.after.State).Inc()
			}
		}
	})
	event, after, out := r.event, r.after, r.out
	if span.IsRecording() {
		e.endSpan(span, after, event, err)
	}
	if err != nil {
		if r.tracked {
			// Unread (its partition given up, say), it is indexed again
			// by Resume or once its deadline comes.
			// A Resume's grace stays.
			if _, rerr := e.trackStored(id, &grace{command: r.was, before: r.before}); rerr != nil {
				e.logger.Debug("read saga after a failed transition", "saga_id", id, "error", rerr)
			}
		}
		return err
	}
	// Checked first: the arguments of a line that is not logged would still
	// be built, a dozen allocations per transition.
	if e.logger.Enabled(ctx, slog.LevelInfo) {
		step := e.StepName(after)
		e.logger.Info("saga transition", "saga_id", id, "step", step, "state", after.State, "event", event)
		if out != nil && e.logger.Enabled(ctx, slog.LevelDebug) {
			e.logger.Debug("command sent", "saga_id", id, "step", step, "topic", out.Topic,
				"command_id", after.PendingCommandID, "attempt", after.Attempt)
		}
	}
	return nil
}

// startSpan starts the span of a transition of saga id, a child of ctx's
// span; a span that records nothing when the engine does not trace.
func (e *Engine[D]) startSpan(ctx context.Context, id string) (context.Context, trace.Span) {
	if e.tracer == nil {
		return ctx, trace.SpanFromContext(context.Background())
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(
		attribute.String("saga.id", id), attribute.String("saga.type", e.latest.Type))}
	if a, _ := ctx.Value(operatorKey{}).(operatorAction); a.request.SpanContext.IsValid() {
		opts = append(opts, trace.WithLinks(a.request))
	}
	return e.tracer.Start(ctx, e.latest.Type+" transition", opts...)
}

// endSpan names a transition's span after its event (e.g. "CreateOrder
// CreditReserved") and records where it led, or why it led nowhere.
func (e *Engine[D]) endSpan(span trace.Span, after SagaInstance, event string, err error) {
	switch {
	case errors.Is(err, errStale):
		span.SetAttributes(attribute.Bool("saga.stale", true))
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	default:
		span.SetName(e.latest.Type + " " + event)
		span.SetAttributes(attribute.String("saga.event", event), attribute.String("saga.state", after.State),
			attribute.String("saga.step", e.StepName(after)), attribute.Int("saga.version", after.Version),
			attribute.Int("saga.attempt", after.Attempt))
	}
}

// forward makes the first step of def from step i on that has a command
// pending; with none left the saga has completed.
func (e *Engine[D]) forward(def *Definition[D], v *SagaInstance, i int, now time.Time) {
	for ; i < len(def.Steps); i++ {
		if def.Steps[i].Invoke.sends() {
			e.pend(def, v, StateRunning, i, now)
			return
		}
	}
	e.end(v, StateCompleted)
}

// backward makes the first compensation of def from step i down pending;
// with none left the saga is rejected.
func (e *Engine[D]) backward(def *Definition[D], v *SagaInstance, i int, now time.Time) {
	for ; i >= 0; i-- {
		if def.Steps[i].Compensate.sends() {
			e.pend(def, v, StateCompensating, i, now)
			return
		}
	}
	e.end(v, StateRejected)
}

func (e *Engine[D]) pend(def *Definition[D], v *SagaInstance, state string, step int, now time.Time) {
	v.State, v.Step, v.Attempt = state, step, 1
	v.PendingCommandID = commandID(v.SagaID, def.Steps[step].Name, state)
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
	_, step, err := e.pendingStep(v)
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
	msg.Metadata.Set(HeaderReplyTo, e.latest.ReplyTopic)
	return &Outgoing{Topic: declared.topic, Key: declared.key(cmd), Msg: msg}, nil
}

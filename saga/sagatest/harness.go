package sagatest

import (
	"context"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kafkasaga/kafkasaga/saga"
)

// Harness runs a saga definition on the fakes, so a test can start a saga,
// answer its commands one by one and look at what the engine did.
type Harness[D any] struct {
	t         testing.TB
	cfg       saga.EngineConfig
	Engine    *saga.Engine[D]
	Instances *Instances
	Codec     *Codec
	Publisher *Publisher
	Clock     *Clock
	Metrics   *prometheus.Registry
}

// NewHarness returns an engine for def, its only version, that uses new
// fakes. cfg sets the timing (StepTimeout, MaxAttempts, MaxBackoff); its
// other fields are replaced.
func NewHarness[D any](t testing.TB, def saga.Definition[D], cfg saga.EngineConfig) *Harness[D] {
	t.Helper()
	pub := &Publisher{}
	h := &Harness[D]{t: t, cfg: cfg, Instances: NewInstances(pub), Codec: NewCodec(), Publisher: pub, Clock: NewClock()}
	h.newEngine(saga.Versions[D]{def})
	return h
}

// Deploy replaces the engine with one for the given versions, on the same
// store, codec, publisher and clock, as a deploy of a new orchestrator
// would: with a new metrics registry, and resumed (Engine.Resume) from the
// instances stored.
func (h *Harness[D]) Deploy(versions ...saga.Definition[D]) {
	h.t.Helper()
	h.newEngine(versions)
	if err := h.Engine.Resume(context.Background()); err != nil {
		h.t.Fatalf("resume: %v", err)
	}
}

func (h *Harness[D]) newEngine(versions saga.Versions[D]) {
	h.t.Helper()
	cfg := h.cfg
	h.Metrics = prometheus.NewRegistry()
	cfg.Instances, cfg.Codec, cfg.Clock, cfg.Metrics = h.Instances, h.Codec, h.Clock.Now, h.Metrics
	engine, err := saga.NewEngine(versions, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		h.t.Fatalf("new engine: %v", err)
	}
	h.Engine = engine
}

// Start starts a saga and fails the test if that fails.
func (h *Harness[D]) Start(sagaID string, data D) {
	h.t.Helper()
	if err := h.Engine.Start(context.Background(), sagaID, data); err != nil {
		h.t.Fatalf("start saga %s: %v", sagaID, err)
	}
}

// Sent returns the commands sent so far, in order.
func (h *Harness[D]) Sent() []Sent { return h.Publisher.Sent() }

// Last returns the last command sent, failing the test if none was.
func (h *Harness[D]) Last() Sent {
	h.t.Helper()
	sent := h.Sent()
	if len(sent) == 0 {
		h.t.Fatal("got no command sent, want one")
	}
	return sent[len(sent)-1]
}

// Body decodes a sent command.
func (h *Harness[D]) Body(s Sent) saga.Record {
	h.t.Helper()
	v, err := h.Codec.Decode(s.Msg.Payload)
	if err != nil {
		h.t.Fatalf("decode command sent to %s: %v", s.Topic, err)
	}
	return v
}

// Reply hands the engine a participant's reply to cmd and returns what
// HandleReply returned.
func (h *Harness[D]) Reply(cmd Sent, body saga.Record) error {
	h.t.Helper()
	msg, err := Reply(h.Codec, cmd.Msg, body)
	if err != nil {
		h.t.Fatalf("encode reply: %v", err)
	}
	return h.Engine.HandleReply(msg)
}

// Exchange is one command a saga is expected to send, and the reply it
// gets.
type Exchange struct {
	Topic, Key, Step string
	Command          saga.Record
	Reply            saga.Record // nil: the command times out instead
}

// Play checks that the saga sends the commands of exchanges in order, each
// on its topic with its key, step and reply topic, answering each with its
// Reply or letting it time out, and that it sends nothing more. It also
// checks that every command of a step (its retries, its compensation) has
// the key of the step's first: a compensation keyed otherwise could reach
// another partition and overtake the command it undoes.
func (h *Harness[D]) Play(replyTopic string, exchanges []Exchange) {
	h.t.Helper()
	keys := map[string]string{} // by step: its first command's key
	for i, want := range exchanges {
		if got := len(h.Sent()); got != i+1 {
			h.t.Fatalf("before command %d (%s): got %d commands sent, want %d", i, want.Step, got, i+1)
		}
		cmd := h.Last()
		if cmd.Topic != want.Topic || cmd.Key != want.Key {
			h.t.Errorf("command %d: got topic %q key %q, want %q %q", i, cmd.Topic, cmd.Key, want.Topic, want.Key)
		}
		step := cmd.Msg.Metadata.Get(saga.HeaderStep)
		if step != want.Step {
			h.t.Errorf("command %d step: got %q, want %q", i, step, want.Step)
		}
		name, _, _ := strings.Cut(step, ":") // "reserve_credit:compensate" is reserve_credit's
		if first, ok := keys[name]; !ok {
			keys[name] = cmd.Key
		} else if cmd.Key != first {
			h.t.Errorf("command %d (%s): key %q, but the step's first command had %q: a step's commands and its compensation must share their key, or the undo may overtake the do", i, step, cmd.Key, first)
		}
		if got := cmd.Msg.Metadata.Get(saga.HeaderReplyTo); got != replyTopic {
			h.t.Errorf("command %d reply_to: got %q, want %q", i, got, replyTopic)
		}
		if got := h.Body(cmd); !reflect.DeepEqual(got, want.Command) {
			h.t.Errorf("command %d: got %#v, want %#v", i, got, want.Command)
		}
		if want.Reply == nil {
			h.Clock.Advance(h.cfg.StepTimeout)
			h.Engine.ResendOverdue(context.Background())
			continue
		}
		if err := h.Reply(cmd, want.Reply); err != nil {
			h.t.Fatalf("reply to command %d: %v", i, err)
		}
	}
	if got, want := len(h.Sent()), len(exchanges); got != want {
		h.t.Errorf("got %d commands sent, want %d", got, want)
	}
}

// Counter returns the value of the counter with the given name and labels,
// 0 if it has not counted yet.
func (h *Harness[D]) Counter(name string, labels map[string]string) float64 {
	h.t.Helper()
	m, _ := h.metric(name, labels)
	return m.GetCounter().GetValue()
}

// Gauge returns the value of the gauge with the given name and labels; ok
// is false if there is none.
func (h *Harness[D]) Gauge(name string, labels map[string]string) (v float64, ok bool) {
	h.t.Helper()
	m, ok := h.metric(name, labels)
	return m.GetGauge().GetValue(), ok
}

// metric returns the first sample with the given name and labels.
func (h *Harness[D]) metric(name string, labels map[string]string) (*dto.Metric, bool) {
	h.t.Helper()
	families, err := h.Metrics.Gather()
	if err != nil {
		h.t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				return m, true
			}
		}
	}
	return nil, false
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

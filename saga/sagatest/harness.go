package sagatest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kafkasaga/kafkasaga/saga"
)

// Harness runs a saga definition on the fakes, so a test can start a saga,
// answer its commands one by one and look at what the engine did.
type Harness[D any] struct {
	t         testing.TB
	Engine    *saga.Engine[D]
	Instances *Instances
	Codec     *Codec
	Publisher *Publisher
	Clock     *Clock
	Metrics   *prometheus.Registry
}

// NewHarness returns an engine for def that uses new fakes. cfg sets the
// timing (StepTimeout, MaxAttempts, MaxBackoff); its other fields are replaced.
func NewHarness[D any](t testing.TB, def saga.Definition[D], cfg saga.EngineConfig) *Harness[D] {
	t.Helper()
	pub := &Publisher{}
	h := &Harness[D]{t: t, Instances: NewInstances(pub), Codec: NewCodec(), Publisher: pub,
		Clock: NewClock(), Metrics: prometheus.NewRegistry()}
	cfg.Instances, cfg.Codec, cfg.Clock = h.Instances, h.Codec, h.Clock.Now
	cfg.Metrics = h.Metrics
	engine, err := saga.NewEngine(def, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	h.Engine = engine
	return h
}

// Start starts a saga and fails the test if that fails.
func (h *Harness[D]) Start(sagaID string, data D) {
	h.t.Helper()
	if err := h.Engine.Start(context.Background(), sagaID, data, ""); err != nil {
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

// Counter returns the value of the counter with the given name and labels,
// 0 if it has not counted yet.
func (h *Harness[D]) Counter(name string, labels map[string]string) float64 {
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
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
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

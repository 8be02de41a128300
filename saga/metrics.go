package saga

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are labelled by saga type, so engines of several saga types can
// share one registry.
type metrics struct {
	transitions *prometheus.CounterVec // by event
	stale       prometheus.Counter
	timeouts    *prometheus.CounterVec // by step
	ended       *prometheus.CounterVec // by outcome: the final state
	running     *prometheus.GaugeVec   // by version
	unknown     *prometheus.GaugeVec   // by version, of the versions the engine was not given
}

func newMetrics(reg prometheus.Registerer, sagaType string) (*metrics, error) {
	labels := prometheus.Labels{"saga_type": sagaType}
	transitions, err1 := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "saga_transitions_total", Help: "Saga transitions, by the event that caused them.",
	}, []string{"saga_type", "event"}))
	stale, err2 := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "saga_stale_replies_total", Help: "Replies ignored because they did not answer the pending command.",
	}, []string{"saga_type"}))
	timeouts, err3 := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "saga_timeouts_total", Help: "Pending commands that were not answered in time.",
	}, []string{"saga_type", "step"}))
	ended, err4 := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "saga_ended_total", Help: "Sagas that ended, by final state.",
	}, []string{"saga_type", "outcome"}))
	running, err5 := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "saga_instances_running", Help: "Sagas in flight (a command pending), by the version of the saga definition they run under.",
	}, []string{"saga_type", "version"}))
	unknown, err6 := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "saga_instances_unknown_version", Help: "Sagas in flight under a version of the saga definition the orchestrator was not given: they wait until it is.",
	}, []string{"saga_type", "version"}))
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return nil, err
	}
	return &metrics{
		transitions: transitions.MustCurryWith(labels),
		stale:       stale.With(labels),
		timeouts:    timeouts.MustCurryWith(labels),
		ended:       ended.MustCurryWith(labels),
		running:     running.MustCurryWith(labels),
		unknown:     unknown.MustCurryWith(labels),
	}, nil
}

// register registers c, or returns the collector registered before it under
// the same name, as a second engine on the same registry finds it.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

package messaging

import (
	"github.com/prometheus/client_golang/prometheus"
	metrics "github.com/rcrowley/go-metrics"
)

// noMetrics is the go-metrics registry given to Sarama: it hands out metrics
// that record nothing. Sarama otherwise keeps a sampled histogram of every
// request and record batch, about 4% of the CPU under load, and nothing
// reads them: the process's metrics are Prometheus', from the router, the
// dead letters and the saga engine.
type noMetrics struct{ metrics.Registry }

func (r noMetrics) GetOrRegister(name string, metric any) any {
	switch metric.(type) {
	case func() metrics.Histogram:
		return metrics.NilHistogram{}
	case func() metrics.Meter:
		return metrics.NilMeter{}
	case func() metrics.Counter:
		return metrics.NilCounter{}
	}
	return r.Registry.GetOrRegister(name, metric)
}

// transactionMetrics describe the Session's transactions, the unit of its
// work: how many records each carries, and how long it takes to handle
// them and to commit (transaction_seconds by phase: handle, the batch's
// handlers; prepare, the flush of its records and its offsets; end).
// Under load a transaction carries many records and each phase grows
// with the others' load; idle, one record a transaction, and a phase is
// its requests' round trips.
type transactionMetrics struct {
	records              prometheus.Histogram
	seconds              *prometheus.HistogramVec
	handle, prepare, end prometheus.Observer
	heldBack             prometheus.Gauge // partitions not fetched for now: a record of theirs kept failing
}

func newTransactionMetrics() transactionMetrics {
	m := transactionMetrics{
		records: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "transaction_records",
			Help:    "Records consumed and handled in a transaction (0: writes of HTTP requests or timers only).",
			Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000},
		}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "transaction_seconds",
			Help:    "Time a transaction spends in each phase: handle (its records' handlers), prepare (the flush of its records and its offsets), end.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}, []string{"phase"}),
		heldBack: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "partitions_held_back",
			Help: "Partitions not fetched for now, since a record of theirs kept failing while records of other partitions were handled beside it.",
		}),
	}
	m.handle, m.prepare, m.end = m.seconds.WithLabelValues("handle"), m.seconds.WithLabelValues("prepare"), m.seconds.WithLabelValues("end")
	return m
}

func (m transactionMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.records, m.seconds, m.heldBack} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

package messaging

import (
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

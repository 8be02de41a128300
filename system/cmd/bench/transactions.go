package main

import (
	"context"
	"net/http"

	dto "github.com/prometheus/client_model/go"

	"github.com/kafkasaga/kafkasaga/system"
	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

// histo is a histogram's sum and count, added up over series and
// instances.
type histo struct{ sum, count float64 }

// add adds o to h, times k (-1 takes it away).
func (h *histo) add(o histo, k float64) { h.sum, h.count = h.sum+k*o.sum, h.count+k*o.count }

// txnTotals adds up the transaction metrics of a process's instances
// (messaging.Session's transaction_records, whose count is the
// transactions, and transaction_seconds by phase), and the HTTP requests
// they forwarded to the owner of their key.
type txnTotals struct {
	records   histo
	phases    map[string]histo
	forwarded float64
}

// add adds o to t, times k (-1 takes it away).
func (t *txnTotals) add(o txnTotals, k float64) {
	t.records.add(o.records, k)
	t.forwarded += k * o.forwarded
	if t.phases == nil {
		t.phases = map[string]histo{}
	}
	for name, h := range o.phases {
		sum := t.phases[name]
		sum.add(h, k)
		t.phases[name] = sum
	}
}

// txnStats is what a process's transactions did over the measured sagas.
type txnStats struct {
	PerSaga                    float64 // transactions a saga
	Records                    float64 // records handled a transaction
	HandleMs, PrepareMs, EndMs float64 // each phase, a transaction on average (prepare: the flush of its records and its offsets)
	Forwarded                  float64 // HTTP requests forwarded to their key's owner, a saga
}

// scrapeTransactions reads the transaction metrics of every instance of
// every process from its /metrics.
func scrapeTransactions(ctx context.Context, t *target) (map[string]txnTotals, error) {
	client := &http.Client{}
	out := map[string]txnTotals{}
	for _, name := range system.Names() {
		var sum txnTotals
		for _, base := range t.urls[name] {
			families, err := load.Metrics(ctx, client, base)
			if err != nil {
				return nil, err
			}
			instance := txnTotals{phases: map[string]histo{}} // one series each
			for _, m := range families["transaction_records"].GetMetric() {
				instance.records = histogramOf(m)
			}
			for _, m := range families["transaction_seconds"].GetMetric() {
				instance.phases[label(m, "phase")] = histogramOf(m)
			}
			for _, m := range families["http_forwarded_total"].GetMetric() {
				if label(m, "outcome") == "forwarded" {
					instance.forwarded += m.GetCounter().GetValue()
				}
			}
			sum.add(instance, 1)
		}
		out[name] = sum
	}
	return out, nil
}

func histogramOf(m *dto.Metric) histo {
	return histo{sum: m.GetHistogram().GetSampleSum(), count: float64(m.GetHistogram().GetSampleCount())}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// allProcesses names, in transactionStats, the processes together.
const allProcesses = ""

// transactionStats returns, by process and for all together
// (allProcesses), what their transactions did between two scrapes, over
// sagas sagas.
func transactionStats(before, after map[string]txnTotals, sagas int) map[string]txnStats {
	out := map[string]txnStats{}
	var all txnTotals
	for name, a := range after {
		var d txnTotals // a less before, in maps of its own
		d.add(a, 1)
		d.add(before[name], -1)
		all.add(d, 1)
		if x, ok := d.stats(sagas); ok {
			out[name] = x
		}
	}
	if x, ok := all.stats(sagas); ok {
		out[allProcesses] = x
	}
	return out
}

// stats returns the means of t over sagas sagas; false if t counted no
// transaction.
func (t txnTotals) stats(sagas int) (txnStats, bool) {
	if t.records.count <= 0 || sagas == 0 {
		return txnStats{}, false
	}
	ms := func(phase string) float64 {
		if h := t.phases[phase]; h.count > 0 {
			return round(h.sum/h.count*1000, 3)
		}
		return 0
	}
	return txnStats{
		PerSaga:   round(t.records.count/float64(sagas), 3),
		Records:   round(t.records.sum/t.records.count, 1),
		HandleMs:  ms("handle"),
		PrepareMs: ms("prepare"),
		EndMs:     ms("end"),
		Forwarded: round(t.forwarded/float64(sagas), 3),
	}, true
}

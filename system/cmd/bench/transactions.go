package main

import (
	"context"
	"net/http"

	dto "github.com/prometheus/client_model/go"

	"github.com/kafkasaga/kafkasaga/system"
	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

// txnTotals adds up the transaction metrics of a process's instances
// (messaging.Session's transaction_records and transaction_seconds).
type txnTotals struct {
	count, records           float64
	handle, prepare, end     float64 // seconds
	handled, prepared, ended float64 // observations
}

// add adds o to t, times k (-1 takes it away).
func (t *txnTotals) add(o txnTotals, k float64) {
	t.count, t.records = t.count+k*o.count, t.records+k*o.records
	t.handle, t.prepare, t.end = t.handle+k*o.handle, t.prepare+k*o.prepare, t.end+k*o.end
	t.handled, t.prepared, t.ended = t.handled+k*o.handled, t.prepared+k*o.prepared, t.ended+k*o.ended
}

// txnStats is what a process's transactions did over the measured sagas.
type txnStats struct {
	PerSaga                    float64 // transactions a saga
	Records                    float64 // records handled a transaction
	HandleMs, PrepareMs, EndMs float64 // each phase, a transaction on average (prepare: the flush of its records and its offsets)
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
			if f := families["transaction_records"]; f != nil {
				for _, m := range f.GetMetric() {
					sum.count += float64(m.GetHistogram().GetSampleCount())
					sum.records += m.GetHistogram().GetSampleSum()
				}
			}
			if f := families["transaction_seconds"]; f != nil {
				for _, m := range f.GetMetric() {
					h := m.GetHistogram()
					switch phase(m) {
					case "handle":
						sum.handle, sum.handled = sum.handle+h.GetSampleSum(), sum.handled+float64(h.GetSampleCount())
					case "prepare":
						sum.prepare, sum.prepared = sum.prepare+h.GetSampleSum(), sum.prepared+float64(h.GetSampleCount())
					case "end":
						sum.end, sum.ended = sum.end+h.GetSampleSum(), sum.ended+float64(h.GetSampleCount())
					}
				}
			}
		}
		out[name] = sum
	}
	return out, nil
}

func phase(m *dto.Metric) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == "phase" {
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
	for name, d := range after {
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
	if t.count <= 0 || sagas == 0 {
		return txnStats{}, false
	}
	mean := func(sum, n float64) float64 {
		if n <= 0 {
			return 0
		}
		return round(sum/n*1000, 3)
	}
	return txnStats{
		PerSaga:   round(t.count/float64(sagas), 3),
		Records:   round(t.records/t.count, 1),
		HandleMs:  mean(t.handle, t.handled),
		PrepareMs: mean(t.prepare, t.prepared),
		EndMs:     mean(t.end, t.ended),
	}, true
}

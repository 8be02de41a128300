package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/system"
	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

// summary is the JSON object that ends the output, for scripts and CI to
// compare runs by.
type summary struct {
	Sagas          int     `json:"sagas"`
	SagasPerS      float64 `json:"sagas_per_s"`
	P50Ms          float64 `json:"p50_ms"`
	P95Ms          float64 `json:"p95_ms"`
	P99Ms          float64 `json:"p99_ms"`
	MaxMs          float64 `json:"max_ms"`
	RoundtripsPerS float64 `json:"roundtrips_per_s"`
	RecordsPerS    float64 `json:"records_per_s"`
	RecordsPerSaga float64 `json:"records_per_saga"`
	// Efficiency is the share of the producers' ceiling that the sagas'
	// records use: sagas_per_s * records_per_saga / records_per_s.
	Efficiency float64 `json:"efficiency"`
	// EfficiencyCeiling is the efficiency the same mix of records would
	// reach if nothing but Kafka's client and broker and watermill's
	// routers cost anything (see ceiling).
	EfficiencyCeiling float64 `json:"efficiency_ceiling"`
	Rate              float64 `json:"rate,omitempty"` // the open loop's target, sagas per second
	// Instances is how many instances of every process ran.
	Instances int `json:"instances"`
	// CPUUsPerSaga is the CPU time (user and system, in µs) the whole
	// process used during the measured sagas, per saga: the system's
	// instances and the bench's own HTTP clients and observers alike.
	// Absent where the OS does not tell (getrusage is Unix's).
	CPUUsPerSaga float64 `json:"cpu_us_per_saga,omitempty"`
	// HarnessCPUUsPerSaga is the bench's own part of CPUUsPerSaga (its HTTP
	// clients, the reader that sees sagas end, the progress bar and the
	// profiler), by the share of a CPU profile's samples that carry its
	// label; SystemCPUUsPerSaga is the rest: the processes, the broker
	// and the registry. Absent with CPUUsPerSaga, or when the profile
	// holds no sample; zero is a figure.
	HarnessCPUUsPerSaga *float64 `json:"harness_cpu_us_per_saga,omitempty"`
	SystemCPUUsPerSaga  *float64 `json:"system_cpu_us_per_saga,omitempty"`
	// TransactionsPerSaga is the Kafka transactions of every process a
	// saga; RecordsPerTransaction the records each handled, and HandleMs,
	// PrepareMs (the flush of its records and its offsets) and EndMs the
	// mean time of each phase of one, over all processes (the table has
	// them by process).
	TransactionsPerSaga   float64 `json:"transactions_per_saga"`
	RecordsPerTransaction float64 `json:"records_per_transaction"`
	HandleMs              float64 `json:"handle_ms"`
	PrepareMs             float64 `json:"prepare_ms"`
	EndMs                 float64 `json:"end_ms"`
	// ForwardedPerSaga is the HTTP requests an instance forwarded to the
	// owner of their key, a saga.
	ForwardedPerSaga float64 `json:"forwarded_per_saga"`
}

// errNoCeiling: the sagas wrote records faster than the bound, so the bound
// measured less than the producer can do and every efficiency against it
// would be flattered.
var errNoCeiling = errors.New("the bound is no ceiling")

// check fails a run whose sagas outran their bound.
func (s summary) check() error {
	if s.Efficiency > 1 {
		return fmt.Errorf("%w: the sagas wrote %.0f records/s, the bound %.0f", errNoCeiling, s.SagasPerS*s.RecordsPerSaga, s.RecordsPerS)
	}
	return nil
}

func summarize(cfg Config, b bound, ph *sagaPhase) summary {
	lat := latencies(ph.measured())
	var records int64
	for _, n := range ph.written {
		records += n
	}
	s := summary{
		Sagas:          len(ph.measured()),
		SagasPerS:      round(float64(len(ph.measured()))/ph.elapsed.Seconds(), 1),
		P50Ms:          ms(percentile(lat, 0.50)),
		P95Ms:          ms(percentile(lat, 0.95)),
		P99Ms:          ms(percentile(lat, 0.99)),
		MaxMs:          ms(percentile(lat, 1)),
		RoundtripsPerS: round(b.roundtripsPerS, 1),
		RecordsPerS:    round(b.recordsPerS, 1),
		RecordsPerSaga: round(float64(records)/float64(len(ph.measured())), 3),
		Rate:           cfg.Rate,
		Instances:      max(cfg.Instances, 1),
	}
	all := ph.transactions[allProcesses]
	s.TransactionsPerSaga, s.RecordsPerTransaction = all.PerSaga, all.Records
	s.HandleMs, s.PrepareMs, s.EndMs = all.HandleMs, all.PrepareMs, all.EndMs
	s.ForwardedPerSaga = all.Forwarded
	if ph.cpuOK {
		perSaga := float64(ph.cpu.Microseconds()) / float64(len(ph.measured()))
		s.CPUUsPerSaga = round(perSaga, 1)
		if ph.shareErr == nil {
			harness, system := round(ph.share.harness*perSaga, 1), round((1-ph.share.harness)*perSaga, 1)
			s.HarnessCPUUsPerSaga, s.SystemCPUUsPerSaga = &harness, &system
		}
	}
	s.Efficiency = round(s.SagasPerS*s.RecordsPerSaga/s.RecordsPerS, 4)
	s.EfficiencyCeiling = round(ceiling(ph.written, s.RoundtripsPerS, s.RecordsPerS), 4)
	return s
}

// ceiling is the efficiency a system writing the sagas' records would
// reach if everything but Kafka's client and broker (and watermill's
// routers) cost nothing. A record of a log topic (an event, command or
// reply) is consumed and answered by a handler: it costs what a record of
// the round-trip bound costs, half a round trip. A record of a compacted
// topic (state) or of an archive is only written: it costs what a record
// of the records bound costs. Efficiency is time-weighted, so the ceiling
// is the records bound's time for the mix over the time both bounds take
// for it.
func ceiling(written map[string]int64, roundtripsPerS, recordsPerS float64) float64 {
	var logs, state float64
	for _, t := range contracts.Topics() {
		if t.Compacted || t.Archive {
			state += float64(written[t.Name])
		} else {
			logs += float64(written[t.Name])
		}
	}
	took := logs/(2*roundtripsPerS) + state/recordsPerS
	if took == 0 {
		return 0
	}
	return (logs + state) / recordsPerS / took
}

// latencies returns, sorted, each saga's time from its order's POST (or,
// in the open loop, from when it was due) to when its end was read.
func latencies(runs []load.SagaRun) []time.Duration {
	lat := make([]time.Duration, len(runs))
	for i, r := range runs {
		lat[i] = r.End.Seen.Sub(r.Sent)
	}
	slices.Sort(lat)
	return lat
}

// percentile is the nearest-rank percentile of sorted, q in (0, 1].
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}

// writeTable writes the human-readable report.
func writeTable(w io.Writer, cfg Config, t *target, b bound, ph *sagaPhase, v verification, s summary, verr error) {
	loop := fmt.Sprintf("closed loop, %d HTTP clients", cfg.Concurrency)
	if cfg.Rate > 0 {
		loop = fmt.Sprintf("open loop at %g sagas/s, %d HTTP clients", cfg.Rate, cfg.Concurrency)
	}
	fmt.Fprintf(w, "\nkafkasaga bench: %d Create Order sagas, %s\n", s.Sagas, loop)
	fmt.Fprintf(w, "machine: %s/%s, %d CPUs, GOMAXPROCS %d, %s; kafka: %s\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), t.kafkaName)
	fmt.Fprintf(w, "consumers fetch once %d B are ready or after %s (KAFKA_FETCH_MIN_BYTES, KAFKA_FETCH_MAX_WAIT)\n\n",
		t.kafka.FetchMinBytes, t.kafka.FetchMaxWait)
	if verr != nil {
		// A wrong system's speed means nothing: no figure.
		fmt.Fprintf(w, "correctness  FAILED  no figures: %v\n\n", verr)
		return
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...any) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	}
	row("bound: records/s", fmt.Sprintf("%.0f", s.RecordsPerS),
		fmt.Sprintf("median of %d rounds with the processes stopped, half before and half after the sagas (%.0f to %.0f), each %d records of %d B from %d goroutines, %d a partition, each waiting for acks=all",
			len(b.rounds), b.rounds[0], b.rounds[len(b.rounds)-1], cfg.BoundRecords, recordSize, inFlight, inFlight/partitions))
	row("bound: roundtrips/s", fmt.Sprintf("%.0f", s.RoundtripsPerS),
		fmt.Sprintf("%d request -> reply through two watermill routers, %d clients in flight, each under a key of its own, %d partitions", cfg.BoundRoundtrips, inFlight, partitions))
	keys := "with no Idempotency-Key: the instance that gets an order makes it (CLIENT_KEYS)"
	if cfg.ClientKeys {
		keys = "each POST under an Idempotency-Key of their own, forwarded when another instance owns it (CLIENT_KEYS)"
	}
	row("instances", s.Instances, "of each of the four processes, each a system.Run of its own sharing the work by partition; the HTTP clients send to them in turn, "+keys)
	row("forwarded/saga", fmt.Sprintf("%.2f", s.ForwardedPerSaga), "HTTP requests an instance forwarded to the owner of their key")
	row("sagas/s", fmt.Sprintf("%.1f", s.SagasPerS),
		fmt.Sprintf("%d sagas ended %.1f s after their first POST; all posted after %.1f s; %d warm-up sagas ran before them", s.Sagas, ph.elapsed.Seconds(), ph.posting.Seconds(), ph.warmup))
	if cfg.Rate > 0 {
		row("posted/s", fmt.Sprintf("%.1f", float64(s.Sagas)/ph.posting.Seconds()), fmt.Sprintf("target %g", cfg.Rate))
	}
	if ph.cpuOK {
		row("CPU µs/saga", fmt.Sprintf("%.0f", s.CPUUsPerSaga),
			fmt.Sprintf("user+system CPU of this whole process over the measured sagas (%.1f s, %.2f cores on average), the bench's HTTP clients and observers included", ph.cpu.Seconds(), ph.cpu.Seconds()/ph.elapsed.Seconds()))
	} else {
		row("CPU µs/saga", "-", "not measured on "+runtime.GOOS)
	}
	switch {
	case s.HarnessCPUUsPerSaga != nil:
		row("  system CPU µs/saga", fmt.Sprintf("%.0f", *s.SystemCPUUsPerSaga), "the processes, the broker and the registry: the whole less the harness")
		row("  harness CPU µs/saga", fmt.Sprintf("%.0f", *s.HarnessCPUUsPerSaga),
			fmt.Sprintf("the bench's HTTP clients, saga-end reader, progress bar and profiler: %.1f%% of the CPU in a profile of %d samples, by their pprof label", 100*ph.share.harness, ph.share.samples))
	case ph.shareErr != nil:
		row("  harness CPU µs/saga", "-", ph.shareErr)
	}
	from := "POST sent"
	if cfg.Rate > 0 {
		from = "order due" // queueing before the POST counts
	}
	row("latency ms", fmt.Sprintf("p50 %.1f", s.P50Ms), fmt.Sprintf("p95 %.1f  p99 %.1f  max %.1f (%s -> saga end read from %s)", s.P95Ms, s.P99Ms, s.MaxMs, from, contracts.TopicCreateOrderSagasEnded))
	var outcomes []string
	for o, n := range v.outcomes {
		outcomes = append(outcomes, fmt.Sprintf("%s %d", load.Outcome(o), n))
	}
	row("outcomes", len(ph.runs), strings.Join(outcomes, ", ")+" (warm-up included)")
	row("re-sent commands", v.timeouts, "after a step timeout")
	row("records/saga", fmt.Sprintf("%.2f", s.RecordsPerSaga), perTopic(ph.written, s.Sagas))
	for _, name := range system.Names() {
		if x, ok := ph.transactions[name]; ok {
			row("transactions/saga", fmt.Sprintf("%.2f", x.PerSaga),
				fmt.Sprintf("%s: %.1f records each; handle %.2f ms, prepare (flush, offsets) %.2f ms, end %.2f ms on average", name, x.Records, x.HandleMs, x.PrepareMs, x.EndMs))
		}
	}
	row("efficiency", fmt.Sprintf("%.3f", s.Efficiency), "sagas/s x records/saga / bound records/s")
	row("ceiling", fmt.Sprintf("%.3f", s.EfficiencyCeiling), "the efficiency of these records if nothing but Kafka and watermill cost anything: a log record at half a round trip of the bound, a compacted or archived one at a record of it")
	row("correctness", "OK", fmt.Sprintf("every saga ended as its input dictates; %d orders read back; credit invariant holds for %d customers", v.sampled, v.customers))
	tw.Flush()
	fmt.Fprintln(w)
}

// perTopic lists the records per saga each topic received, largest first.
func perTopic(written map[string]int64, sagas int) string {
	topics := make([]string, 0, len(written))
	for topic, n := range written {
		if n > 0 {
			topics = append(topics, topic)
		}
	}
	slices.SortFunc(topics, func(a, b string) int {
		return cmp.Or(cmp.Compare(written[b], written[a]), strings.Compare(a, b))
	})
	var parts []string
	for _, topic := range topics {
		parts = append(parts, fmt.Sprintf("%s %.2f", topic, float64(written[topic])/float64(sagas)))
	}
	return strings.Join(parts, ", ")
}

// writeJSON writes the summary as one line.
func writeJSON(w io.Writer, s summary) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

// TestHarnessLabelReachesItsClientsGoroutines checks what the harness's
// share rests on: the goroutines that the HTTP client and the Kafka client
// start for a labelled caller (connections, fetches, metadata) carry its
// label, and the goroutines of the servers they talk to, started
// elsewhere, do not. It is the first test of the package, so no other
// test's clients are left to be counted.
func TestHarnessLabelReachesItsClientsGoroutines(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"orderId":"o1","state":"PENDING"}`)
	}))
	defer srv.Close()
	const topic = "harness-label"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	defer cluster.Close()

	var failures []string
	asHarness(t.Context(), func(ctx context.Context) {
		a := load.NewAPI([]string{srv.URL}, nil, 1)
		defer a.Close()
		if _, err := a.CreateOrder(ctx, "c1", 100); err != nil {
			t.Fatalf("POST /orders: %v", err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(topic))
		if err != nil {
			t.Fatalf("kafka client: %v", err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		pollCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if fetches := cl.PollRecords(pollCtx, 1); fetches.NumRecords() != 1 {
			t.Fatalf("fetch: got %d records (%v), want 1", fetches.NumRecords(), fetches.Errors())
		}
		// The clients are still open: their goroutines are all there. A
		// request loop franz-go starts from one of its timers, which runs
		// the timer's goroutine unlabelled, comes and goes within
		// milliseconds: a goroutine a label does not reach for good is in
		// every look, so a few looks, 10 ms apart, tell them apart.
		for deadline := time.Now().Add(time.Second); ; {
			if failures = labelFailures(t, goroutineProfile(t)); len(failures) == 0 || time.Now().After(deadline) {
				return
			}
			time.Sleep(10 * time.Millisecond) // poll interval
		}
	})
	for _, f := range failures {
		t.Error(f)
	}
}

// goroutineProfile returns the goroutines of the process now.
func goroutineProfile(t *testing.T) *profile.Profile {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		t.Fatalf("goroutine profile: %v", err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatalf("parse the goroutine profile: %v", err)
	}
	return p
}

// labelFailures says where goroutines carry the harness's label that
// should not, or do not that should.
func labelFailures(t *testing.T, goroutines *profile.Profile) []string {
	t.Helper()
	tests := []struct {
		frame   string // a function name prefix in the goroutine's stack
		harness bool   // whether those goroutines are the harness's
		ownedBy string
	}{
		{"net/http.(*persistConn).", true, "the HTTP client's connections"},
		{"github.com/twmb/franz-go/pkg/kgo.", true, "the Kafka client"},
		{"net/http.(*conn).serve", false, "the HTTP server"},
		{"github.com/twmb/franz-go/pkg/kfake.", false, "the broker"},
	}
	var failures []string
	for _, tt := range tests {
		labelled, unlabelled := 0, 0
		var stacks []string
		for _, s := range goroutines.Sample {
			if !inStack(s, tt.frame) {
				continue
			}
			if slices.Contains(s.Label[harnessKey], harnessValue) {
				labelled += int(s.Value[0])
			} else {
				unlabelled += int(s.Value[0])
				stacks = append(stacks, stack(s))
			}
		}
		switch {
		case labelled+unlabelled == 0:
			failures = append(failures, fmt.Sprintf("%s (%s*): got no goroutine, want some", tt.ownedBy, tt.frame))
		case tt.harness && unlabelled > 0:
			failures = append(failures, fmt.Sprintf("%s (%s*): got %d goroutines without the harness's label, %d with it; want all with it; without it:\n%s",
				tt.ownedBy, tt.frame, unlabelled, labelled, strings.Join(stacks, "\n")))
		case !tt.harness && labelled > 0:
			failures = append(failures, fmt.Sprintf("%s (%s*): got %d goroutines with the harness's label, want none", tt.ownedBy, tt.frame, labelled))
		}
	}
	return failures
}

// stack is the sample's stack, a function a line, innermost first.
func stack(s *profile.Sample) string {
	var fns []string
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			fns = append(fns, "\t"+line.Function.Name)
		}
	}
	return strings.Join(fns, "\n")
}

// inStack reports whether a function whose name starts with prefix is in
// the sample's stack.
func inStack(s *profile.Sample, prefix string) bool {
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if line.Function != nil && strings.HasPrefix(line.Function.Name, prefix) {
				return true
			}
		}
	}
	return false
}

// TestRun runs the whole bench on a small scale, in both loops, against the
// embedded stack: every figure of the JSON line must be there and positive,
// and the answers correct. It ignores KAFKA_BROKERS: on a shared Kafka its
// processes would join the consumer groups of the system suite running
// beside it (make test-kafka) and take over some of its partitions.
func TestRun(t *testing.T) {
	tests := []struct {
		name                     string
		rate                     float64
		instances, sagas, warmup int
		clientKeys               bool
	}{
		{"closed loop", 0, 1, 200, 50, false},
		{"open loop", 400, 1, 200, 50, false},
		// Two instances of every process: each request lands on either,
		// which makes a new order itself and forwards a read to the
		// owner of its key; or, with keys of the clients' own, forwards
		// an order too.
		{"two instances", 0, 2, 40, 10, false},
		{"two instances, the clients' own keys", 0, 2, 40, 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig()
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			cfg.ExternalKafka, cfg.ExternalRegistry = false, false
			cfg.Sagas, cfg.Warmup, cfg.Concurrency, cfg.Rate, cfg.Profile = tt.sagas, tt.warmup, 16, tt.rate, ""
			cfg.Instances, cfg.ClientKeys = tt.instances, tt.clientKeys
			cfg.BoundRecords, cfg.BoundRoundtrips = 2000, 1000
			var out bytes.Buffer
			if err := run(t.Context(), cfg, &out, io.Discard); err != nil {
				t.Fatalf("run: %v\noutput:\n%s", err, &out)
			}

			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			last := lines[len(lines)-1]
			var got map[string]float64
			if err := json.Unmarshal([]byte(last), &got); err != nil {
				t.Fatalf("last line %q: %v, want a JSON object of numbers", last, err)
			}
			want := []string{"sagas", "sagas_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms",
				"roundtrips_per_s", "records_per_s", "records_per_saga", "efficiency", "efficiency_ceiling",
				"instances", "cpu_us_per_saga", "system_cpu_us_per_saga",
				"transactions_per_saga", "records_per_transaction", "handle_ms", "prepare_ms", "end_ms"}
			if tt.rate > 0 {
				want = append(want, "rate")
			}
			for _, k := range want {
				if v, ok := got[k]; !ok || v <= 0 {
					t.Errorf("%s: got %v (present: %v), want a positive number", k, v, ok)
				}
			}
			// Orders under the clients' own keys are forwarded to their
			// owners, half of them with two instances; without keys each
			// is made where it arrives (but for 16 draws that miss, 1 in
			// 65,536).
			want = append(want, "forwarded_per_saga")
			if v, ok := got["forwarded_per_saga"]; !ok || tt.clientKeys && v < 0.2 || !tt.clientKeys && v > 0.1 {
				t.Errorf("forwarded_per_saga: got %v (present: %v), want about 0.5 with the clients' own keys, about 0 without", v, ok)
			}
			// A small run's profile may hold no sample of the harness.
			want = append(want, "harness_cpu_us_per_saga")
			if v, ok := got["harness_cpu_us_per_saga"]; !ok || v < 0 || v >= got["cpu_us_per_saga"] {
				t.Errorf("harness_cpu_us_per_saga: got %v (present: %v), want a share of cpu_us_per_saga %v", v, ok, got["cpu_us_per_saga"])
			}
			if sum := got["harness_cpu_us_per_saga"] + got["system_cpu_us_per_saga"]; math.Abs(sum-got["cpu_us_per_saga"]) > 0.15 {
				t.Errorf("harness and system CPU µs/saga: got %v in all, want cpu_us_per_saga %v", sum, got["cpu_us_per_saga"])
			}
			if len(got) != len(want) {
				t.Errorf("JSON keys: got %d (%s), want %d", len(got), last, len(want))
			}
			if got["sagas"] != float64(tt.sagas) || got["rate"] != tt.rate || got["instances"] != float64(tt.instances) {
				t.Errorf("sagas, rate and instances: got %v, %v and %v, want %d (the warm-up left out), %v and %d",
					got["sagas"], got["rate"], got["instances"], tt.sagas, tt.rate, tt.instances)
			}
			if !regexp.MustCompile(fmt.Sprintf(`outcomes\s+%d\s`, tt.sagas+tt.warmup)).MatchString(out.String()) {
				t.Errorf("table: got\n%s\nwant the outcomes of all %d sagas verified, warm-up included", &out, tt.sagas+tt.warmup)
			}
			if !regexp.MustCompile(fmt.Sprintf(`instances\s+%d\s`, tt.instances)).MatchString(out.String()) {
				t.Errorf("table: got\n%s\nwant a line saying %d instances", &out, tt.instances)
			}
			for _, name := range []string{"order", "customer", "payment", "orchestrator"} {
				if !regexp.MustCompile(`transactions/saga\s+[0-9.]+\s+` + name + `: [0-9.]+ records each; handle [0-9.]+ ms, prepare \(flush, offsets\) [0-9.]+ ms, end [0-9.]+ ms`).MatchString(out.String()) {
					t.Errorf("table: got\n%s\nwant a line of %s's transactions", &out, name)
				}
			}
			if !regexp.MustCompile(`CPU µs/saga\s+[1-9][0-9]*\s+user\+system CPU of this whole process`).MatchString(out.String()) {
				t.Errorf("table: got\n%s\nwant the CPU time per saga, the bench's own included", &out)
			}
			if !regexp.MustCompile(`system CPU µs/saga\s+[1-9][0-9]*\s+the processes.*\n\s+harness CPU µs/saga\s+[0-9]+\s+the bench's`).MatchString(out.String()) {
				t.Errorf("table: got\n%s\nwant the CPU time per saga of the system and of the harness", &out)
			}
			if !strings.Contains(out.String(), "median of 6 rounds with the processes stopped, half before and half after the sagas") {
				t.Errorf("table: got\n%s\nwant the bound measured in 6 rounds around the sagas", &out)
			}
			if !regexp.MustCompile(`correctness\s+OK`).MatchString(out.String()) {
				t.Errorf("table: got\n%s\nwant a line saying correctness OK", &out)
			}
		})
	}
}

// TestValidate: a bad setting is reported with every other one, INSTANCES
// among them.
func TestValidate(t *testing.T) {
	valid := Config{Sagas: 1, Concurrency: 1, Instances: 1, BoundRecords: partitions, BoundRoundtrips: partitions, Stall: time.Second}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid config: got %v, want none", err)
	}
	for _, n := range []int{0, -1} {
		cfg := valid
		cfg.Instances = n
		want := fmt.Sprintf("INSTANCES is %d, want at least 1", n)
		if err := cfg.Validate(); err == nil || err.Error() != want {
			t.Errorf("INSTANCES=%d: got %v, want %q", n, err, want)
		}
	}
	cfg := valid
	cfg.Sagas, cfg.Instances = 0, 0
	err := cfg.Validate()
	for _, want := range []string{"SAGAS is 0", "INSTANCES is 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("SAGAS=0 and INSTANCES=0: got %v, want both reported, %q among them", err, want)
		}
	}
	// Not a rate: it ran a closed loop, and failed at its JSON line.
	for _, rate := range []float64{math.NaN(), math.Inf(1), -1} {
		cfg := valid
		cfg.Rate = rate
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "RATE is") {
			t.Errorf("RATE=%g: got %v, want it refused", rate, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	sorted := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.95, 10}, {0.1, 1}, {1, 10}, {0.01, 1}}
	for _, tt := range tests {
		if got := percentile(sorted, tt.q); got != tt.want {
			t.Errorf("percentile(1..10, %v): got %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil, 0.5): got %v, want 0", got)
	}
}

func TestBoundAddRounds(t *testing.T) {
	var b bound
	b.addRounds([]float64{30, 10, 20})
	if b.recordsPerS != 20 {
		t.Errorf("median of 10, 20, 30: got %v, want 20", b.recordsPerS)
	}
	b.addRounds([]float64{60, 50, 40}) // the rounds after the sagas
	if want := []float64{10, 20, 30, 40, 50, 60}; !reflect.DeepEqual(b.rounds, want) {
		t.Errorf("rounds: got %v, want %v", b.rounds, want)
	}
	if b.recordsPerS != 35 {
		t.Errorf("median of 10 to 60: got %v, want 35", b.recordsPerS)
	}
}

// TestBoundNeedsTheSystemStopped: measured beside the running processes, the
// bound would be lowered by their idle polling (2 ms in the throughput
// profile), and the efficiency it divides flattered.
func TestBoundNeedsTheSystemStopped(t *testing.T) {
	running := &target{cancelSystem: func() {}}
	if _, err := measureBound(t.Context(), running, Config{}, "x", slog.New(slog.DiscardHandler)); !errors.Is(err, errSystemRunning) {
		t.Errorf("measureBound with the system running: got %v, want %v", err, errSystemRunning)
	}
	var b bound
	if err := b.sampleRecords(t.Context(), running, Config{}, "x", slog.New(slog.DiscardHandler)); !errors.Is(err, errSystemRunning) {
		t.Errorf("sampleRecords with the system running: got %v, want %v", err, errSystemRunning)
	}
}

// A bound the sagas outrun is no ceiling: the run fails rather than report
// an efficiency above 1 (as a bound of 16 writers did on a real Kafka once
// the handlers of a partition ran side by side).
func TestARunThatOutrunsItsBoundFails(t *testing.T) {
	outran := summary{SagasPerS: 1300, RecordsPerSaga: 14.5, RecordsPerS: 17200, Efficiency: 1.096}
	if err := outran.check(); !errors.Is(err, errNoCeiling) {
		t.Errorf("efficiency 1.096: got %v, want %v", err, errNoCeiling)
	}
	within := summary{SagasPerS: 2800, RecordsPerSaga: 14.5, RecordsPerS: 179000, Efficiency: 0.227}
	if err := within.check(); err != nil {
		t.Errorf("efficiency 0.227: got %v, want none", err)
	}
}

// The ceiling weighs each record by the bound that carries its kind: a
// record handlers consume costs half a round trip, a state record one
// record of the records bound.
func TestCeiling(t *testing.T) {
	const roundtrips, records = 30000.0, 180000.0
	tests := []struct {
		name    string
		written map[string]int64
		want    float64
	}{
		{"state only", map[string]int64{contracts.TopicOrderState: 10}, 1},
		{"archive only", map[string]int64{contracts.TopicCreateOrderSagasEnded: 10}, 1},
		{"logs only", map[string]int64{contracts.TopicCustomerCommands: 10}, 2 * roundtrips / records},
		// 10 log records take 10/60000 s, 10 state records 10/180000 s:
		// 20 records in 4/18000 s, against 20/180000 s for the bound.
		{"half and half", map[string]int64{contracts.TopicCreateOrderReplies: 10, contracts.TopicCreateOrderSagas: 10}, 0.5},
		{"topics not of the system", map[string]int64{"elsewhere": 10}, 0},
	}
	for _, tt := range tests {
		if got := ceiling(tt.written, roundtrips, records); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A run in which a saga ended twice, or one that no order made ended,
// fails its check, whatever the sagas its orders made did.
func TestVerifyRefusesEndsNoOrderExplains(t *testing.T) {
	_, err := verify(t.Context(), nil, &sagaPhase{again: 1, unposted: []string{"order-dup"}})
	if !errors.Is(err, errWrongAnswer) || !strings.Contains(err.Error(), "order-dup") {
		t.Errorf("verify: got %v, want errWrongAnswer naming order-dup", err)
	}
}

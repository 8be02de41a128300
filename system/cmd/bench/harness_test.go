package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

// cpuProfileOf builds a CPU profile, as runtime/pprof writes one, of
// samples of the given CPU milliseconds, each with the given labels.
func cpuProfileOf(t *testing.T, samples ...labelledSample) []byte {
	t.Helper()
	fn := &profile.Function{ID: 1, Name: "main.work"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     int64(10 * time.Millisecond),
		Function:   []*profile.Function{fn},
		Location:   []*profile.Location{loc},
	}
	for _, s := range samples {
		ms := int64(s.cpu / time.Millisecond)
		p.Sample = append(p.Sample, &profile.Sample{Location: []*profile.Location{loc},
			Value: []int64{ms / 10, int64(s.cpu)}, Label: s.labels})
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatalf("write the profile: %v", err)
	}
	return buf.Bytes()
}

type labelledSample struct {
	cpu    time.Duration
	labels map[string][]string
}

// TestHarnessShare: the harness's share is the CPU time of the samples
// labelled bench=harness over all the profile's, other labels and none
// counting as the system's.
func TestHarnessShare(t *testing.T) {
	harness := map[string][]string{harnessKey: {harnessValue}}
	tests := []struct {
		name    string
		samples []labelledSample
		want    cpuShare
	}{
		{"a quarter", []labelledSample{{30 * time.Millisecond, harness}, {90 * time.Millisecond, nil}}, cpuShare{0.25, 12}},
		{"other labels are the system's", []labelledSample{
			{10 * time.Millisecond, harness},
			{20 * time.Millisecond, map[string][]string{harnessKey: {"other"}}},
			{10 * time.Millisecond, map[string][]string{"service": {"order"}}},
			{10 * time.Millisecond, nil},
		}, cpuShare{0.2, 5}},
		{"the harness's label among others", []labelledSample{
			{40 * time.Millisecond, map[string][]string{"step": {"x"}, harnessKey: {harnessValue}}},
			{10 * time.Millisecond, nil},
		}, cpuShare{0.8, 5}},
		{"none of the harness", []labelledSample{{50 * time.Millisecond, nil}}, cpuShare{0, 5}},
		{"all of the harness", []labelledSample{{50 * time.Millisecond, harness}}, cpuShare{1, 5}},
	}
	for _, tt := range tests {
		got, err := harnessShare(cpuProfileOf(t, tt.samples...))
		if err != nil || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}

	if _, err := harnessShare(cpuProfileOf(t)); err == nil || !strings.Contains(err.Error(), "no sample") {
		t.Errorf("a profile without samples: got %v, want an error saying it holds no sample", err)
	}
	if _, err := harnessShare([]byte("not a profile")); err == nil {
		t.Error("a malformed profile: got no error, want one")
	}
}

// TestReportShowsTheHarnessShare: the table and the JSON line give the
// harness's CPU per saga and the system's, which add up to the whole
// process's, and leave them out where the profile held no sample.
func TestReportShowsTheHarnessShare(t *testing.T) {
	start := time.Now()
	ph := &sagaPhase{warmup: 1, runs: make([]load.SagaRun, 5), elapsed: time.Second, posting: time.Second,
		cpu: 2 * time.Millisecond, cpuOK: true, share: cpuShare{harness: 0.25, samples: 40},
		written: map[string]int64{"createorder.sagas": 8}}
	for i := range ph.runs {
		ph.runs[i].Sent, ph.runs[i].End.Seen = start, start.Add(time.Duration(i+1)*time.Millisecond)
	}
	b := bound{recordsPerS: 1000, roundtripsPerS: 500, rounds: []float64{1000}}
	tgt := &target{kafkaName: "test"}

	// 2 ms over 4 measured sagas: 500 µs a saga, a quarter of it the harness's.
	s := summarize(Config{}, b, ph)
	var out bytes.Buffer
	writeTable(&out, Config{Concurrency: 1}, tgt, b, ph, verification{}, s, nil)
	if err := writeJSON(&out, s); err != nil {
		t.Fatalf("writeJSON: %v", err)
	}
	for _, want := range []string{
		`CPU µs/saga\s+500\s+user\+system CPU of this whole process`,
		`system CPU µs/saga\s+375\s+the processes, the broker and the registry`,
		`harness CPU µs/saga\s+125\s+the bench's HTTP clients.*: 25\.0% of the CPU in a profile of 40 samples`,
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("table: got\n%s\nwant a line matching %q", &out, want)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var got map[string]float64
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	if got["cpu_us_per_saga"] != 500 || got["harness_cpu_us_per_saga"] != 125 || got["system_cpu_us_per_saga"] != 375 {
		t.Errorf("JSON: got cpu %v, harness %v, system %v µs/saga; want 500, 125 and 375",
			got["cpu_us_per_saga"], got["harness_cpu_us_per_saga"], got["system_cpu_us_per_saga"])
	}

	// No sample: the whole is still reported, the split is not.
	ph.share, ph.shareErr = cpuShare{}, fmt.Errorf("the CPU profile holds no sample")
	s = summarize(Config{}, b, ph)
	out.Reset()
	writeTable(&out, Config{Concurrency: 1}, tgt, b, ph, verification{}, s, nil)
	if err := writeJSON(&out, s); err != nil {
		t.Fatalf("writeJSON: %v", err)
	}
	if !regexp.MustCompile(`harness CPU µs/saga\s+-\s+the CPU profile holds no sample`).MatchString(out.String()) {
		t.Errorf("table without samples: got\n%s\nwant the harness's row saying why it has no figure", &out)
	}
	if strings.Contains(out.String(), "harness_cpu_us_per_saga") || strings.Contains(out.String(), "system_cpu_us_per_saga") ||
		!strings.Contains(out.String(), `"cpu_us_per_saga":500`) {
		t.Errorf("JSON without samples: got %s, want cpu_us_per_saga and neither harness_ nor system_", lines[len(lines)-1])
	}

	// A run whose sagas did not all end as their inputs dictate gives no
	// figure: a wrong system's speed means nothing.
	out.Reset()
	writeTable(&out, Config{Concurrency: 1}, tgt, b, ph, verification{}, s, fmt.Errorf("%w: saga o1 ended REJECTED, want COMPLETED", errWrongAnswer))
	if table := out.String(); !strings.Contains(table, "correctness") || regexp.MustCompile(`(?m)^(sagas/s|latency ms|CPU µs/saga|bound: records/s)\s`).MatchString(table) {
		t.Errorf("table of a wrong run: got\n%s\nwant the correctness row and no figure", table)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"slices"
	"sync"

	"github.com/google/pprof/profile"
)

// The harness (the bench's HTTP clients, the reader that sees sagas end,
// the progress bar and the profiler) shares the OS process with the system
// it measures, so getrusage alone cannot tell their CPU apart. Its
// goroutines carry a pprof label, which every goroutine they start
// inherits (the HTTP transport's connection goroutines, the Kafka client's;
// TestHarnessLabelReachesItsClientsGoroutines checks it), and a CPU profile
// of the saga phase gives the share of the CPU whose samples carry it.
const harnessKey, harnessValue = "bench", "harness"

// asHarness runs f with the harness's label on the calling goroutine and
// on every goroutine started from it.
func asHarness(ctx context.Context, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels(harnessKey, harnessValue), f)
}

// cpuProfile is a CPU profile of the whole process (at the runtime's
// 100 Hz), taken into memory.
type cpuProfile struct {
	once sync.Once
	buf  bytes.Buffer
}

func startCPUProfile() (*cpuProfile, error) {
	p := &cpuProfile{}
	if err := pprof.StartCPUProfile(&p.buf); err != nil {
		return nil, fmt.Errorf("start the CPU profile: %w", err)
	}
	return p, nil
}

// stop ends the profile and returns it, gzipped protobuf as pprof writes
// it; it may be called again, and returns the same.
func (p *cpuProfile) stop() []byte {
	p.once.Do(pprof.StopCPUProfile)
	return p.buf.Bytes()
}

// cpuShare is the part of a profile's CPU time that the harness used.
type cpuShare struct {
	harness float64 // 0 to 1
	samples int64   // all the profile's samples, harness's or not
}

// harnessShare parses a CPU profile and returns the share of its CPU time
// in samples labelled as the harness's. The garbage collector's background
// work and the runtime's own carry no label, so they count as the system's.
func harnessShare(data []byte) (cpuShare, error) {
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return cpuShare{}, fmt.Errorf("parse the CPU profile: %w", err)
	}
	cpu := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "cpu" })
	count := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "samples" })
	if cpu < 0 || count < 0 {
		return cpuShare{}, errors.New("the CPU profile has no cpu or samples values")
	}
	var all, harness int64
	var s cpuShare
	for _, sample := range p.Sample {
		all += sample.Value[cpu]
		s.samples += sample.Value[count]
		if slices.Contains(sample.Label[harnessKey], harnessValue) {
			harness += sample.Value[cpu]
		}
	}
	if all == 0 {
		return cpuShare{}, errors.New("the CPU profile holds no sample")
	}
	s.harness = float64(harness) / float64(all)
	return s, nil
}

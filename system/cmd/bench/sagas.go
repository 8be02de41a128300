package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/twmb/franz-go/pkg/kadm"
	"golang.org/x/sync/errgroup"

	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

// sagaPhase is what the saga phase did and measured.
type sagaPhase struct {
	rich, poor []string         // customer ids
	plans      []load.OrderPlan // the warm-up's first, then the measured ones
	runs       []load.SagaRun   // by order index, every one ended
	warmup     int              // runs[:warmup] warmed the system up and are not measured
	posting    time.Duration
	elapsed    time.Duration    // from the first measured order posted to the last saga ended
	written    map[string]int64 // records written per topic by the measured sagas
	// cpu is the CPU time (user and system) the whole process used from
	// the first measured order posted until every saga had ended; cpuOK is
	// false where it cannot be measured.
	cpu   time.Duration
	cpuOK bool
}

// measured returns the runs the figures are made of.
func (ph *sagaPhase) measured() []load.SagaRun { return ph.runs[ph.warmup:] }

// runSagas creates the customers, then runs cfg.Warmup sagas the same way
// as the measured ones but outside the figures (the first sagas after a
// start meet cold caches, fresh connections and consumers still settling),
// then posts cfg.Sagas orders and waits until every saga has ended,
// watching the saga topic.
func runSagas(ctx context.Context, cfg Config, t *target, a *load.API, progress io.Writer) (*sagaPhase, error) {
	ph := &sagaPhase{warmup: cfg.Warmup}
	var err error
	if ph.rich, ph.poor, err = a.CreateCustomers(ctx); err != nil {
		return nil, err
	}
	ph.plans = load.PlanOrders(cfg.Warmup+cfg.Sagas, ph.rich, ph.poor, t.paymentLimit)

	adm, err := newAdmin(t.kafka)
	if err != nil {
		return nil, err
	}
	defer adm.Close()

	bar := progressbar.NewOptions(len(ph.plans), progressbar.OptionSetWriter(progress),
		progressbar.OptionSetDescription("sagas"), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("sagas"), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(progress) }))
	tr := load.NewTracker(len(ph.plans), func() { _ = bar.Add(1) })

	// The customers are written: every record from here on is the sagas'.
	from, err := endOffsets(ctx, adm, systemTopics())
	if err != nil {
		return nil, err
	}
	var before kadm.ListedOffsets // the end offsets once the warm-up is over
	var start time.Time
	var cpuStart, cpuEnd time.Duration
	var cpuStartOK, cpuEndOK bool
	g, gctx := errgroup.WithContext(ctx)
	watchCtx, stopWatching := context.WithCancel(gctx)
	defer stopWatching()
	g.Go(func() error { return load.WatchSagas(watchCtx, t.kafka, from, tr) })
	g.Go(func() error {
		if err := load.Drive(gctx, cfg.loop(), a, ph.plans[:ph.warmup], 0, tr); err != nil {
			return err
		}
		if err := tr.Wait(gctx, ph.warmup, cfg.Stall); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		var err error
		if before, err = endOffsets(gctx, adm, systemTopics()); err != nil {
			return err
		}
		if cfg.Profile != "" {
			stop, err := startProfile(cfg.Profile)
			if err != nil {
				return err
			}
			defer stop()
		}
		cpuStart, cpuStartOK = processCPU()
		start = time.Now()
		if err := load.Drive(gctx, cfg.loop(), a, ph.plans, ph.warmup, tr); err != nil {
			return err
		}
		ph.posting = time.Since(start)
		return nil
	})
	g.Go(func() error {
		defer stopWatching()
		if err := tr.Wait(gctx, len(ph.plans), cfg.Stall); err != nil {
			return err
		}
		cpuEnd, cpuEndOK = processCPU()
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	_ = bar.Finish()

	ph.runs = tr.Results()
	var last time.Time
	for _, r := range ph.measured() {
		if r.End.Seen.After(last) {
			last = r.End.Seen
		}
	}
	ph.elapsed = last.Sub(start)
	ph.cpu, ph.cpuOK = cpuEnd-cpuStart, cpuStartOK && cpuEndOK
	after, err := endOffsets(ctx, adm, systemTopics())
	if err != nil {
		return nil, err
	}
	ph.written = written(before, after)
	return ph, nil
}

// startProfile starts a CPU profile of the process into file.
func startProfile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("PROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start the CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

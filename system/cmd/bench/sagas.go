package main

import (
	"context"
	"fmt"
	"io"
	"os"
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
	// share is the harness's part of cpu, from a CPU profile of the same
	// span; shareErr says why there is none.
	share    cpuShare
	shareErr error
	// transactions is what each process's transactions did over the
	// measured sagas, from the instances' metrics.
	transactions map[string]txnStats
	// again counts the ends read of sagas that had ended already, and
	// unposted are the sagas that ended although no order of the run made
	// them: an order made twice, a saga archived twice.
	again    int
	unposted []string
}

// measured returns the runs the figures are made of.
func (ph *sagaPhase) measured() []load.SagaRun { return ph.runs[ph.warmup:] }

// runSagas creates the customers, then runs cfg.Warmup sagas the same way
// as the measured ones but outside the figures (the first sagas after a
// start meet cold caches, fresh connections and consumers still settling),
// then posts cfg.Sagas orders and waits until every saga has ended,
// watching the saga topic. It profiles the CPU from the first measured
// order posted until every saga has ended, into cfg.Profile too if set.
// Call it as the harness (asHarness), so that every goroutine it starts
// carries the harness's label.
func runSagas(ctx context.Context, cfg Config, t *target, a *load.API, progress io.Writer) (*sagaPhase, error) {
	ph := &sagaPhase{warmup: cfg.Warmup}
	var profileFile *os.File
	if cfg.Profile != "" { // opened first, so a bad path fails before the sagas
		f, err := os.Create(cfg.Profile)
		if err != nil {
			return nil, fmt.Errorf("PROFILE: %w", err)
		}
		defer f.Close()
		profileFile = f
	}
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
	var txnsBefore map[string]txnTotals
	var start time.Time
	var cpuStart, cpuEnd time.Duration
	var cpuStartOK, cpuEndOK bool
	var profiled []byte
	// The profile goes from the goroutine that starts it, with the
	// measured sagas, to the one that sees them end; a phase that fails
	// between the two stops it on return.
	running := make(chan *cpuProfile, 1)
	defer func() {
		select {
		case p := <-running:
			p.stop()
		default:
		}
	}()
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
		if txnsBefore, err = scrapeTransactions(gctx, t); err != nil {
			return err
		}
		p, err := startCPUProfile()
		if err != nil {
			return err
		}
		running <- p
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
		select {
		case p := <-running: // sent before the first measured order was posted
			profiled = p.stop()
		case <-gctx.Done():
			return gctx.Err()
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	_ = bar.Finish()

	ph.runs = tr.Results()
	ph.again, ph.unposted = tr.Unexpected()
	var last time.Time
	for _, r := range ph.measured() {
		if r.End.Seen.After(last) {
			last = r.End.Seen
		}
	}
	ph.elapsed = last.Sub(start)
	ph.cpu, ph.cpuOK = cpuEnd-cpuStart, cpuStartOK && cpuEndOK
	ph.share, ph.shareErr = harnessShare(profiled)
	if profileFile != nil {
		if _, err := profileFile.Write(profiled); err != nil {
			return nil, fmt.Errorf("PROFILE: %w", err)
		}
		if err := profileFile.Close(); err != nil {
			return nil, fmt.Errorf("PROFILE: %w", err)
		}
	}
	after, err := endOffsets(ctx, adm, systemTopics())
	if err != nil {
		return nil, err
	}
	ph.written = written(before, after)
	txnsAfter, err := scrapeTransactions(ctx, t)
	if err != nil {
		return nil, err
	}
	ph.transactions = transactionStats(txnsBefore, txnsAfter, len(ph.measured()))
	return ph, nil
}

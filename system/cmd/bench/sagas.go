package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/twmb/franz-go/pkg/kadm"
	"golang.org/x/sync/errgroup"
)

// sagaPhase is what the saga phase did and measured.
type sagaPhase struct {
	rich, poor []string    // customer ids
	plans      []orderPlan // the warm-up's first, then the measured ones
	runs       []sagaRun   // by order index, every one ended
	warmup     int         // runs[:warmup] warmed the system up and are not measured
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
func (ph *sagaPhase) measured() []sagaRun { return ph.runs[ph.warmup:] }

// runSagas creates the customers, then runs cfg.Warmup sagas the same way
// as the measured ones but outside the figures (the first sagas after a
// start meet cold caches, fresh connections and consumers still settling),
// then posts cfg.Sagas orders and waits until every saga has ended,
// watching the saga topic.
func runSagas(ctx context.Context, cfg Config, t *target, a *api, progress io.Writer) (*sagaPhase, error) {
	ph := &sagaPhase{warmup: cfg.Warmup}
	for i := range richCustomers {
		id, err := a.createCustomer(ctx, "rich-"+strconv.Itoa(i), richCredit)
		if err != nil {
			return nil, err
		}
		ph.rich = append(ph.rich, id)
	}
	for i := range poorCustomers {
		id, err := a.createCustomer(ctx, "poor-"+strconv.Itoa(i), poorCredit)
		if err != nil {
			return nil, err
		}
		ph.poor = append(ph.poor, id)
	}
	ph.plans = planOrders(cfg.Warmup+cfg.Sagas, ph.rich, ph.poor, t.paymentLimit)

	adm, err := newAdmin(t.kafka)
	if err != nil {
		return nil, err
	}
	defer adm.Close()

	bar := progressbar.NewOptions(len(ph.plans), progressbar.OptionSetWriter(progress),
		progressbar.OptionSetDescription("sagas"), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("sagas"), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(progress) }))
	tr := newTracker(len(ph.plans), func() { _ = bar.Add(1) })

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
	g.Go(func() error { return watchSagas(watchCtx, t.kafka, from, tr) })
	g.Go(func() error {
		if err := drive(gctx, cfg, a, ph.plans[:ph.warmup], 0, tr); err != nil {
			return err
		}
		if err := tr.wait(gctx, ph.warmup, cfg.Stall); err != nil {
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
		if err := drive(gctx, cfg, a, ph.plans, ph.warmup, tr); err != nil {
			return err
		}
		ph.posting = time.Since(start)
		return nil
	})
	g.Go(func() error {
		defer stopWatching()
		if err := tr.wait(gctx, len(ph.plans), cfg.Stall); err != nil {
			return err
		}
		cpuEnd, cpuEndOK = processCPU()
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	_ = bar.Finish()

	ph.runs = tr.results()
	var last time.Time
	for _, r := range ph.measured() {
		if r.end.seen.After(last) {
			last = r.end.seen
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

// drive posts the planned orders from index first on: in a closed loop (each of
// cfg.Concurrency clients posts an order, waits for its saga to end, and
// posts the next), or at cfg.Rate (open loop).
//
// The closed loop waits for the saga, not only for the POST: the order
// service answers as soon as the order is stored and announced, several
// times faster than sagas end, so clients that only waited for the POST
// would queue up every order at once and measure the length of that queue.
func drive(ctx context.Context, cfg Config, a *api, plans []orderPlan, first int, tr *tracker) error {
	if cfg.Rate > 0 {
		return driveOpen(ctx, cfg.Rate, cfg.Concurrency, a, plans, first, tr)
	}
	var next atomic.Int64
	next.Store(int64(first))
	g, ctx := errgroup.WithContext(ctx)
	for range cfg.Concurrency {
		g.Go(func() error {
			for i := int(next.Add(1)) - 1; i < len(plans); i = int(next.Add(1)) - 1 {
				if err := postOrder(ctx, a, plans[i], tr, i, time.Now()); err != nil {
					return err
				}
				select {
				case <-tr.endOf(i):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// driveOpen posts order i when it is due, at start + i/rate, whatever the
// system answers, through a pool of workers. A saga's latency counts from
// when its order was due, so a system (or a client pool) that falls behind
// shows as growing latency rather than as silently fewer orders.
func driveOpen(ctx context.Context, rate float64, workers int, a *api, plans []orderPlan, first int, tr *tracker) error {
	type job struct {
		i   int
		due time.Time
	}
	jobs := make(chan job, len(plans)) // never blocks the generator
	g, ctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			for j := range jobs {
				if err := postOrder(ctx, a, plans[j.i], tr, j.i, j.due); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		start := time.Now()
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for i := first; i < len(plans); i++ {
			due := start.Add(time.Duration(float64(i-first) / rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			jobs <- job{i, due}
		}
		return nil
	})
	return g.Wait()
}

func postOrder(ctx context.Context, a *api, p orderPlan, tr *tracker, i int, sent time.Time) error {
	id, err := a.createOrder(ctx, p.customerID, p.total)
	if err != nil {
		return fmt.Errorf("order %d (%s for %d): %w", i, p.want, p.total, err)
	}
	tr.posted(i, id, sent)
	return nil
}

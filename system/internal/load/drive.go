package load

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Loop says how the orders are posted: in a closed loop of Concurrency
// clients, or at Rate orders per second (open loop) through Concurrency
// workers.
type Loop struct {
	Concurrency int
	Rate        float64 // sagas per second, open loop; 0: closed loop
}

// Drive posts the planned orders from index first on: in a closed loop
// (each of l.Concurrency clients posts an order, waits for its saga to end,
// and posts the next), or at l.Rate (open loop). Order i is tracked as
// run i of tr.
//
// The closed loop waits for the saga, not only for the POST: the order
// service answers as soon as the order is stored and announced, several
// times faster than sagas end, so clients that only waited for the POST
// would queue up every order at once and measure the length of that queue.
func Drive(ctx context.Context, l Loop, a *API, plans []OrderPlan, first int, tr *Tracker) error {
	if l.Rate > 0 {
		return driveOpen(ctx, l.Rate, l.Concurrency, a, plans, first, tr)
	}
	var next atomic.Int64
	next.Store(int64(first))
	g, ctx := errgroup.WithContext(ctx)
	for range l.Concurrency {
		g.Go(func() error {
			for i := int(next.Add(1)) - 1; i < len(plans); i = int(next.Add(1)) - 1 {
				if err := postOrder(ctx, a, plans[i], tr, i, time.Now()); err != nil {
					return err
				}
				select {
				case <-tr.EndOf(i):
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
func driveOpen(ctx context.Context, rate float64, workers int, a *API, plans []OrderPlan, first int, tr *Tracker) error {
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

func postOrder(ctx context.Context, a *API, p OrderPlan, tr *Tracker, i int, sent time.Time) error {
	id, err := a.CreateOrder(ctx, p.CustomerID, p.Total)
	if err != nil {
		return fmt.Errorf("order %d (%s for %d): %w", i, p.Want, p.Total, err)
	}
	tr.Posted(i, id, sent)
	return nil
}

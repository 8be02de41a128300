// Command takeover measures what a crashed instance costs and what an
// instance holds, as the sagas that ran before grow: it starts the
// embedded broker and registry (bin/devstack) and two instances of each
// process (bin/order, bin/customer, bin/payment, bin/orchestrator), each
// an OS process, runs Create Order sagas over HTTP in a closed loop up to
// each size in SAGAS, and at each size records every instance's memory,
// then SIGKILLs the second instance of each process in turn and measures
// the time until every partition it held answers GET by key on the first,
// once at each session timeout of SESSION_TIMEOUTS. `make takeover` runs
// it; its output ends with a Markdown table and one JSON line per size.
//
// Environment: SAGAS (sizes, cumulative, comma-separated, default
// 10000,100000,1000000), SESSION_TIMEOUTS (default 10s,2s: the sagas run
// under the first), CONCURRENCY (HTTP clients, default 128), BIN (the
// binaries, default bin), LOGS (the processes' logs, default a new
// temporary directory), KAFKA_BROKERS (a Kafka to run on instead of the
// embedded broker, which keeps every record in memory: devstack then runs
// only the registry).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var cfg Config
	err := config.Load(&cfg)
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil && cfg.Logs == "" {
		cfg.Logs, err = os.MkdirTemp("", "takeover-")
	}
	if err == nil {
		err = run(ctx, cfg, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "takeover:", err)
		os.Exit(1)
	}
}

// Config says what to measure.
type Config struct {
	Sizes       []int           `env:"SAGAS" envDefault:"10000,100000,1000000"`
	Sessions    []time.Duration `env:"SESSION_TIMEOUTS" envDefault:"10s,2s"`
	Concurrency int             `env:"CONCURRENCY" envDefault:"128"`
	Bin         string          `env:"BIN" envDefault:"bin"`
	Logs        string          `env:"LOGS"`
	Brokers     string          `env:"KAFKA_BROKERS"`
	Instances   int             `env:"-"` // of each process; the last is killed, the first takes over
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Sizes) == 0 || !slices.IsSorted(c.Sizes) || c.Sizes[0] < 1 {
		errs = append(errs, fmt.Errorf("SAGAS is %v, want increasing sizes, the first at least 1", c.Sizes))
	}
	if len(c.Sessions) == 0 {
		errs = append(errs, errors.New("SESSION_TIMEOUTS is empty"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("CONCURRENCY is %d, want at least 1", c.Concurrency))
	}
	c.Instances = 2
	return errors.Join(errs...)
}

// paymentLimit is the payment service's default, which the plans follow.
const paymentLimit = 1_000_000

// result is what one size measured.
type result struct {
	Sagas     int               `json:"sagas"`
	SagasPerS float64           `json:"sagas_per_s"` // of the sagas run to reach this size
	Memory    map[string]memory `json:"memory"`      // by instance, before any kill
	Devstack  memory            `json:"devstack"`    // the broker and registry (RSS only)
	Takeovers []takeover        `json:"takeovers"`
}

func run(ctx context.Context, cfg Config, out io.Writer) error {
	fmt.Fprintf(out, "takeover: logs in %s\n", cfg.Logs)
	s, err := startSystem(ctx, cfg, cfg.Sessions[0])
	if err != nil {
		return err
	}
	defer s.close()
	session := cfg.Sessions[0]
	var orderBases, customerBases []string
	for _, p := range s.instances["order"] {
		orderBases = append(orderBases, p.base)
	}
	for _, p := range s.instances["customer"] {
		customerBases = append(customerBases, p.base)
	}
	a := load.NewAPI(orderBases, customerBases, cfg.Concurrency)
	defer a.Close()
	rich, poor, err := a.CreateCustomers(ctx)
	if err != nil {
		return err
	}
	customerProbes, err := probeCustomers(ctx, a, slices.Concat(rich, poor))
	if err != nil {
		return err
	}
	plans := load.PlanOrders(cfg.Sizes[len(cfg.Sizes)-1], rich, poor, paymentLimit)
	probes := map[string][]probe{"customer": customerProbes}

	var results []result
	done := 0
	for _, size := range cfg.Sizes {
		if session != cfg.Sessions[0] {
			if err := s.restartInstances(ctx, cfg.Sessions[0]); err != nil {
				return err
			}
			session = cfg.Sessions[0]
		}
		fmt.Fprintf(out, "takeover: running sagas %d to %d (session timeout %s)\n", done+1, size, session)
		start := time.Now()
		runs, err := runSagas(ctx, s, a, cfg, plans[done:size], out)
		if err != nil {
			return err
		}
		r := result{Sagas: size, SagasPerS: float64(size-done) / time.Since(start).Seconds(), Memory: map[string]memory{}}
		if done == 0 {
			if err := setProbes(probes, plans, runs); err != nil {
				return err
			}
		}
		done = size
		for _, p := range s.all() {
			if r.Memory[p.name], err = s.memory(ctx, p); err != nil {
				return err
			}
		}
		if r.Devstack.RSS, err = vmRSS(s.devstack.pid()); err != nil {
			return err
		}
		for _, t := range cfg.Sessions {
			if t != session {
				if err := s.restartInstances(ctx, t); err != nil {
					return err
				}
				session = t
			}
			for _, name := range processes {
				tk, err := s.measureTakeover(ctx, name, probes[name], t)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "takeover: %d sagas, session %s, %s: detection %s + handover %s = %s (rebalance %s, restore %s, %d partitions)\n",
					size, t, name, ms(tk.Detection), ms(tk.Handover), ms(tk.Total), ms(tk.Rebalance), ms(tk.Restore), tk.Partitions)
				r.Takeovers = append(r.Takeovers, tk)
			}
		}
		results = append(results, r)
		writeTable(out, cfg, results)
	}
	for _, r := range results {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s\n", b)
	}
	return nil
}

// probeCustomers returns a customer probe for every partition: the
// customers given, and as many more created as the partitions without one
// need.
func probeCustomers(ctx context.Context, a *load.API, customers []string) ([]probe, error) {
	path := func(id string) string { return "/customers/" + id }
	for i := 0; ; i++ {
		probes, err := probesOf(customers, contracts.Partitions, path)
		if err == nil {
			return probes, nil
		}
		if i == 1000 {
			return nil, err
		}
		id, err := a.CreateCustomer(ctx, "probe-"+strconv.Itoa(i), 1000)
		if err != nil {
			return nil, err
		}
		customers = append(customers, id)
	}
}

// setProbes picks, from the sagas run, a key of every partition for the
// order service, the payment service (an order that reached the payment
// step) and the orchestrator.
func setProbes(probes map[string][]probe, plans []load.OrderPlan, runs []load.SagaRun) error {
	var orders, paid []string
	for i, r := range runs {
		orders = append(orders, r.ID)
		if w := plans[i].Want; w == load.Approved || w == load.PaymentDeclined {
			paid = append(paid, r.ID)
		}
	}
	var err error
	if probes["order"], err = probesOf(orders, contracts.Partitions, func(id string) string { return "/orders/" + id }); err != nil {
		return err
	}
	if probes["payment"], err = probesOf(paid, contracts.Partitions, func(id string) string { return "/payments/" + id }); err != nil {
		return err
	}
	probes["orchestrator"], err = probesOf(orders, contracts.Partitions, func(id string) string { return "/sagas/" + id })
	return err
}

// runSagas posts the planned orders in a closed loop and waits until every
// saga has ended as its plan says.
func runSagas(ctx context.Context, s *system, a *load.API, cfg Config, plans []load.OrderPlan, out io.Writer) ([]load.SagaRun, error) {
	from, err := s.admin.ListEndOffsets(ctx, contracts.TopicCreateOrderSagas, contracts.TopicCreateOrderSagasEnded)
	if err == nil {
		err = from.Error()
	}
	if err != nil {
		return nil, err
	}
	var ended atomic.Int64
	tr := load.NewTracker(len(plans), func() { ended.Add(1) })
	g, gctx := errgroup.WithContext(ctx)
	watchCtx, stopWatching := context.WithCancel(gctx)
	defer stopWatching()
	g.Go(func() error { return load.WatchSagas(watchCtx, s.kafka, from, tr) })
	g.Go(func() error { return load.Drive(gctx, load.Loop{Concurrency: cfg.Concurrency}, a, plans, 0, tr) })
	g.Go(func() error {
		defer stopWatching()
		return tr.Wait(gctx, len(plans), time.Minute)
	})
	g.Go(func() error {
		ticker := time.NewTicker(30 * time.Second)
		defer ticker.Stop()
		start := time.Now()
		for {
			select {
			case <-watchCtx.Done():
				return nil
			case <-ticker.C:
				n := ended.Load()
				fmt.Fprintf(out, "takeover: %d of %d sagas ended, %.0f/s\n", n, len(plans), float64(n)/time.Since(start).Seconds())
			}
		}
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	runs := tr.Results()
	var wrong []string
	for i, r := range runs {
		if w := plans[i].Want; r.End.State != w.SagaState() || r.End.Reason != w.Reason() {
			wrong = append(wrong, fmt.Sprintf("saga %s (%s): got %s %q", r.ID, w, r.End.State, r.End.Reason))
		}
	}
	if len(wrong) > 0 {
		return nil, fmt.Errorf("%d sagas did not end as planned: %s", len(wrong), strings.Join(wrong[:min(len(wrong), 10)], "; "))
	}
	return runs, nil
}

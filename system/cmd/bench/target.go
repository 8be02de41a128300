package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/system"
	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

// target is the system under test, running in this process, and how to
// reach it.
type target struct {
	kafka config.Kafka
	// urls holds the base URL of each instance of every process, by its
	// name, the same index for one system.Run; order, customer, payment and
	// sagas are those of the processes the load drives.
	urls                            map[string][]string
	order, customer, payment, sagas []string
	paymentLimit                    int64
	kafkaName                       string // what Kafka is, for the report

	cancelSystem context.CancelFunc // nil until startSystem, and again after stopSystem
	done         <-chan error       // the instances' result, once every one has stopped
	stack        *devstack.Stack
}

// startStack starts the embedded broker and registry unless the
// environment names them. The processes start later (startSystem), so the
// bound is measured with nothing but Kafka running.
func startStack(ctx context.Context, cfg Config, logger *slog.Logger) (*target, error) {
	t := &target{kafka: cfg.System.Kafka, kafkaName: "embedded kfake (in memory)"}
	if !cfg.ExternalKafka || !cfg.ExternalRegistry {
		dc := devstack.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Logger: logger}
		if cfg.ExternalKafka {
			dc.Brokers = cfg.System.Kafka.Brokers // the embedded registry, on that Kafka
		}
		stack, err := devstack.Start(ctx, dc)
		if err != nil {
			return nil, fmt.Errorf("start the embedded stack: %w", err)
		}
		t.stack = stack
		t.kafka.Brokers, t.kafka.SchemaRegistryURL = stack.Brokers(), stack.RegistryURL()
	}
	if cfg.ExternalKafka {
		t.kafkaName = "Kafka at " + strings.Join(t.kafka.Brokers, ",")
	}
	return t, nil
}

// startSystem starts cfg.Instances copies of every process, each copy
// a system.Run of its own on free HTTP ports (each instance advertises its
// own address to the others), all on the same Kafka and registry, and
// waits until every instance is ready and every process's consumer group
// holds all its instances. If one instance stops, the others are stopped
// too.
func (t *target) startSystem(ctx context.Context, cfg Config, logger *slog.Logger) error {
	n := max(cfg.Instances, 1)
	addrs, err := load.FreeAddrs(len(system.Processes) * n)
	if err != nil {
		return err
	}
	t.urls = map[string][]string{}
	t.paymentLimit = cfg.System.Payment.PaymentLimit
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g, gctx := errgroup.WithContext(runCtx)
	for i := range n {
		sys := cfg.System
		sys.Embedded, sys.Services = false, nil
		sys.Kafka = t.kafka
		for j, p := range system.Processes {
			addr := addrs[i*len(system.Processes)+j]
			*p.HTTPAddr(&sys) = addr
			t.urls[p.Name] = append(t.urls[p.Name], "http://"+addr)
		}
		l := logger
		if n > 1 {
			l = logger.With("instance", i)
		}
		g.Go(func() error { return system.Run(gctx, sys, l) })
	}
	t.order, t.customer, t.payment, t.sagas = t.urls["order"], t.urls["customer"], t.urls["payment"], t.urls["orchestrator"]
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	t.cancelSystem, t.done = cancel, done

	deadline := time.Now().Add(readyWithin)
	err = t.awaitReady(ctx, deadline)
	if err == nil {
		err = t.awaitGroups(ctx, n, deadline)
	}
	if err != nil {
		t.stopSystem(logger)
		return err
	}
	return nil
}

// awaitReady polls every instance's /readyz until it answers 200.
func (t *target) awaitReady(ctx context.Context, deadline time.Time) error {
	client := &http.Client{Timeout: 5 * time.Second}
	for _, name := range system.Names() {
		for _, base := range t.urls[name] {
			if err := t.poll(ctx, deadline, func() error { return getOK(ctx, client, base+"/readyz") }); err != nil {
				return err
			}
		}
	}
	return nil
}

// readyWithin is how long the instances have to start.
const readyWithin = 60 * time.Second

// awaitGroups waits until the consumer group of every process is stable
// with at least n members (more on a shared cluster that runs the system
// too), so the measured sagas meet no rebalance of the start.
func (t *target) awaitGroups(ctx context.Context, n int, deadline time.Time) error {
	processGroups := system.Names() // each process's group is named after it
	adm, err := newAdmin(t.kafka)
	if err != nil {
		return err
	}
	defer adm.Close()
	return t.poll(ctx, deadline, func() error {
		groups, err := adm.DescribeGroups(ctx, processGroups...)
		if err != nil {
			return err
		}
		for _, name := range processGroups {
			g, ok := groups[name]
			switch {
			case !ok:
				return fmt.Errorf("consumer group %s not described", name)
			case g.Err != nil:
				return fmt.Errorf("consumer group %s: %w", name, g.Err)
			case g.State != "Stable" || len(g.Members) < n:
				return fmt.Errorf("consumer group %s: %s with %d members, want Stable with %d", name, g.State, len(g.Members), n)
			}
		}
		return nil
	})
}

// poll calls check until it returns nil, failing once the deadline has
// passed or the system has stopped.
func (t *target) poll(ctx context.Context, deadline time.Time, check func() error) error {
	for {
		select {
		case err := <-t.done:
			t.cancelSystem() // every instance has stopped: nothing left to stop
			t.cancelSystem, t.done = nil, nil
			return fmt.Errorf("the system stopped while starting: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s: %w", readyWithin, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

func getOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return nil
}

// stop stops the processes, then the embedded stack.
func (t *target) stop(logger *slog.Logger) {
	t.stopSystem(logger)
	t.closeStack(logger)
}

// stopSystem stops the processes, if running. A slow or failed shutdown is
// worth a warning, not a failed measurement.
func (t *target) stopSystem(logger *slog.Logger) {
	if t.cancelSystem == nil {
		return
	}
	t.cancelSystem()
	t.cancelSystem = nil
	select {
	case err := <-t.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			logger.Warn("system stopped with an error", "error", err)
		}
	case <-time.After(30 * time.Second):
		logger.Warn("system did not stop within 30s")
	}
}

func (t *target) closeStack(logger *slog.Logger) {
	if t.stack == nil {
		return
	}
	if err := t.stack.Close(); err != nil {
		logger.Warn("close the embedded stack", "error", err)
	}
}

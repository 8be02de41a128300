package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/system"
)

// target is the system under test, running in this process, and how to
// reach it.
type target struct {
	kafka                           config.Kafka
	order, customer, payment, sagas string // base URLs
	paymentLimit                    int64
	kafkaName                       string // what Kafka is, for the report

	cancelSystem context.CancelFunc // nil until startSystem, and again after stopSystem
	done         <-chan error       // system.Run's result
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

// startSystem starts the four processes on free HTTP ports and waits until
// every one is ready.
func (t *target) startSystem(ctx context.Context, cfg Config, logger *slog.Logger) error {
	addrs, err := freeAddrs(4)
	if err != nil {
		return err
	}
	sys := cfg.System
	sys.Embedded, sys.Services = false, nil
	sys.Kafka = t.kafka
	sys.Order.HTTPAddr, sys.Customer.HTTPAddr, sys.Payment.HTTPAddr, sys.Orchestrator.HTTPAddr = addrs[0], addrs[1], addrs[2], addrs[3]
	t.order, t.customer, t.payment, t.sagas = "http://"+addrs[0], "http://"+addrs[1], "http://"+addrs[2], "http://"+addrs[3]
	t.paymentLimit = sys.Payment.PaymentLimit

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- system.Run(runCtx, sys, logger) }()
	t.cancelSystem, t.done = cancel, done

	if err := t.awaitReady(ctx, 60*time.Second); err != nil {
		t.stopSystem(logger)
		return err
	}
	return nil
}

// awaitReady polls every process's /readyz until it answers 200.
func (t *target) awaitReady(ctx context.Context, within time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(within)
	for _, base := range []string{t.order, t.customer, t.payment, t.sagas} {
		for {
			select {
			case err := <-t.done:
				return fmt.Errorf("the system stopped while starting: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			default:
			}
			err := getOK(ctx, client, base+"/readyz")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("not ready within %s: %w", within, err)
			}
			time.Sleep(50 * time.Millisecond) // polling interval
		}
	}
	return nil
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

// freeAddrs returns n loopback addresses whose ports were free a moment ago.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		addrs = append(addrs, ln.Addr().String())
		defer ln.Close()
	}
	return addrs, nil
}

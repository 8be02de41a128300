// Package system runs the whole system in one process: optionally the
// embedded broker and registry, then every process of Processes (the order,
// customer and payment services and the orchestrator), each exactly as its
// own main would run it. `make run` and the end-to-end tests use it.
package system

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kafkasaga/kafkasaga/devstack"
	orchestrator "github.com/kafkasaga/kafkasaga/orchestrator/service"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/process"
	customer "github.com/kafkasaga/kafkasaga/services/customer/service"
	order "github.com/kafkasaga/kafkasaga/services/order/service"
	payment "github.com/kafkasaga/kafkasaga/services/payment/service"
)

// SpareP gives the process, once, one more P than the Go runtime chose
// (gomaxprocs); Run calls it. Every process of the system, the embedded
// broker's single loop and every client's network I/O share one Go
// scheduler, which has no priorities and looks at the network only when a
// P runs out of work: while the handlers keep every P busy, a request's
// answer waits in its socket. The spare P, which the OS shares out with
// the others, runs the network and the broker's loop meanwhile
// (docs/architecture.md, "One spare P").
func SpareP() {
	spareP.Do(func() {
		if n := gomaxprocs(runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS")); n > 0 {
			runtime.GOMAXPROCS(n)
		}
	})
}

var spareP sync.Once

// gomaxprocs returns the GOMAXPROCS the whole system runs with, given the
// runtime's choice and the GOMAXPROCS environment variable: one more than
// the runtime's choice, or 0 to keep the environment's.
func gomaxprocs(chosen int, env string) int {
	if env != "" {
		return 0
	}
	return chosen + 1
}

// Config configures Run. The zero value of each part is its service's default.
type Config struct {
	// Embedded starts the embedded broker and registry on the addresses in
	// Devstack and points every service at them.
	Embedded     bool
	Devstack     devstack.Config
	Kafka        config.Kafka
	Order        order.Config
	Customer     customer.Config
	Payment      payment.Config
	Orchestrator orchestrator.Config
	// make participant adds Config fields above

	// Services names the processes to run, of the names in Processes;
	// empty runs them all.
	Services []string
}

// Run starts everything and blocks until ctx ends or a part fails.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	SpareP()
	if cfg.Embedded {
		stack, err := devstack.Start(ctx, cfg.Devstack)
		if err != nil {
			return fmt.Errorf("start embedded kafka and registry: %w", err)
		}
		defer stack.Close()
		cfg.Kafka.Brokers = stack.Brokers()
		cfg.Kafka.SchemaRegistryURL = stack.RegistryURL()
		logger.Info("embedded stack up", "kafka", stack.Brokers(), "schema_registry", stack.RegistryURL())
	}
	// Several processes in one: each advertises its own HTTP address.
	cfg.Kafka.AdvertisedHTTPAddr = ""
	for _, p := range Processes {
		*p.Kafka(&cfg) = cfg.Kafka
		// Each names itself in its traces, whatever OTEL_SERVICE_NAME says.
		p.Telemetry(&cfg).ServiceName = ""
	}

	var procs []*process.Process
	for _, b := range Processes {
		if len(cfg.Services) > 0 && !slices.Contains(cfg.Services, b.Name) {
			continue
		}
		p, err := b.New(&cfg, logger.With("service", b.Name))
		if err != nil {
			for _, p := range procs {
				p.Close()
			}
			return err
		}
		procs = append(procs, p)
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, p := range procs {
		g.Go(func() error { return p.Run(ctx) })
	}
	return g.Wait()
}

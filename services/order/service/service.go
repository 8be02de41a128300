// Package service wires the order service: its store, application, ports
// and the process that runs them. main and the all-in-one system call New.
package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/platform/telemetry"
	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/services/order/adapters"
	"github.com/kafkasaga/kafkasaga/services/order/app"
	"github.com/kafkasaga/kafkasaga/services/order/app/command"
	"github.com/kafkasaga/kafkasaga/services/order/domain"
	"github.com/kafkasaga/kafkasaga/services/order/ports"
)

// Config is the order service's configuration, read from the environment by main.
type Config struct {
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8080"`
	Kafka    config.Kafka
	// Telemetry says where traces go (OTEL_ variables); by default nowhere.
	Telemetry telemetry.Config
}

// New builds the order service; Run the returned process to start it.
func New(cfg Config, logger *slog.Logger) (*process.Process, error) {
	return process.Build(process.Config{
		Name:      "order",
		HTTPAddr:  cfg.HTTPAddr,
		Kafka:     cfg.Kafka,
		Types:     contracts.Records(contracts.TopicOrderCommands, contracts.TopicOrderState),
		Telemetry: cfg.Telemetry,
	}, logger, func(p *process.Process) error {
		orders, err := process.NewStore[contracts.OrderRecord](p, contracts.TopicOrderState)
		if err != nil {
			return err
		}
		events := adapters.NewOrderEvents(p.Serde, p.Publisher)
		repo := adapters.NewOrderRepository(orders, events)
		application := app.New(repo, events, time.Now)

		register := func(sp *saga.Participant) { ports.RegisterCommands(sp, application) }
		if err := p.Participate(contracts.TopicOrderCommands, register, domain.ErrNotFound, domain.ErrInvalid, domain.ErrConflict); err != nil {
			return err
		}
		ports.RegisterHTTP(p.HTTP, application)
		p.Go(func(ctx context.Context) error { return announcePending(ctx, application, logger) })
		return nil
	})
}

// announcePending announces the orders stuck PENDING or CANCELLING
// (command.StuckAfter) once the state is restored, then every StuckAfter,
// until ctx ends. A failed round is logged and tried again at the next
// tick.
func announcePending(ctx context.Context, application app.Application, logger *slog.Logger) error {
	announce := func() {
		n, err := application.Commands.RepublishPending.Handle(ctx)
		if err != nil {
			logger.Warn("announce pending orders", "announced", n, "error", err)
		} else if n > 0 {
			logger.Info("announced pending orders again", "orders", n)
		}
	}
	announce()
	return process.Every(ctx, command.StuckAfter, announce)
}

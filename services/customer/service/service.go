// Package service wires the customer service: its stores, application, ports
// and the process that runs them. main and the all-in-one system call New.
package service

import (
	"log/slog"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/platform/telemetry"
	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/services/customer/adapters"
	"github.com/kafkasaga/kafkasaga/services/customer/app"
	"github.com/kafkasaga/kafkasaga/services/customer/domain"
	"github.com/kafkasaga/kafkasaga/services/customer/ports"
)

// Config is the customer service's configuration, read from the environment by main.
type Config struct {
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8082"`
	Kafka    config.Kafka
	// Telemetry says where traces go (OTEL_ variables); by default nowhere.
	Telemetry telemetry.Config
}

// New builds the customer service; Run the returned process to start it.
func New(cfg Config, logger *slog.Logger) (*process.Process, error) {
	return process.Build(process.Config{
		Name:      "customer",
		HTTPAddr:  cfg.HTTPAddr,
		Kafka:     cfg.Kafka,
		Types:     contracts.Records(contracts.TopicCustomerCommands, contracts.TopicCustomerState, contracts.TopicCustomerReservations),
		Telemetry: cfg.Telemetry,
	}, logger, func(p *process.Process) error {
		customers, err := process.NewStore[contracts.CustomerRecord](p, contracts.TopicCustomerState)
		if err != nil {
			return err
		}
		reservations, err := process.NewStore(p, contracts.TopicCustomerReservations,
			func(c *store.Config[contracts.ReservationRecord]) {
				c.PartitionKey = adapters.ReservationPartitionKey
				c.Expire = &store.Expire[contracts.ReservationRecord]{Ended: adapters.DecisionOver}
			})
		if err != nil {
			return err
		}
		repo := adapters.NewCustomerRepository(customers, reservations)
		p.OnRestored(repo.Restore)
		application := app.New(repo)

		register := func(sp *saga.Participant) { ports.RegisterCommands(sp, application) }
		if err := p.Participate(contracts.TopicCustomerCommands, register, domain.ErrInvalid); err != nil {
			return err
		}
		ports.RegisterHTTP(p.HTTP, application)
		return nil
	})
}

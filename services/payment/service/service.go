// Package service wires the payment service: its store, application, ports
// and the process that runs them. main and the all-in-one system call New.
package service

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/platform/telemetry"
	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/services/payment/adapters"
	"github.com/kafkasaga/kafkasaga/services/payment/app"
	"github.com/kafkasaga/kafkasaga/services/payment/domain"
	"github.com/kafkasaga/kafkasaga/services/payment/ports"
)

// Config is the payment service's configuration, read from the environment by main.
type Config struct {
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8083"`
	Kafka    config.Kafka
	// Telemetry says where traces go (OTEL_ variables); by default nowhere.
	Telemetry telemetry.Config
	// PaymentLimit is the largest amount, in cents, one payment may
	// authorize; larger ones are declined.
	PaymentLimit int64 `env:"PAYMENT_LIMIT" envDefault:"1000000" min:"1"`
	// RefundLimit is the largest amount, in cents, one payment may refund
	// when its order is cancelled; the cancellation of a larger one is
	// refused.
	RefundLimit int64 `env:"REFUND_LIMIT" envDefault:"500000" min:"1"`
}

// New builds the payment service; Run the returned process to start it.
func New(cfg Config, logger *slog.Logger) (*process.Process, error) {
	if cfg.PaymentLimit <= 0 {
		return nil, fmt.Errorf("payment service: PAYMENT_LIMIT %d must be positive", cfg.PaymentLimit)
	}
	if cfg.RefundLimit <= 0 {
		return nil, fmt.Errorf("payment service: REFUND_LIMIT %d must be positive", cfg.RefundLimit)
	}
	return process.Build(process.Config{
		Name:      "payment",
		HTTPAddr:  cfg.HTTPAddr,
		Kafka:     cfg.Kafka,
		Types:     contracts.Records(contracts.TopicPaymentCommands, contracts.TopicPaymentState),
		Telemetry: cfg.Telemetry,
	}, logger, func(p *process.Process) error {
		payments, err := process.NewStore(p, contracts.TopicPaymentState, func(c *store.Config[contracts.PaymentRecord]) {
			c.Expire = &store.Expire[contracts.PaymentRecord]{Ended: adapters.PaymentOver}
		})
		if err != nil {
			return err
		}
		application := app.New(adapters.NewPaymentRepository(payments), cfg.PaymentLimit, cfg.RefundLimit, time.Now)

		register := func(sp *saga.Participant) { ports.RegisterCommands(sp, application) }
		if err := p.Participate(contracts.TopicPaymentCommands, register, domain.ErrInvalid); err != nil {
			return err
		}
		ports.RegisterHTTP(p.HTTP, application)
		return nil
	})
}

// Package service wires the orchestrator: the saga engine running the Create
// Order saga, its store, its ports and the process that runs them. main and
// the all-in-one system call New.
package service

import (
	"log/slog"
	"time"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/orchestrator/adapters"
	"github.com/kafkasaga/kafkasaga/orchestrator/createorder"
	"github.com/kafkasaga/kafkasaga/orchestrator/ports"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Config is the orchestrator's configuration, read from the environment by main.
type Config struct {
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8084"`
	Kafka    config.Kafka
	// StepTimeout is how long a step waits for its reply before its command
	// is sent again; each further attempt waits twice as long.
	StepTimeout time.Duration `env:"STEP_TIMEOUT" envDefault:"10s"`
	// StepMaxAttempts is how many times a step's command is sent before the
	// saga gives up on it and compensates.
	StepMaxAttempts int `env:"STEP_MAX_ATTEMPTS" envDefault:"5"`
	// SagaRetention is how long an ended saga stays readable (GET
	// /sagas/{id}) after it ended; then it is gone. Ended sagas leave the
	// orchestrator's memory at once: they are read from Kafka.
	SagaRetention time.Duration `env:"SAGA_RETENTION" envDefault:"168h"`
}

// New builds the orchestrator; Run the returned process to start it.
func New(cfg Config, logger *slog.Logger) (*process.Process, error) {
	return process.Build(process.Config{
		Name:     "orchestrator",
		HTTPAddr: cfg.HTTPAddr,
		Kafka:    cfg.Kafka,
		Types:    contracts.Records(contracts.TopicOrderEvents, contracts.TopicCreateOrderReplies, contracts.TopicCreateOrderSagas),
	}, logger, func(p *process.Process) error {
		if err := messaging.SetRetention(cfg.Kafka, contracts.TopicCreateOrderSagasEnded, cfg.SagaRetention); err != nil {
			return err
		}
		instances, err := process.NewStore(p, contracts.TopicCreateOrderSagas, func(c *store.Config[saga.SagaInstance]) {
			c.Archive = &store.Archive[saga.SagaInstance]{Topic: contracts.TopicCreateOrderSagasEnded, Ended: saga.Ended}
		})
		if err != nil {
			return err
		}
		engine, err := saga.NewEngine(createorder.Definition(), saga.EngineConfig{
			Instances:   adapters.NewInstances(instances),
			Codec:       p.Serde,
			DataTopic:   contracts.TopicCreateOrderSagas,
			StepTimeout: cfg.StepTimeout,
			MaxAttempts: cfg.StepMaxAttempts,
			Metrics:     p.Metrics,
		}, logger)
		if err != nil {
			return err
		}
		if err := p.Subscribe(contracts.TopicOrderEvents, ports.OrderCreated(p.Serde, engine)); err != nil {
			return err
		}
		if err := p.Subscribe(contracts.TopicCreateOrderReplies, ports.Replies(engine)); err != nil {
			return err
		}
		p.OnRestored(engine.Resume)
		p.Go(engine.Run)
		ports.RegisterHTTP(p.HTTP, engine)
		return nil
	})
}

// Package service wires the orchestrator: one saga engine per saga type,
// each with its store and ports, and the process that runs them. main and
// the all-in-one system call New.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/orchestrator/adapters"
	"github.com/kafkasaga/kafkasaga/orchestrator/cancelorder"
	"github.com/kafkasaga/kafkasaga/orchestrator/console"
	"github.com/kafkasaga/kafkasaga/orchestrator/console/web"
	"github.com/kafkasaga/kafkasaga/orchestrator/createorder"
	"github.com/kafkasaga/kafkasaga/orchestrator/ports"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/platform/telemetry"
	"github.com/kafkasaga/kafkasaga/saga"
)

// sagas are the saga types the orchestrator runs: another is one more entry.
func sagas() []runner {
	return []runner{
		sagaType[createorder.Data, contracts.OrderCreated]{
			Definition: createorder.Definition(),
			Previous:   createorder.Previous(),
			EndedTopic: contracts.TopicCreateOrderSagasEnded,
			StartTopic: contracts.TopicOrderEvents,
			Start:      createorder.Start,
		},
		sagaType[cancelorder.Data, contracts.OrderCancelRequested]{
			Definition: cancelorder.Definition(),
			Previous:   cancelorder.Previous(),
			EndedTopic: contracts.TopicCancelOrderSagasEnded,
			StartTopic: contracts.TopicOrderEvents,
			Start:      cancelorder.Start,
		},
	}
}

// sagaType is a saga type as the orchestrator runs it: its definition, the
// topic its ended instances are archived to, and the event of type E that
// starts one. Saga types may share a start topic, each started by its own
// event type; the event is keyed by the saga's id, as its replies and
// instance are, so one instance owns all three.
type sagaType[D, E any] struct {
	Definition saga.Definition[D] // the current version: new sagas start under it
	// Previous are the earlier versions that may still have sagas running,
	// each under the version it started under; none by default.
	Previous   saga.Versions[D]
	EndedTopic string
	StartTopic string
	Start      func(event *E) (sagaID string, data D, err error)
}

// Outline is a saga type the orchestrator runs, as its docs and the console
// show it: the outline of its current definition, the earlier versions that
// still run, and what starts it.
type Outline struct {
	saga.Outline
	Previous   []int  // the earlier versions given to the engine, highest first
	StartTopic string // where the event that starts one arrives
	StartEvent string // its record name, e.g. OrderCreated
	EndedTopic string // where its ended instances are archived
}

// Outlines returns every saga type the orchestrator runs, in the order it
// runs them.
func Outlines() []Outline {
	var outlines []Outline
	for _, s := range sagas() {
		outlines = append(outlines, s.outline())
	}
	return outlines
}

// outlines returns the current outline of each of sagas.
func outlines(sagas []runner) []saga.Outline {
	var o []saga.Outline
	for _, s := range sagas {
		o = append(o, s.versions()...)
	}
	return o
}

// runner is a sagaType whatever its types.
type runner interface {
	outline() Outline
	versions() []saga.Outline // every version it runs, the current first
	console() console.SagaType
	topics() []string // what the orchestrator reads and keeps for it
	startTopic() string
	// run starts the saga type's engine on p, and returns how to find its
	// sagas, how an operator acts on them, and how to start one from its
	// start topic's events.
	run(p *process.Process, cfg Config, logger *slog.Logger) (ports.Lookup, ports.Actor, ports.Starter, error)
}

func (s sagaType[D, E]) topics() []string {
	return []string{s.StartTopic, s.Definition.ReplyTopic, s.Definition.StateTopic}
}

func (s sagaType[D, E]) startTopic() string { return s.StartTopic }

func (s sagaType[D, E]) outline() Outline {
	o := Outline{Outline: s.Definition.Outline(), StartTopic: s.StartTopic,
		StartEvent: reflect.TypeFor[E]().Name(), EndedTopic: s.EndedTopic}
	for _, p := range s.Previous {
		o.Previous = append(o.Previous, p.Version)
	}
	slices.Sort(o.Previous)
	slices.Reverse(o.Previous)
	return o
}

func (s sagaType[D, E]) versions() []saga.Outline {
	o := []saga.Outline{s.Definition.Outline()}
	for _, p := range s.Previous {
		o = append(o, p.Outline())
	}
	return o
}

func (s sagaType[D, E]) console() console.SagaType {
	t := console.SagaType{Type: s.Definition.Type, Version: s.Definition.Version,
		StateTopic: s.Definition.StateTopic, EndedTopic: s.EndedTopic}
	for _, step := range s.Definition.Steps {
		t.Steps = append(t.Steps, step.Name)
	}
	for _, p := range s.Previous {
		for _, step := range p.Steps {
			if !slices.Contains(t.Steps, step.Name) && !slices.Contains(t.OtherSteps, step.Name) {
				t.OtherSteps = append(t.OtherSteps, step.Name)
			}
		}
	}
	return t
}

func (s sagaType[D, E]) run(p *process.Process, cfg Config, logger *slog.Logger) (ports.Lookup, ports.Actor, ports.Starter, error) {
	def := s.Definition
	for _, p := range s.Previous {
		if p.Version >= def.Version {
			return nil, nil, nil, fmt.Errorf("saga %q: previous version %d is not below the current one, %d", def.Type, p.Version, def.Version)
		}
	}
	instances, err := process.NewStore(p, def.StateTopic, func(c *store.Config[saga.SagaInstance]) {
		c.Archive = &store.Archive[saga.SagaInstance]{Topic: s.EndedTopic, Ended: saga.Ended}
	})
	if err != nil {
		return nil, nil, nil, err
	}
	engine, err := saga.NewEngine(append(saga.Versions[D]{def}, s.Previous...), saga.EngineConfig{
		Instances:   adapters.NewInstances(instances),
		Codec:       p.Serde,
		StepTimeout: cfg.StepTimeout,
		MaxAttempts: cfg.StepMaxAttempts,
		Metrics:     p.Metrics,
		Traces:      p.Traces,
	}, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	// A reply no step accepts is dead-lettered.
	if err := p.Subscribe(def.ReplyTopic, messaging.Poison(engine.HandleReply, saga.ErrUnexpectedReply)); err != nil {
		return nil, nil, nil, err
	}
	p.OnRestored(engine.Resume)
	p.OnLost(engine.Forget)
	p.Go(engine.Run)
	return ports.Look(engine, s.versions()...), engine, ports.Start(engine, s.Start), nil
}

// Config is the orchestrator's configuration, read from the environment by main.
type Config struct {
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8084"`
	Kafka    config.Kafka
	// StepTimeout is how long a step waits for its reply before its command
	// is sent again; each further attempt waits twice as long.
	StepTimeout time.Duration `env:"STEP_TIMEOUT" envDefault:"10s" min:"1ms"`
	// StepMaxAttempts is how many times a step's command is sent before the
	// saga gives up on it and compensates.
	StepMaxAttempts int `env:"STEP_MAX_ATTEMPTS" envDefault:"5" min:"1"`
	// ConsoleMaxEnded is how many ended sagas the console lists, the
	// newest, beside every running one: each costs about 340 bytes of every
	// orchestrator instance's memory. An older one is still shown by id
	// (GET /sagas/{id}, /ui/sagas/{id}) within SAGA_RETENTION. 0 lists all.
	ConsoleMaxEnded int `env:"CONSOLE_MAX_ENDED" envDefault:"50000" min:"0"`
	// AdminToken is the bearer token of the operator actions (retry or
	// abort a saga, replay a dead letter); unset, they are disabled.
	AdminToken string `env:"ADMIN_TOKEN"`
	// Telemetry says where traces go (OTEL_ variables); by default nowhere.
	Telemetry telemetry.Config
}

// New builds the orchestrator; Run the returned process to start it.
func New(cfg Config, logger *slog.Logger) (*process.Process, error) {
	all := sagas()
	var topics []string
	for _, s := range all {
		topics = append(topics, s.topics()...)
	}
	return process.Build(process.Config{
		Name:      "orchestrator",
		HTTPAddr:  cfg.HTTPAddr,
		Kafka:     cfg.Kafka,
		Types:     contracts.Records(topics...),
		Telemetry: cfg.Telemetry,
	}, logger, func(p *process.Process) error {
		var (
			lookups     []ports.Lookup
			actors      []ports.Actor
			startTopics []string                       // in the order of the list
			starters    = map[string][]ports.Starter{} // by start topic
		)
		for _, s := range all {
			look, actor, start, err := s.run(p, cfg, logger)
			if err != nil {
				return err
			}
			lookups = append(lookups, look)
			actors = append(actors, actor)
			if !slices.Contains(startTopics, s.startTopic()) {
				startTopics = append(startTopics, s.startTopic())
			}
			starters[s.startTopic()] = append(starters[s.startTopic()], start)
		}
		// One subscription a start topic, which hands each event to the
		// saga type it starts, if it was written within the retention of
		// ended sagas, less a tenth for the clocks.
		stale := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "saga_stale_starts_total",
			Help: "Events that would start a saga, ignored because they were written longer ago than SAGA_RETENTION less a tenth.",
		}, []string{"topic"})
		if err := p.Metrics.Register(stale); err != nil {
			return err
		}
		within := p.Within()
		for _, topic := range startTopics {
			ignore := func(msg *message.Message, written time.Time) {
				stale.WithLabelValues(topic).Inc()
				logger.Warn("an event written longer ago than SAGA_RETENTION less a tenth starts no saga: the saga it asks for may have ended and been forgotten",
					"topic", topic, "uuid", msg.UUID, "written", written)
			}
			if err := p.Subscribe(topic, ports.Starts(p.Serde, within, ignore, starters[topic]...)); err != nil {
				return err
			}
		}
		ports.RegisterHTTP(p.HTTP, lookups)
		ports.RegisterActions(p.HTTP, ports.ActionsConfig{
			AdminToken: cfg.AdminToken,
			Sagas:      lookups,
			Actors:     actors,
			Replay: func(ctx context.Context, partition int32, offset int64) (messaging.Replayed, error) {
				return messaging.ReplayDeadLetter(ctx, cfg.Kafka, partition, offset)
			},
			Logger: logger,
		})
		web.Register(p.HTTP, outlines(all))
		return runConsole(p, all, cfg.ConsoleMaxEnded, logger)
	})
}

// consoleGroup is the consumer group in which the console keeps its
// checkpoint of the state topics: it reads outside the orchestrator's.
const consoleGroup = "orchestrator-console"

// runConsole serves the console's API on every instance, each reading
// every saga of every type.
func runConsole(p *process.Process, all []runner, maxEnded int, logger *slog.Logger) error {
	var (
		types     []console.SagaType
		topicsAll []string
	)
	for _, s := range all {
		types = append(types, s.console())
	}
	for _, t := range contracts.Topics() {
		topicsAll = append(topicsAll, t.Name)
	}
	// Dead letters come from every topic: decode whatever record they
	// hold. The stats' snapshot is one of them.
	letters, err := p.NewSerde(contracts.Records(topicsAll...)...)
	if err != nil {
		return err
	}
	c, err := console.New(console.Config{Types: types, Kgo: p.KgoOptions(), Sagas: p.Serde, DeadLetters: letters, MaxEnded: maxEnded,
		Group: consoleGroup, Stats: letters, Logger: logger})
	if err != nil {
		return err
	}
	c.Register(p.HTTP)
	p.Go(c.Run)
	return nil
}

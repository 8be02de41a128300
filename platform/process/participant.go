package process

import (
	"errors"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Participate subscribes the process to topic as a saga participant:
// register adds a handler for each command the topic carries (saga.Handle),
// which the participant checks. A handler error that is one of poison, or
// saga.ErrUnexpectedCommand, is input no retry can cure: its command is
// dead-lettered rather than holding back every later command of its key.
// Any other error is retried.
func (p *Process) Participate(topic string, register func(*saga.Participant), poison ...error) error {
	participant := saga.NewParticipant(topic, contracts.Interactions(), contracts.Carries, p.Serde, p.Send)
	register(participant)
	commands, err := participant.Handler()
	if err != nil {
		return err
	}
	if p.stale == nil {
		p.stale = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commands_stale_total",
			Help: "Commands ignored because they were written longer ago than SAGA_RETENTION less a tenth and would make a decision.",
		}, []string{"topic"})
		if err := p.Metrics.Register(p.stale); err != nil {
			return err
		}
	}
	stale := p.stale.WithLabelValues(topic)
	// A command that would make a decision its store may have made and
	// deleted since (store.ErrTooLate) is not answered: it would be
	// decided again as new.
	recent := func(msg *message.Message) error {
		err := commands(msg)
		if errors.Is(err, store.ErrTooLate) {
			stale.Inc()
			p.Logger.Warn("a command too old to make a decision is ignored: the one it asks for may have been made and deleted since",
				"topic", topic, "uuid", msg.UUID, "error", err)
			return nil
		}
		return err
	}
	return p.Subscribe(topic, messaging.Poison(recent, append([]error{saga.ErrUnexpectedCommand}, poison...)...))
}

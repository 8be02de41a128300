package process

import (
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
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
			Help: "Commands ignored because they were written longer ago than SAGA_RETENTION less a tenth.",
		}, []string{"topic"})
		if err := p.Metrics.Register(p.stale); err != nil {
			return err
		}
	}
	within, stale := p.Within(), p.stale.WithLabelValues(topic)
	// A command older than that may ask about a decision that held
	// nothing and was deleted since (store.Expire), and would be decided
	// again.
	recent := func(msg *message.Message) error {
		if written, old := messaging.WrittenBefore(msg, within); old {
			stale.Inc()
			p.Logger.Warn("a command written longer ago than SAGA_RETENTION less a tenth is ignored: what it asks about may have been forgotten",
				"topic", topic, "uuid", msg.UUID, "written", written)
			return nil
		}
		return commands(msg)
	}
	return p.Subscribe(topic, messaging.Poison(recent, append([]error{saga.ErrUnexpectedCommand}, poison...)...))
}

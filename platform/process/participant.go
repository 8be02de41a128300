package process

import (
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
	return p.Subscribe(topic, messaging.Poison(commands, append([]error{saga.ErrUnexpectedCommand}, poison...)...))
}

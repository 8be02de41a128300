package process_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/saga"
)

// TestParticipateNeedsAHandlerForEveryCommandOfItsTopic: the participant's
// checks run when a service subscribes it, so a command left without a
// handler stops the service at start, naming it.
func TestParticipateNeedsAHandlerForEveryCommandOfItsTopic(t *testing.T) {
	stack := devstack.StartForTest(t)
	kafka := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true}
	reserve := func(sp *saga.Participant) {
		saga.Handle(sp, contracts.ReserveCreditInteraction, func(context.Context, *contracts.ReserveCredit) (contracts.ReserveCreditReply, error) {
			return &contracts.CreditReserved{}, nil
		})
	}
	release := func(sp *saga.Participant) {
		saga.Handle(sp, contracts.ReleaseCreditInteraction, func(context.Context, *contracts.ReleaseCredit) (contracts.ReleaseCreditReply, error) {
			return &contracts.CreditReleased{}, nil
		})
	}

	p := newProcess(t, kafka)
	defer p.Close()
	err := p.Participate(contracts.TopicCustomerCommands, reserve)
	if err == nil || !strings.Contains(err.Error(), "no handler for ReleaseCredit,") {
		t.Errorf("ReserveCredit's handler only: got %v, want an error naming ReleaseCredit", err)
	}

	q := newProcess(t, kafka)
	defer q.Close()
	if err := q.Participate(contracts.TopicCustomerCommands, func(sp *saga.Participant) { reserve(sp); release(sp) }); err != nil {
		t.Errorf("both handlers: got %v, want nil", err)
	}
}

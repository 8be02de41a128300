// Package adapters implements what the saga engine uses: its instances, on
// a Kafka-backed store of the saga type's compacted topic.
package adapters

import (
	"context"
	"log/slog"

	"github.com/IBM/sarama"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/orchestrator/saga"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
)

// Instances keeps each saga instance as one record keyed by saga id.
type Instances struct {
	store  *store.Store[contracts.SagaInstance]
	logger *slog.Logger
}

var _ saga.Instances = (*Instances)(nil)

func NewInstances(s *store.Store[contracts.SagaInstance], logger *slog.Logger) *Instances {
	return &Instances{store: s, logger: logger}
}

func (i *Instances) Get(id string) (contracts.SagaInstance, bool) {
	v, ok, err := i.store.Get(id)
	if err != nil {
		i.logger.Error("read saga instance", "saga_id", id, "error", err)
		return contracts.SagaInstance{}, false
	}
	if !ok {
		return contracts.SagaInstance{}, false
	}
	return *v, true
}

// Update writes the instance and its command in one produce request.
func (i *Instances) Update(ctx context.Context, id string, fn func(v *contracts.SagaInstance, exists bool) (*saga.Outgoing, error)) error {
	return i.store.UpdateAndSend(ctx, id, func(v *contracts.SagaInstance, exists bool) ([]*sarama.ProducerMessage, error) {
		out, err := fn(v, exists)
		if err != nil || out == nil {
			return nil, err
		}
		pm, err := messaging.ProducerMessage(out.Topic, out.Msg)
		if err != nil {
			return nil, err
		}
		return []*sarama.ProducerMessage{pm}, nil
	})
}

func (i *Instances) Range(fn func(id string, v contracts.SagaInstance) bool) error {
	return i.store.Range(func(id string, v *contracts.SagaInstance) bool { return fn(id, *v) })
}

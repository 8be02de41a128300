// Package adapters implements what the saga engine uses: its instances, on
// a Kafka-backed store of the saga type's compacted topic.
package adapters

import (
	"context"
	"log/slog"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/orchestrator/saga"
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

func (i *Instances) Update(ctx context.Context, id string, fn func(v *contracts.SagaInstance, exists bool) error) error {
	return i.store.Update(ctx, id, fn)
}

func (i *Instances) Range(fn func(id string, v contracts.SagaInstance) bool) {
	i.store.Range(func(id string, v *contracts.SagaInstance) bool { return fn(id, *v) })
}

// Package adapters implements what the saga engine uses: its instances, on
// a Kafka-backed store of the saga type's compacted topic.
package adapters

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Instances keeps each saga instance as one record keyed by saga id.
type Instances struct {
	store *store.Store[saga.SagaInstance]
}

var _ saga.Instances = (*Instances)(nil)

func NewInstances(s *store.Store[saga.SagaInstance]) *Instances {
	return &Instances{store: s}
}

func (i *Instances) Get(id string) (saga.SagaInstance, bool, error) {
	return instance(i.store.Get(id))
}

// GetCommitted reads the instance as committed (store.GetCommitted).
func (i *Instances) GetCommitted(id string) (saga.SagaInstance, bool, error) {
	return instance(i.store.GetCommitted(id))
}

func instance(v *saga.SagaInstance, ok bool, err error) (saga.SagaInstance, bool, error) {
	if err != nil || !ok {
		return saga.SagaInstance{}, false, err
	}
	return *v, true, nil
}

// Update writes the instance and its command in one transaction.
func (i *Instances) Update(ctx context.Context, id string, fn func(v *saga.SagaInstance, exists bool) (*saga.Outgoing, error), over func(committed bool)) error {
	return i.store.UpdateAndSendThen(ctx, id, func(v *saga.SagaInstance, exists bool) ([]*kgo.Record, error) {
		out, err := fn(v, exists)
		if err != nil || out == nil {
			return nil, err
		}
		out.Msg.Metadata.Set(contracts.HeaderPartitionKey, out.Key)
		pm, err := messaging.NewRecord(out.Topic, out.Msg)
		if err != nil {
			return nil, err
		}
		return []*kgo.Record{pm}, nil
	}, over)
}

func (i *Instances) Range(fn func(id string, v saga.SagaInstance) bool) error {
	return i.store.Range(func(id string, v *saga.SagaInstance) bool { return fn(id, *v) })
}

package load

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/saga"
)

// SagaEnd is how a saga ended, as its last record on the saga topic says.
type SagaEnd struct {
	State, Reason string
	Seen          time.Time // when the tracker read the record
	Timeouts      int       // commands re-sent because their reply was late
}

// SagaRun is one saga of the run: when its order was posted and how it ended.
type SagaRun struct {
	ID    string
	Sent  time.Time
	End   SagaEnd
	Ended bool
	done  chan struct{} // closed when it ended
}

// Tracker pairs each posted order with the end of its saga. A saga may end
// before its POST has returned, so whichever comes second completes it.
type Tracker struct {
	onEnd func() // called once per ended saga, for a progress bar

	mu      sync.Mutex
	runs    []SagaRun          // by order index
	index   map[string]int     // order index by saga id, once posted
	early   map[string]SagaEnd // ended, not yet posted
	again   int                // ends of a saga that had ended already
	ended   int
	lastEnd time.Time
}

func NewTracker(n int, onEnd func()) *Tracker {
	if onEnd == nil {
		onEnd = func() {}
	}
	t := &Tracker{onEnd: onEnd, runs: make([]SagaRun, n), index: make(map[string]int, n),
		early: map[string]SagaEnd{}, lastEnd: time.Now()}
	for i := range t.runs {
		t.runs[i].done = make(chan struct{})
	}
	return t
}

// posted records that order i, whose saga id is id, was sent at sent.
func (t *Tracker) Posted(i int, id string, sent time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.runs[i].ID, t.runs[i].Sent = id, sent
	t.index[id] = i
	if e, ok := t.early[id]; ok {
		delete(t.early, id)
		t.complete(i, e)
	}
}

// sagaEnded records the end of saga id; only the first end counts, and
// those after it are counted (Unexpected).
func (t *Tracker) SagaEnded(id string, e SagaEnd) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.index[id]
	switch {
	case ok && !t.runs[i].Ended:
		t.complete(i, e)
	case ok:
		t.again++
	default:
		if _, seen := t.early[id]; seen {
			t.again++
		} else {
			t.early[id] = e
		}
	}
}

// Unexpected returns what no saga of the run explains: how many ends came
// for a saga that had ended already, and the sagas that ended although no
// order of the run made them (an order made twice, say).
func (t *Tracker) Unexpected() (again int, unposted []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id := range t.early {
		unposted = append(unposted, id)
	}
	slices.Sort(unposted)
	return t.again, unposted
}

func (t *Tracker) complete(i int, e SagaEnd) {
	t.runs[i].End, t.runs[i].Ended = e, true
	close(t.runs[i].done)
	t.ended++
	t.lastEnd = e.Seen
	t.onEnd()
}

// endOf returns a channel closed when the saga of order i has ended.
func (t *Tracker) EndOf(i int) <-chan struct{} { return t.runs[i].done }

// wait returns once the sagas of the first n orders have ended, or with an
// error once none has ended for stall.
func (t *Tracker) Wait(ctx context.Context, n int, stall time.Duration) error {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for i := 0; i < n; {
		select {
		case <-t.runs[i].done: // never replaced, so read without the lock
			i++
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
			t.mu.Lock()
			ended, last := t.ended, t.lastEnd
			t.mu.Unlock()
			if time.Since(last) > stall {
				return fmt.Errorf("%d of %d sagas ended, and none in the last %s: the others are stuck", ended, n, stall)
			}
		}
	}
	return nil
}

// results returns the runs; call it once wait has returned nil.
func (t *Tracker) Results() []SagaRun {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]SagaRun(nil), t.runs...)
}

// WatchSagas reads the saga topic from the given offsets until ctx ends and
// reports every saga that reached COMPLETED or REJECTED to t. It is how a
// measurement sees sagas end without asking the orchestrator.
func WatchSagas(ctx context.Context, kafka config.Kafka, from kadm.ListedOffsets, t *Tracker) error {
	registry := srclient.NewSchemaRegistryClient(kafka.SchemaRegistryURL, srclient.WithClient(&http.Client{Timeout: 10 * time.Second}))
	if kafka.RegistryUser != "" {
		registry.SetCredentials(kafka.RegistryUser, kafka.RegistryPassword)
	}
	sd, err := serde.New(registry, serde.Config{}, &saga.SagaInstance{})
	if err != nil {
		return err
	}
	// An ended saga is written to the saga topic's archive, in the
	// transaction of its last step (the saga topic gets an empty pointer),
	// so the archive alone shows every end as soon as it is committed:
	// reading the saga topic too would fetch and decode every running
	// saga's steps.
	start := map[string]map[int32]kgo.Offset{contracts.TopicCreateOrderSagasEnded: {}}
	from.Each(func(o kadm.ListedOffset) {
		if _, ok := start[o.Topic]; ok {
			start[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Brokers...), kgo.ConsumePartitions(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return fmt.Errorf("connect to kafka %v: %w", kafka.Brokers, err)
	}
	defer cl.Close()

	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("read %s: %w", contracts.TopicCreateOrderSagasEnded, errs[0].Err)
		}
		seen := time.Now()
		var decodeErr error
		fetches.EachRecord(func(r *kgo.Record) {
			if decodeErr != nil {
				return
			}
			rec, err := sd.Decode(r.Value)
			if err != nil {
				decodeErr = fmt.Errorf("decode saga %s: %w", r.Key, err)
				return
			}
			v, ok := rec.(*saga.SagaInstance)
			if !ok {
				decodeErr = fmt.Errorf("saga %s: got %T, want a SagaInstance", r.Key, rec)
				return
			}
			if v.State != saga.StateCompleted && v.State != saga.StateRejected {
				return
			}
			e := SagaEnd{State: v.State, Reason: v.FailureReason, Seen: seen}
			for _, h := range v.History {
				if h.Event == saga.EventTimeout {
					e.Timeouts++
				}
			}
			t.SagaEnded(v.SagaID, e)
		})
		if decodeErr != nil {
			return decodeErr
		}
	}
}

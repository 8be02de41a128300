package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"golang.org/x/sync/errgroup"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
)

const (
	// partitions is the partition count of the bench's topics, as of the
	// system's own.
	partitions = contracts.Partitions
	// recordSize is the value size of the bound's records, about that of
	// a command or reply of the saga.
	recordSize = 100
	// inFlight is the number of writers in the records measurement, and of
	// requests awaiting their reply in the round-trip measurement.
	inFlight = 256
	// headerRequest names the request a bound reply answers.
	headerRequest = "bench_request"
	// boundRounds is how often records/s is measured before the sagas, and
	// again after them; the bound is the median of all rounds, as one
	// round of half a second is at the mercy of a noisy neighbour, and a
	// machine whose speed changes during the run then moves the bound too.
	boundRounds = 3
)

// bound is the ceiling: what the Kafka client the services use achieves
// with nothing but Kafka in the way.
type bound struct {
	recordsPerS    float64   // the median of rounds
	rounds         []float64 // records/s of each round, before and after the sagas, sorted
	roundtripsPerS float64
}

// errSystemRunning: the bound is the ceiling with nothing but Kafka
// running; idle consumers polling beside it would lower it.
var errSystemRunning = errors.New("the bound is measured with the processes stopped")

// measureBound measures both parts of the ceiling on t's Kafka, on topics
// and consumer groups named with the run's suffix, and deletes them
// afterwards.
func measureBound(ctx context.Context, t *target, cfg Config, suffix string, logger *slog.Logger) (bound, error) {
	var b bound
	if err := b.sampleRecords(ctx, t, cfg, "bench."+suffix+".records", logger); err != nil {
		return b, err
	}
	requests, replies, group := "bench."+suffix+".requests", "bench."+suffix+".replies", "bench-"+suffix
	defer deleteScratch(t.kafka, []string{requests, replies}, []string{group + "-responder", group + "-driver"}, logger)
	var err error
	if b.roundtripsPerS, err = measureRoundtrips(ctx, t.kafka, requests, replies, group, cfg.BoundRoundtrips, logger); err != nil {
		return b, fmt.Errorf("measure roundtrips/s: %w", err)
	}
	return b, nil
}

// sampleRecords measures records/s on a topic of its own, which it deletes
// afterwards, and adds its rounds to the bound: before the sagas, and again
// after them.
func (b *bound) sampleRecords(ctx context.Context, t *target, cfg Config, topic string, logger *slog.Logger) error {
	if t.cancelSystem != nil {
		return errSystemRunning
	}
	defer deleteScratch(t.kafka, []string{topic}, nil, logger)
	rounds, err := measureRecords(ctx, t.kafka, topic, cfg.BoundRecords)
	if err != nil {
		return fmt.Errorf("measure records/s: %w", err)
	}
	b.addRounds(rounds)
	return nil
}

// addRounds adds measured rounds of records/s; the bound is their median.
func (b *bound) addRounds(rounds []float64) {
	b.rounds = append(b.rounds, rounds...)
	slices.Sort(b.rounds)
	n := len(b.rounds)
	b.recordsPerS = (b.rounds[(n-1)/2] + b.rounds[n/2]) / 2
}

// measureRecords writes n records of recordSize bytes to a fresh topic from
// inFlight goroutines, as many on each partition, each waiting for Kafka's
// acknowledgement of every record before the next, through one shared
// publisher: the way a process publishes, with as many writes in flight as
// its handlers have at most (a subscriber's 64 a partition), enough to
// saturate the producer (more writers add nothing). It does so boundRounds
// times and returns the records/s of each round.
func measureRecords(ctx context.Context, kafka config.Kafka, topic string, n int) ([]float64, error) {
	if err := messaging.EnsureTopics(kafka, []contracts.TopicSpec{{Name: topic, Partitions: partitions}}); err != nil {
		return nil, err
	}
	pub, err := messaging.NewPublisher(kafka, "bench-producer")
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	keys := partitionKeys()
	payload := make([]byte, recordSize)
	_, _ = rand.Read(payload)
	publish := func(key string) error {
		msg := message.NewMessage(watermill.NewUUID(), payload)
		msg.Metadata.Set(contracts.HeaderPartitionKey, key)
		return pub.Publish(topic, msg)
	}
	// Connections and metadata are not what is measured.
	for _, key := range keys {
		if err := publish(key); err != nil {
			return nil, err
		}
	}

	rounds := make([]float64, boundRounds)
	for r := range rounds {
		var err error
		if rounds[r], err = perSecond(ctx, n, func(ctx context.Context, w int) error {
			return publish(keys[w%partitions])
		}); err != nil {
			return nil, err
		}
	}
	return rounds, nil
}

// measureRoundtrips runs two processes' worth of watermill routers: a
// responder that answers every request on the reply topic, as a participant
// answers a command, and a driver that consumes the replies. inFlight
// clients each send a request and wait for its reply, n in all, each
// client under a key of its own, as each saga is.
func measureRoundtrips(ctx context.Context, kafka config.Kafka, requests, replies, group string, n int, logger *slog.Logger) (float64, error) {
	if err := messaging.EnsureTopics(kafka, []contracts.TopicSpec{{Name: requests, Partitions: partitions}, {Name: replies, Partitions: partitions}}); err != nil {
		return 0, err
	}
	wlog := messaging.Logger(logger)
	responderPub, err := messaging.NewPublisher(kafka, group+"-responder")
	if err != nil {
		return 0, err
	}
	defer responderPub.Close()
	driverPub, err := messaging.NewPublisher(kafka, group+"-driver")
	if err != nil {
		return 0, err
	}
	defer driverPub.Close()
	responderSub, err := messaging.NewSubscriber(kafka, group+"-responder", wlog)
	if err != nil {
		return 0, err
	}
	driverSub, err := messaging.NewSubscriber(kafka, group+"-driver", wlog)
	if err != nil {
		responderSub.Close()
		return 0, err
	}
	handlers, err := messaging.NewHandlers(messaging.HandlersConfig{DeadLetter: responderPub, Subscriber: "messaging.Subscriber"}, logger)
	var router *message.Router
	if err == nil {
		router, err = message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog)
	}
	if err != nil {
		responderSub.Close()
		driverSub.Close()
		return 0, err
	}

	router.AddNoPublisherHandler("responder", requests, responderSub, handlers.Wrap("responder", requests, func(msg *message.Message) error {
		reply := message.NewMessage(watermill.NewUUID(), msg.Payload)
		reply.Metadata.Set(contracts.HeaderPartitionKey, msg.Metadata.Get(contracts.HeaderPartitionKey))
		reply.Metadata.Set(headerRequest, msg.UUID)
		return responderPub.Publish(replies, reply)
	}))
	waiting := newWaiters()
	router.AddNoPublisherHandler("driver", replies, driverSub, handlers.Wrap("driver", replies, func(msg *message.Message) error {
		waiting.done(msg.Metadata.Get(headerRequest))
		return nil
	}))
	runCtx, stop := context.WithCancel(ctx)
	routed := make(chan error, 1)
	go func() { routed <- router.Run(runCtx) }() // closes the subscribers when it returns
	defer func() {
		stop()
		<-routed
	}()
	select {
	case <-router.Running():
	case err := <-routed:
		return 0, fmt.Errorf("router: %w", err)
	}

	keys := partitionKeys()
	payload := make([]byte, recordSize)
	_, _ = rand.Read(payload)
	exchange := func(ctx context.Context, key string, within time.Duration) error {
		msg := message.NewMessage(watermill.NewUUID(), payload)
		msg.Metadata.Set(contracts.HeaderPartitionKey, key)
		replied := waiting.expect(msg.UUID)
		if err := driverPub.Publish(requests, msg); err != nil {
			return err
		}
		select {
		case <-replied:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(within):
			return fmt.Errorf("no reply to request %s within %s", msg.UUID, within)
		}
	}
	// One exchange per partition first: it waits for both consumer groups
	// to form, which is not what is measured.
	for _, key := range keys {
		if err := exchange(ctx, key, time.Minute); err != nil {
			return 0, err
		}
	}

	return perSecond(ctx, n, func(ctx context.Context, c int) error {
		return exchange(ctx, "client-"+strconv.Itoa(c), 30*time.Second)
	})
}

// perSecond runs op n times from inFlight goroutines, op(ctx, w) in
// goroutine w, and returns how many it ran per second.
func perSecond(ctx context.Context, n int, op func(ctx context.Context, w int) error) (float64, error) {
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	start := time.Now()
	for w := range inFlight {
		g.Go(func() error {
			for next.Add(1) <= int64(n) {
				if err := ctx.Err(); err != nil {
					return err // another goroutine failed
				}
				if err := op(ctx, w); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// waiters hands each reply to the client waiting for it.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func newWaiters() *waiters { return &waiters{m: map[string]chan struct{}{}} }

func (w *waiters) expect(id string) <-chan struct{} {
	ch := make(chan struct{})
	w.mu.Lock()
	w.m[id] = ch
	w.mu.Unlock()
	return ch
}

// done releases the client waiting for id; a redelivered reply finds none.
func (w *waiters) done(id string) {
	w.mu.Lock()
	ch, ok := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ok {
		close(ch)
	}
}

// partitionKeys returns one key per partition, key i landing on partition i
// with the producer's partitioner, so each client writes to a partition of
// its own.
func partitionKeys() []string {
	keys := make([]string, partitions)
	for i, found := 0, int32(0); found < partitions; i++ {
		key := "key-" + strconv.Itoa(i)
		p := store.PartitionOf(key, partitions)
		if keys[p] == "" {
			keys[p] = key
			found++
		}
	}
	return keys
}

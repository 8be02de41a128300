package messaging

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kafkasaga/kafkasaga/platform/config"
)

// MaxInFlight bounds the messages of one partition that a Subscriber has
// handed out and that are not acknowledged yet.
const MaxInFlight = 64

const (
	nackResendSleep = 100 * time.Millisecond // before a nacked message is handed out again
	reconnectSleep  = time.Second            // before a failed consumer group is made anew
)

// Subscriber is a watermill subscriber on a Kafka consumer group of its
// own, with Sarama, for a reader outside a process's transactions (the
// bench's, tests'). It keeps Kafka's order per key, not per partition: the
// messages of one partition are handed out as they arrive, up to
// MaxInFlight at a time, and a message waits only for the earlier messages
// of its own key. A partition's offset is committed up to its first
// message not yet acknowledged, so a crash redelivers what was in flight. A
// nacked message is handed out again after a pause, and keeps the later
// messages of its key waiting. It puts where each message came from in
// the message's context (RecordFromCtx).
type Subscriber struct {
	brokers []string
	group   string
	sarama  *sarama.Config
	logger  watermill.LoggerAdapter

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewSubscriber returns a subscriber in the consumer group group. Each
// Subscribe call joins the group for its topic alone, and offsets are
// committed by Sarama.
func NewSubscriber(cfg config.Kafka, group string, logger watermill.LoggerAdapter) (*Subscriber, error) {
	sc, err := SaramaConfig(cfg, group)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Subscriber{brokers: cfg.Brokers, group: group, sarama: sc, logger: logger, ctx: ctx, cancel: cancel}, nil
}

// Subscribe implements message.Subscriber. The channel closes when ctx ends
// or the subscriber is closed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if s.ctx.Err() != nil {
		return nil, errors.New("subscriber closed")
	}
	group, err := sarama.NewConsumerGroup(s.brokers, s.group, s.sarama)
	if err != nil {
		return nil, fmt.Errorf("create consumer group %s: %w", s.group, err)
	}
	out := make(chan *message.Message)
	ctx, stop := context.WithCancel(ctx)
	unlink := context.AfterFunc(s.ctx, stop)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer unlink()
		defer stop()
		s.consume(ctx, group, topic, out)
	}()
	return out, nil
}

// consume runs the group's sessions until ctx ends, reconnecting after an
// error with a new consumer group client.
func (s *Subscriber) consume(ctx context.Context, group sarama.ConsumerGroup, topic string, out chan<- *message.Message) {
	fields := watermill.LogFields{"topic": topic, "consumer_group": s.group}
	handler := claimHandler{out: out}
	for group != nil {
		go func() {
			for err := range group.Errors() {
				s.logger.Error("Kafka consumer error", err, fields)
			}
		}()
		var err error
		for err == nil && ctx.Err() == nil {
			err = group.Consume(ctx, []string{topic}, handler) // returns at every rebalance
		}
		if cerr := group.Close(); cerr != nil {
			s.logger.Error("Closing the consumer group failed", cerr, fields)
		}
		if ctx.Err() != nil {
			return
		}
		s.logger.Error("Consuming failed, reconnecting", err, fields)
		group = s.reconnect(ctx, fields)
	}
}

// reconnect makes a new consumer group client, pausing before each try;
// nil once ctx ends.
func (s *Subscriber) reconnect(ctx context.Context, fields watermill.LogFields) sarama.ConsumerGroup {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(reconnectSleep):
		}
		group, err := sarama.NewConsumerGroup(s.brokers, s.group, s.sarama)
		if err == nil {
			return group
		}
		s.logger.Error("Reconnecting failed", err, fields)
	}
}

// Close stops every subscription and waits for them to end.
func (s *Subscriber) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// claimHandler hands out the messages of the partitions a session claims.
type claimHandler struct{ out chan<- *message.Message }

func (claimHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (claimHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// claimed is a message of a claim handed out and not yet through.
type claimed struct {
	record  *sarama.ConsumerMessage
	through chan struct{} // closed when it is done with, acked or not
	acked   bool          // set before through is closed
}

// ConsumeClaim hands out the claim's messages in one goroutine each, a
// message once the one before it of the same key is through, and marks the
// partition's offset past every message acked in a row from the oldest.
func (h claimHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	ctx := sess.Context()
	var (
		pending  []*claimed                         // not yet marked, in offset order
		last     = map[string]*claimed{}            // the latest message of each key in flight
		running  int                                // goroutines not yet finished
		finished = make(chan *claimed, MaxInFlight) // a slot each, so a sender never blocks
	)
	defer func() { // no goroutine outlives its claim
		for ; running > 0; running-- {
			<-finished
		}
	}()
	for {
		in := claim.Messages()
		if len(pending) >= MaxInFlight {
			in = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case record, ok := <-in:
			if !ok {
				return nil
			}
			m := &claimed{record: record, through: make(chan struct{})}
			var after <-chan struct{}
			if prev, ok := last[string(record.Key)]; ok {
				after = prev.through
			}
			last[string(record.Key)] = m
			pending = append(pending, m)
			running++
			go func() {
				msg, _ := kafka.DefaultMarshaler{}.Unmarshal(m.record) // never fails: headers become metadata
				rec := Record{Topic: record.Topic, Partition: record.Partition, Offset: record.Offset, Key: record.Key, Timestamp: record.Timestamp}
				m.acked = deliver(ctx, h.out, msg, WithRecord(ctx, rec), after)
				close(m.through)
				finished <- m
			}()
		case m := <-finished:
			running--
			if !m.acked {
				return nil // the session ended
			}
			if last[string(m.record.Key)] == m {
				delete(last, string(m.record.Key))
			}
			next := int64(-1)
			for len(pending) > 0 && isClosed(pending[0].through) && pending[0].acked {
				next, pending = pending[0].record.Offset+1, pending[1:]
			}
			if next >= 0 {
				sess.MarkOffset(claim.Topic(), claim.Partition(), next, "")
			}
		}
	}
}

// deliver hands msg out once after is closed, again after every nack,
// until it is acked (true) or ctx ends. Once ctx ended it hands out
// nothing: after also closes when the message before ends unacked with
// the session, and this one must not overtake it.
func deliver(ctx context.Context, out chan<- *message.Message, msg *message.Message, msgCtx context.Context, after <-chan struct{}) bool {
	if after != nil {
		select {
		case <-after:
		case <-ctx.Done():
			return false
		}
	}
	msgCtx, cancel := context.WithCancel(msgCtx)
	defer cancel() // a message's context ends when it is through, as watermill expects
	for {
		if ctx.Err() != nil { // the select below could pick either
			return false
		}
		msg.SetContext(msgCtx)
		select {
		case out <- msg:
		case <-ctx.Done():
			return false
		}
		select {
		case <-msg.Acked():
			return true
		case <-msg.Nacked():
		case <-ctx.Done():
			return false
		}
		select {
		case <-time.After(nackResendSleep):
		case <-ctx.Done():
			return false
		}
		msg = msg.Copy() // a message is acked or nacked once
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

type recordKey struct{}

// Record is where a consumed message was read: a Subscriber and a Session
// put it in the message's context.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Timestamp time.Time
}

// RecordFromCtx returns the record a consumed message was read from.
func RecordFromCtx(ctx context.Context) (Record, bool) {
	r, ok := ctx.Value(recordKey{}).(Record)
	return r, ok
}

// WrittenBefore reports whether the record a message was read from (ctx
// is its context, or one made from it) was written longer ago than age,
// and when it was written. A record written with no time (franz-go reads
// it as 1969) has no known age, nor has a message that was not read from
// a record: neither is old.
func WrittenBefore(ctx context.Context, age time.Duration) (written time.Time, old bool) {
	r, ok := RecordFromCtx(ctx)
	if !ok || r.Timestamp.UnixMilli() <= 0 {
		return time.Time{}, false
	}
	return r.Timestamp, time.Since(r.Timestamp) > age
}

// WithRecord returns ctx carrying r, as the context of a message read from
// r: a Subscriber and a Session set it.
func WithRecord(ctx context.Context, r Record) context.Context {
	return context.WithValue(ctx, recordKey{}, r)
}

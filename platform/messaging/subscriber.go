package messaging

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
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

// Subscriber is a watermill subscriber on a Kafka consumer group that keeps
// Kafka's order per key, not per partition: the messages of one partition
// are handed out as they arrive, up to MaxInFlight at a time, and a message
// waits only for the earlier messages of its own key. A handler waiting for
// a write then no longer holds up the rest of its partition, and the
// replies of many handlers travel in one produce request.
//
// A partition's offset is committed up to its first message not yet
// acknowledged, so a crash redelivers what was in flight (at least once, as
// with one message at a time). A nacked message is handed out again after
// a pause, and keeps the later messages of its key waiting.
//
// watermill-kafka's own subscriber hands out one message per partition and
// waits for its ack; this one differs there. It reads records with
// watermill-kafka's marshaler, and puts where each came from in the
// message's context (RecordFromCtx).
type Subscriber struct {
	brokers []string
	group   string
	sarama  *sarama.Config
	logger  watermill.LoggerAdapter
	tracker Tracker

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	topics  map[string]chan *message.Message // of a shared group, by topic; nil if none
	waiting int                              // topics of the shared group not subscribed yet
	rejoin  context.CancelFunc               // ends the shared group's current session
}

// Tracker follows the sessions of a consumer group that reads several
// topics as one: which partitions a session claims, and how far each is
// handled. A process implements it to own state by partition and to commit
// the offsets in its transactions.
type Tracker interface {
	// Setup runs when a session starts, once its claims are known and
	// before any message is handed out.
	Setup(sess sarama.ConsumerGroupSession) error
	// Claimed runs when a claim starts, with the offset it starts from (a
	// committed offset, or sarama.OffsetOldest).
	Claimed(topic string, partition int32, initial int64)
	// Mark records that every message of the partition before next is
	// handled.
	Mark(topic string, partition int32, next int64)
	// Cleanup runs when the session ends, once no claim hands out
	// messages.
	Cleanup(sess sarama.ConsumerGroupSession) error
}

// NewSubscriber returns a subscriber in the consumer group group. Each
// Subscribe call joins the group for its topic alone, and offsets are
// committed by Sarama.
func NewSubscriber(cfg config.Kafka, group string, logger watermill.LoggerAdapter) (*Subscriber, error) {
	sc, err := SaramaConfig(cfg, group)
	if err != nil {
		return nil, err
	}
	sc.Consumer.Offsets.AutoCommit.Enable = true
	return newSubscriber(cfg.Brokers, group, sc, logger), nil
}

// NewGroupSubscriber returns a subscriber that reads the topics added with
// AddTopic as one consumer group, so a member is assigned the same
// partitions of each (they must have one partition count). It joins once
// each topic has been subscribed, and tells tracker of its sessions, claims
// and handled messages instead of committing offsets itself.
func NewGroupSubscriber(sc *sarama.Config, brokers []string, group string, tracker Tracker, logger watermill.LoggerAdapter) *Subscriber {
	s := newSubscriber(brokers, group, sc, logger)
	s.tracker = tracker
	s.topics = map[string]chan *message.Message{}
	return s
}

// AddTopic adds a topic to the shared group; call it before Subscribe.
func (s *Subscriber) AddTopic(topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.topics[topic]; !ok {
		s.topics[topic] = nil
		s.waiting++
	}
}

func newSubscriber(brokers []string, group string, sc *sarama.Config, logger watermill.LoggerAdapter) *Subscriber {
	ctx, cancel := context.WithCancel(context.Background())
	return &Subscriber{brokers: brokers, group: group, sarama: sc, logger: logger, ctx: ctx, cancel: cancel}
}

// Subscribe implements message.Subscriber. The channel closes when ctx ends
// or the subscriber is closed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if s.ctx.Err() != nil {
		return nil, errors.New("subscriber closed")
	}
	if s.topics == nil {
		out := make(chan *message.Message)
		return out, s.start(ctx, []string{topic}, map[string]chan<- *message.Message{topic: out})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.topics[topic]
	if !ok {
		return nil, fmt.Errorf("consumer group %s does not read %s", s.group, topic)
	}
	if ch != nil {
		return nil, fmt.Errorf("consumer group %s: %s subscribed twice", s.group, topic)
	}
	ch = make(chan *message.Message)
	s.topics[topic] = ch
	if s.waiting--; s.waiting > 0 {
		return ch, nil
	}
	outs := map[string]chan<- *message.Message{}
	var topics []string
	for t, c := range s.topics {
		outs[t] = c
		topics = append(topics, t)
	}
	return ch, s.start(ctx, topics, outs)
}

// start joins the group for topics and hands their messages to outs until
// ctx ends or the subscriber is closed.
func (s *Subscriber) start(ctx context.Context, topics []string, outs map[string]chan<- *message.Message) error {
	group, err := sarama.NewConsumerGroup(s.brokers, s.group, s.sarama)
	if err != nil {
		return fmt.Errorf("create consumer group %s: %w", s.group, err)
	}
	ctx, stop := context.WithCancel(ctx)
	unlink := context.AfterFunc(s.ctx, stop)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			for _, out := range outs {
				close(out)
			}
		}()
		defer unlink()
		defer stop()
		s.consume(ctx, group, topics, outs)
	}()
	return nil
}

// Rejoin ends the current session of the shared group: its claims stop,
// the tracker's Cleanup runs, and the group is joined again (a new
// session, a new Setup).
func (s *Subscriber) Rejoin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rejoin != nil {
		s.rejoin()
	}
}

// consume runs the group's sessions until ctx ends, reconnecting after an
// error with a new consumer group client.
func (s *Subscriber) consume(ctx context.Context, group sarama.ConsumerGroup, topics []string, outs map[string]chan<- *message.Message) {
	fields := watermill.LogFields{"topics": topics, "consumer_group": s.group}
	handler := claimHandler{outs: outs, tracker: s.tracker}
	for group != nil {
		go func() {
			for err := range group.Errors() {
				s.logger.Error("Kafka consumer error", err, fields)
			}
		}()
		var err error
		for err == nil && ctx.Err() == nil {
			sessCtx, end := context.WithCancel(ctx)
			s.mu.Lock()
			s.rejoin = end
			s.mu.Unlock()
			err = group.Consume(sessCtx, topics, handler) // returns at every rebalance
			end()
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
type claimHandler struct {
	outs    map[string]chan<- *message.Message
	tracker Tracker // nil: offsets are marked in the session
}

func (h claimHandler) Setup(sess sarama.ConsumerGroupSession) error {
	if h.tracker == nil {
		return nil
	}
	return h.tracker.Setup(sess)
}

func (h claimHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	if h.tracker == nil {
		return nil
	}
	return h.tracker.Cleanup(sess)
}

func (h claimHandler) mark(sess sarama.ConsumerGroupSession, topic string, partition int32, next int64) {
	if h.tracker == nil {
		sess.MarkOffset(topic, partition, next, "")
		return
	}
	h.tracker.Mark(topic, partition, next)
}

// inFlight is a message handed out and not yet through.
type inFlight struct {
	record  *sarama.ConsumerMessage
	through chan struct{} // closed when it is done with, acked or not
	acked   bool          // set before through is closed
	err     error         // it could not be read as a watermill message
}

// ConsumeClaim hands out the claim's messages in one goroutine each, a
// message once the one before it of the same key is through, and marks the
// partition's offset past every message acked in a row from the oldest.
func (h claimHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	ctx := sess.Context()
	if h.tracker != nil {
		h.tracker.Claimed(claim.Topic(), claim.Partition(), claim.InitialOffset())
	}
	out := h.outs[claim.Topic()]
	var (
		pending  []*inFlight                         // not yet marked, in offset order
		last     = map[string]*inFlight{}            // the latest message of each key in flight
		running  int                                 // goroutines not yet finished
		finished = make(chan *inFlight, MaxInFlight) // a slot each, so a sender never blocks
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
			m := &inFlight{record: record, through: make(chan struct{})}
			var after <-chan struct{}
			if prev, ok := last[string(record.Key)]; ok {
				after = prev.through
			}
			last[string(record.Key)] = m
			pending = append(pending, m)
			running++
			go func() {
				deliver(ctx, out, m, after)
				close(m.through)
				finished <- m
			}()
		case m := <-finished:
			running--
			if m.err != nil {
				return m.err // the claim stops, as watermill-kafka's does, until the next rebalance
			}
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
				h.mark(sess, claim.Topic(), claim.Partition(), next)
			}
		}
	}
}

// deliver hands m out once after is closed, again after every nack, until
// it is acked or ctx ends.
func deliver(ctx context.Context, out chan<- *message.Message, m *inFlight, after <-chan struct{}) {
	if after != nil {
		select {
		case <-after:
		case <-ctx.Done():
			return
		}
	}
	msg, err := marshaler.Unmarshal(m.record)
	if err != nil {
		m.err = fmt.Errorf("read message at %s/%d/%d: %w", m.record.Topic, m.record.Partition, m.record.Offset, err)
		return
	}
	msgCtx, cancel := context.WithCancel(withRecord(ctx, m.record))
	defer cancel() // a message's context ends when it is through, as watermill expects
	for {
		msg.SetContext(msgCtx)
		select {
		case out <- msg:
		case <-ctx.Done():
			return
		}
		select {
		case <-msg.Acked():
			m.acked = true
			return
		case <-msg.Nacked():
		case <-ctx.Done():
			return
		}
		select {
		case <-time.After(nackResendSleep):
		case <-ctx.Done():
			return
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

// Record is where a consumed message was read: a Subscriber puts it in the
// message's context.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
}

// RecordFromCtx returns the record a consumed message was read from.
func RecordFromCtx(ctx context.Context) (Record, bool) {
	r, ok := ctx.Value(recordKey{}).(Record)
	return r, ok
}

func withRecord(ctx context.Context, m *sarama.ConsumerMessage) context.Context {
	return context.WithValue(ctx, recordKey{}, Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key})
}

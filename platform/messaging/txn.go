package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// ErrRebalancing is the error of a write made while the process's consumer
// group is between two generations, or before it joined: no write may land
// until the process knows which partitions it owns. Retry it.
var ErrRebalancing = errors.New("consumer group rebalancing: writes wait for the next generation")

// ErrFenced is the error of a write whose transaction Kafka refused to
// commit: this instance lost its partitions (its generation is over, or a
// newer instance with its transactional id started). Nothing it wrote in
// that transaction is ever seen by a read_committed consumer.
var ErrFenced = errors.New("transaction aborted: this instance no longer owns its partitions")

// TxnProducer is the one producer of a process: every record the process
// writes (state, commands, replies, events) goes through it, in Kafka
// transactions that also commit the consumer group's offsets with the
// group's generation (KIP-447). An instance that lost its partitions without
// knowing it (a long pause, a network partition) cannot commit afterwards:
// the broker refuses the offsets of an old generation, the transaction is
// aborted, and no read_committed consumer sees its records.
//
// Writers do not each commit: SendMessages adds the records to the open
// transaction and waits until a commit covers them (group commit). One
// goroutine, Run, commits as soon as there is something to commit, so
// under load a commit carries the records of many writers.
type TxnProducer struct {
	client   sarama.Client
	producer sarama.SyncProducer // replaced after a fatal error (renew)
	logger   *slog.Logger
	kick     chan struct{}

	mu     sync.RWMutex // writers share it while they produce; a commit holds it alone
	open   *sarama.ConsumerGroupMetadata
	cur    *txn
	dirty  atomic.Bool // records or offsets not committed yet
	broken atomic.Bool // a produce failed: the transaction must be aborted

	posMu   sync.Mutex                 // positions change under mu's read side
	offsets map[string]map[int32]int64 // next offset to consume, by topic and partition
}

// txn is one transaction: done closes once it is committed or aborted.
type txn struct {
	done chan struct{}
	err  error
}

// NewTxnProducer returns a transactional producer; its config must carry
// a Producer.Transaction.ID unique to this instance (and stable across its
// restarts, so a restart aborts what its predecessor left open).
func NewTxnProducer(client sarama.Client, logger *slog.Logger) (*TxnProducer, error) {
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("create transactional producer: %w", err)
	}
	return &TxnProducer{client: client, producer: producer, logger: logger, kick: make(chan struct{}, 1),
		offsets: map[string]map[int32]int64{}}, nil
}

// Send adds msgs to the open transaction. Written on behalf of a consumed
// message (ctx is its handler's, RecordFromCtx), it returns once they are
// in the transaction: the message's offset, marked once its handler is
// done, is committed in the same transaction or a later one, so the
// records and the offset become visible together, and an abort takes both
// back. Otherwise (an HTTP request, a timer) it returns once the
// transaction is committed: then they are durable and visible.
func (t *TxnProducer) Send(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	_, handling := RecordFromCtx(ctx)
	return t.send(msgs, !handling)
}

// SendMessages adds msgs to the open transaction and returns once it is
// committed.
func (t *TxnProducer) SendMessages(msgs []*sarama.ProducerMessage) error {
	return t.send(msgs, true)
}

func (t *TxnProducer) send(msgs []*sarama.ProducerMessage, awaitCommit bool) error {
	t.mu.RLock()
	if t.open == nil {
		t.mu.RUnlock()
		return ErrRebalancing
	}
	tx := t.cur
	err := t.producer.SendMessages(msgs)
	if err == nil {
		t.dirty.Store(true)
	} else if t.producer.TxnStatus()&sarama.ProducerTxnFlagInError != 0 {
		t.broken.Store(true) // the transaction cannot commit: Run aborts it
	}
	t.mu.RUnlock()
	if err != nil {
		t.wake()
		return fmt.Errorf("produce in transaction: %w", err)
	}
	t.wake()
	if !awaitCommit {
		return nil
	}
	<-tx.done
	return tx.err
}

// SendMessage sends one message; see SendMessages.
func (t *TxnProducer) SendMessage(msg *sarama.ProducerMessage) (int32, int64, error) {
	return 0, 0, t.SendMessages([]*sarama.ProducerMessage{msg})
}

// Open starts the writes of a consumer group generation: from now on each
// commit carries this generation's offsets. A process that reads no topic
// opens with a nil group: its commits carry no offsets, and nothing fences
// it.
func (t *TxnProducer) Open(group *sarama.ConsumerGroupMetadata) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.begin(); err != nil {
		return err
	}
	if group == nil {
		group = &sarama.ConsumerGroupMetadata{}
	}
	t.open = group
	t.posMu.Lock()
	clear(t.offsets)
	t.posMu.Unlock()
	return nil
}

// Position records where consumption of a partition stands: the next
// offset to consume, committed with the next transaction. Every owned
// partition has one from the start of its claim, so every commit, even of
// writes no message led to (an HTTP request, a timer), carries offsets and
// is fenced by the generation.
func (t *TxnProducer) Position(topic string, partition int32, next int64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	t.posMu.Lock()
	defer t.posMu.Unlock()
	if t.offsets[topic] == nil {
		t.offsets[topic] = map[int32]int64{}
	}
	if old, ok := t.offsets[topic][partition]; !ok || old != next {
		t.offsets[topic][partition] = next
		t.dirty.Store(true)
		t.wake()
	}
}

// Close ends a generation: it commits what is pending, and then refuses
// writes until the next Open. An error means the last transaction was
// aborted: what the process holds in memory of it is not in Kafka.
func (t *TxnProducer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open == nil {
		return nil
	}
	err := t.commit()
	t.open = nil
	return err
}

// Run commits the open transaction whenever it holds records or new
// offsets, until ctx ends. onAbort is called after a commit failed and its
// transaction was aborted, so the process can throw away what it derived
// from the aborted records.
func (t *TxnProducer) Run(ctx context.Context, onAbort func(error)) error {
	defer t.stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.kick:
		}
		// At most one commit per commitInterval: under load a commit then
		// carries more writes, and writes fewer transaction markers (one a
		// partition it wrote to).
		if wait := commitInterval - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		last = time.Now()
		t.mu.Lock()
		var err error
		switch {
		case t.broken.Load():
			err = t.abort(errors.New("a produce of the transaction failed"))
		case t.open != nil && t.dirty.Load():
			err = t.commit()
		}
		if err != nil {
			// What was written and marked since the aborted commit began
			// must not be committed later: nothing is, until the next Open.
			t.open = nil
		}
		t.mu.Unlock()
		if err != nil && onAbort != nil {
			onAbort(err)
		}
	}
}

// stop fails the writers waiting for a commit that will not come, and
// refuses writes from now on.
func (t *TxnProducer) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open = nil
	if t.cur != nil && !isClosed(t.cur.done) {
		t.cur.err = errors.New("transactional producer stopped")
		close(t.cur.done)
	}
}

// commit commits the current transaction with the positions of every owned
// partition and begins the next; on failure it aborts it. Called with mu
// held.
func (t *TxnProducer) commit() error {
	tx := t.cur
	var err error
	if t.dirty.Swap(false) {
		err = t.commitOrAbort()
	}
	tx.err = err
	close(tx.done)
	if berr := t.begin(); berr != nil && err == nil {
		err = berr
	}
	return err
}

func (t *TxnProducer) commitOrAbort() error {
	offsets := map[string][]*sarama.PartitionOffsetMetadata{}
	for topic, parts := range t.offsets {
		for p, next := range parts {
			offsets[topic] = append(offsets[topic], &sarama.PartitionOffsetMetadata{Partition: p, Offset: next})
		}
	}
	var err error
	if len(offsets) > 0 {
		err = t.producer.AddOffsetsToTxnWithGroupMetadata(offsets, t.open)
	}
	if err == nil {
		err = t.producer.CommitTxn()
	}
	if err == nil {
		return nil
	}
	t.logger.Warn("transaction aborted", "error", err)
	t.recover()
	return fmt.Errorf("%w: %w", ErrFenced, err)
}

// abort aborts the current transaction after a failed produce: its
// writers get err, and so does the caller.
func (t *TxnProducer) abort(cause error) error {
	t.logger.Warn("transaction aborted", "error", cause)
	t.recover()
	t.dirty.Store(false)
	err := fmt.Errorf("%w: %w", ErrFenced, cause)
	if !isClosed(t.cur.done) {
		t.cur.err = err
		close(t.cur.done)
	}
	if berr := t.begin(); berr != nil {
		t.logger.Error("begin transaction", "error", berr)
	}
	return err
}

// recover makes the producer usable after a failed transaction: it aborts
// an abortable one, and replaces a producer in a fatal state (fenced, as
// when the broker timed its transaction out) with a new one of the same
// transactional id. Called with mu held.
func (t *TxnProducer) recover() {
	t.broken.Store(false)
	status := t.producer.TxnStatus()
	if status&sarama.ProducerTxnFlagFatalError != 0 {
		_ = t.producer.Close()
		producer, err := sarama.NewSyncProducerFromClient(t.client)
		if err != nil {
			t.logger.Error("renew the transactional producer", "error", err)
			t.broken.Store(true) // tried again at the next wake
			return
		}
		t.producer = producer
		return
	}
	if status&sarama.ProducerTxnFlagInError != 0 {
		if err := t.producer.AbortTxn(); err != nil {
			t.logger.Error("abort transaction", "error", err)
		}
	}
}

// begin opens the next transaction unless one is open.
func (t *TxnProducer) begin() error {
	if t.cur == nil || isClosed(t.cur.done) {
		t.cur = &txn{done: make(chan struct{})}
	}
	if t.producer.TxnStatus()&sarama.ProducerTxnFlagInTransaction != 0 {
		return nil
	}
	if err := t.producer.BeginTxn(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	return nil
}

func (t *TxnProducer) wake() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// CloseProducer closes the Kafka producer; pending writers get an error.
func (t *TxnProducer) CloseProducer() error {
	t.stop()
	return t.producer.Close()
}

// commitInterval is the least time between the starts of two commits.
const commitInterval = 5 * time.Millisecond

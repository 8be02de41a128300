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

// ErrCommitPending is the error of a write that waited AwaitCommit for its
// transaction to commit: it may still commit, or abort. An HTTP request
// answers 503 rather than hang; the client's retry must find the write
// idempotent, as the API's writes by id are.
var ErrCommitPending = errors.New("transaction not committed in time: it may still be")

// AwaitCommit is how long a write made outside a handler (an HTTP request,
// a timer) waits for its transaction to commit.
const AwaitCommit = 5 * time.Second

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
// Writers do not each commit, nor wait for their records to be
// acknowledged, nor for a commit in progress: Send hands the records to the
// open transaction, or, while the one before it commits, queues them for
// the next. One goroutine, Run, commits as soon as there is something to
// commit, so under load a commit carries the records of many writers
// (group commit). The commit waits for every record of its transaction; a
// record Kafka refused fails it, which aborts the transaction.
type TxnProducer struct {
	client  sarama.Client
	logger  *slog.Logger
	kick    chan struct{}
	broken  atomic.Bool // a produce failed: the transaction must be aborted
	waiting sync.Map    // *sarama.ProducerMessage -> chan error, for SendAcked

	duringCommit func()        // tests' hook
	awaitCommit  time.Duration // AwaitCommit; shorter in tests

	commitMu sync.Mutex // held through a commit, an abort, Open and Close

	mu         sync.Mutex
	producer   sarama.AsyncProducer // replaced after a fatal error (renew)
	open       *sarama.ConsumerGroupMetadata
	cur        *txn                       // the transaction new records belong to
	committing bool                       // the transaction before cur is committing
	closing    bool                       // the generation's last commit: writes are refused
	queue      []*sarama.ProducerMessage  // cur's records, held until it begins
	dirty      bool                       // records or offsets not committed yet
	offsets    map[string]map[int32]int64 // next offset to consume, by topic and partition
}

// txn is one transaction: done closes once it is committed or aborted.
type txn struct {
	done chan struct{}
	err  error
}

func newTxn() *txn { return &txn{done: make(chan struct{})} }

// end reports the transaction's outcome to its writers, once.
func (x *txn) end(err error) {
	if !isClosed(x.done) {
		x.err = err
		close(x.done)
	}
}

// NewTxnProducer returns a transactional producer; its config must carry
// a Producer.Transaction.ID unique to this instance (and stable across its
// restarts, so a restart aborts what its predecessor left open).
func NewTxnProducer(client sarama.Client, logger *slog.Logger) (*TxnProducer, error) {
	t := &TxnProducer{client: client, logger: logger, kick: make(chan struct{}, 1),
		cur: newTxn(), offsets: map[string]map[int32]int64{}, awaitCommit: AwaitCommit}
	if err := t.renew(); err != nil {
		return nil, err
	}
	return t, nil
}

// renew starts a producer of the transactional id, and drains what it
// returns: successes need nothing more (the commit waits for them), a
// failure marks the transaction broken, so Run aborts it.
func (t *TxnProducer) renew() error {
	producer, err := sarama.NewAsyncProducerFromClient(t.client)
	if err != nil {
		return fmt.Errorf("create transactional producer: %w", err)
	}
	go func() {
		for m := range producer.Successes() {
			t.acked(m, nil)
		}
	}()
	go func() {
		for perr := range producer.Errors() {
			t.logger.Warn("produce in transaction", "topic", perr.Msg.Topic, "error", perr.Err)
			t.broken.Store(true)
			t.wake()
			t.acked(perr.Msg, perr.Err)
		}
	}()
	t.mu.Lock()
	t.producer = producer
	t.mu.Unlock()
	return nil
}

// Send adds msgs to the open transaction. Written on behalf of a consumed
// message (ctx is its handler's, RecordFromCtx), it returns at once: the
// message's offset, marked once its handler is done, is committed in the
// same transaction or a later one, so the records and the offset become
// visible together, and an abort takes both back. Otherwise (an HTTP
// request, a timer) it returns once the transaction is committed: then
// they are durable and visible.
func (t *TxnProducer) Send(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	_, handling := RecordFromCtx(ctx)
	return t.send(ctx, msgs, !handling)
}

// SendAcked adds msgs to the open transaction and returns once Kafka has
// acknowledged each of them (their Offset is set), before their commit:
// a writer that must know where a record landed (store's Archive).
func (t *TxnProducer) SendAcked(_ context.Context, msgs []*sarama.ProducerMessage) error {
	waits := make([]chan error, len(msgs))
	for i, m := range msgs {
		waits[i] = make(chan error, 1)
		t.waiting.Store(m, waits[i])
	}
	tx, err := t.add(msgs)
	for _, w := range waits {
		if err != nil {
			break
		}
		select {
		case err = <-w:
		case <-tx.done: // aborted before it was sent, or committed, so acknowledged
			if err = tx.err; err == nil {
				err = <-w
			}
		}
	}
	for _, m := range msgs {
		t.waiting.Delete(m)
	}
	return err
}

// acked reports a record's acknowledgement to its SendAcked.
func (t *TxnProducer) acked(m *sarama.ProducerMessage, err error) {
	if w, ok := t.waiting.LoadAndDelete(m); ok {
		w.(chan error) <- err
	}
}

// SendMessages adds msgs to the open transaction and returns once it is
// committed.
func (t *TxnProducer) SendMessages(msgs []*sarama.ProducerMessage) error {
	return t.send(context.Background(), msgs, true)
}

// send adds msgs to the open transaction and, if awaitCommit, waits for
// its commit: until ctx ends or for awaitCommit at most (ErrCommitPending).
func (t *TxnProducer) send(ctx context.Context, msgs []*sarama.ProducerMessage, awaitCommit bool) error {
	tx, err := t.add(msgs)
	if err != nil || !awaitCommit {
		return err
	}
	limit := time.NewTimer(t.awaitCommit)
	defer limit.Stop()
	select {
	case <-tx.done:
		return tx.err
	case <-ctx.Done():
		return ctx.Err()
	case <-limit.C:
		return fmt.Errorf("%w (waited %s)", ErrCommitPending, t.awaitCommit)
	}
}

// add hands msgs to the open transaction, or queues them for the next, and
// returns the transaction they belong to.
func (t *TxnProducer) add(msgs []*sarama.ProducerMessage) (*txn, error) {
	t.mu.Lock()
	if t.open == nil || t.closing {
		t.mu.Unlock()
		return nil, ErrRebalancing
	}
	tx := t.cur
	if t.committing {
		t.queue = append(t.queue, msgs...)
	} else {
		for _, m := range msgs {
			t.producer.Input() <- m
		}
	}
	t.dirty = true
	t.mu.Unlock()
	t.wake()
	return tx, nil
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
	t.commitMu.Lock()
	defer t.commitMu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.begin(); err != nil {
		return err
	}
	if group == nil {
		group = &sarama.ConsumerGroupMetadata{}
	}
	t.open = group
	clear(t.offsets)
	return nil
}

// Position records where consumption of a partition stands: the next
// offset to consume, committed with the next transaction. Every owned
// partition has one from the start of its claim, so every commit, even of
// writes no message led to (an HTTP request, a timer), carries offsets and
// is fenced by the generation.
func (t *TxnProducer) Position(topic string, partition int32, next int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.offsets[topic] == nil {
		t.offsets[topic] = map[int32]int64{}
	}
	if old, ok := t.offsets[topic][partition]; !ok || old != next {
		t.offsets[topic][partition] = next
		t.dirty = true
		t.wake()
	}
}

// Close ends a generation: it commits what is pending, and then refuses
// writes until the next Open. An error means the last transaction was
// aborted: what the process holds in memory of it is not in Kafka.
func (t *TxnProducer) Close() error {
	t.commitMu.Lock()
	defer t.commitMu.Unlock()
	t.mu.Lock()
	t.closing = true // a write now would be carried into the next generation's first commit
	t.mu.Unlock()
	err := t.commit()
	t.mu.Lock()
	t.open, t.closing = nil, false
	t.mu.Unlock()
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
		t.commitMu.Lock()
		err := t.commit()
		t.commitMu.Unlock()
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
	t.queue = nil
	t.cur.end(errors.New("transactional producer stopped"))
}

// commit commits the current transaction, if it holds anything, with the
// positions of every owned partition, and begins the next; writes made
// meanwhile wait in the queue for it. A failed commit, or a failed produce
// (broken), aborts the transaction; then what was written since it began
// is failed too, and nothing is written until the next Open. Called with
// commitMu held.
func (t *TxnProducer) commit() error {
	broken := t.broken.Load()
	t.mu.Lock()
	if t.open == nil || !t.dirty && !broken {
		t.mu.Unlock()
		return nil
	}
	tx, group := t.cur, t.open
	offsets := map[string][]*sarama.PartitionOffsetMetadata{}
	for topic, parts := range t.offsets {
		for p, next := range parts {
			offsets[topic] = append(offsets[topic], &sarama.PartitionOffsetMetadata{Partition: p, Offset: next})
		}
	}
	t.cur, t.committing, t.dirty = newTxn(), true, false
	producer := t.producer
	t.mu.Unlock()
	if t.duringCommit != nil {
		t.duringCommit()
	}

	var err error
	if broken {
		err = errors.New("a produce of the transaction failed")
	}
	if err == nil && len(offsets) > 0 {
		err = producer.AddOffsetsToTxnWithGroupMetadata(offsets, group)
	}
	if err == nil {
		err = producer.CommitTxn()
	}
	if err != nil {
		t.logger.Warn("transaction aborted", "error", err)
		t.recover()
		err = fmt.Errorf("%w: %w", ErrFenced, err)
	}
	tx.end(err)

	t.mu.Lock()
	defer t.mu.Unlock()
	t.committing = false
	queue := t.queue
	t.queue = nil
	if err != nil {
		// What was written since the aborted transaction began derives
		// from what it wrote: nothing of it is committed, until the next Open.
		t.open = nil
		t.cur.end(err)
		t.cur = newTxn()
		return err
	}
	if berr := t.begin(); berr != nil {
		t.open = nil
		t.cur.end(berr)
		return berr
	}
	for _, m := range queue {
		t.producer.Input() <- m
	}
	return nil
}

// recover makes the producer usable after a failed transaction: it aborts
// an abortable one, and replaces a producer in a fatal state (fenced, as
// when the broker timed its transaction out) with a new one of the same
// transactional id. Called with commitMu held.
func (t *TxnProducer) recover() {
	t.broken.Store(false)
	status := t.producer.TxnStatus()
	if status&sarama.ProducerTxnFlagFatalError != 0 {
		_ = t.producer.Close()
		if err := t.renew(); err != nil {
			t.logger.Error("renew the transactional producer", "error", err)
			t.broken.Store(true) // tried again at the next wake
		}
		return
	}
	if status&sarama.ProducerTxnFlagInError != 0 {
		if err := t.producer.AbortTxn(); err != nil {
			t.logger.Error("abort transaction", "error", err)
		}
	}
}

// begin opens the next transaction unless one is open. Called with mu held.
func (t *TxnProducer) begin() error {
	if isClosed(t.cur.done) {
		t.cur = newTxn()
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
	t.mu.Lock()
	producer := t.producer
	t.mu.Unlock()
	return producer.Close()
}

// commitInterval is the least time between the starts of two commits.
const commitInterval = 5 * time.Millisecond

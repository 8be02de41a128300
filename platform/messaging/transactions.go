package messaging

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/platform/config"
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

// ErrFenced is the error of a write whose transaction Kafka refused to
// commit: this instance lost its partitions (its generation is over), or a
// record of it failed. Nothing it wrote in that transaction is ever seen by
// a read_committed consumer.
var ErrFenced = errors.New("transaction aborted: this instance no longer owns its partitions")

// ErrOutcomeUnknown is the error of a write whose transaction ended with
// no answer to go by (its flush or its end failed, or the broker answered
// UNKNOWN_SERVER_ERROR to the commit): it may have committed. The client
// is replaced, and the state read again from Kafka.
var ErrOutcomeUnknown = errors.New("transaction's outcome unknown: it may have committed")

// ErrAborted marks the error given to Owner.Distrust when the transaction
// is known to be aborted (Kafka answered the end of the transaction, or it
// was aborted on purpose): the writers' callbacks (Add's over) have been
// told, so a state that rolls its writes back in them holds only what
// committed. Without it, whether the transaction committed is not known,
// and the state must be read again.
var ErrAborted = errors.New("transaction known to be aborted")

// GenerationOver marks, with ErrAborted, the abort of a transaction whose
// offsets the group refused because the generation they were sent in is
// over (a rebalance, or this member evicted): the partitions may be
// another's already, and the Owner serves none until an assignment of a
// later generation (which may have come already).
type GenerationOver struct {
	Generation int32 // the offsets were sent in
	Err        error // the group's answer
}

func (e *GenerationOver) Error() string {
	return fmt.Sprintf("the group's generation %d is over: %v", e.Generation, e.Err)
}
func (e *GenerationOver) Unwrap() error { return e.Err }

// ErrStaleRead is the error of a write made from a state read before it
// changed under the writer (ReadAt): the writer reads again.
var ErrStaleRead = errors.New("the state the write was made from changed since it was read: an aborted transaction had written it, or the partitions were assigned again")

type readAt struct{}

// ReadAt marks ctx as that of a write made from a state read at epoch
// (Epoch). Add and AddAcked refuse it (ErrStaleRead) once the epoch
// moved: a transaction with writes aborted, and what was read may have
// been one of them, visible before its commit and taken back since; or
// the partitions were assigned again, and the key may be another
// instance's now. Made in a later transaction, the write would commit
// what never was, or what its new owner does not know.
func ReadAt(ctx context.Context, epoch uint64) context.Context {
	return context.WithValue(ctx, readAt{}, epoch)
}

// Stale reports whether ctx is that of a write made from a state read
// before the epoch reached epoch (ReadAt): a Sender refuses it.
func Stale(ctx context.Context, epoch uint64) bool {
	n, ok := ctx.Value(readAt{}).(uint64)
	return ok && n != epoch
}

// Epoch moves when a transaction with writes aborted (once its writers'
// callbacks have put the state back) and when partitions are assigned
// (once they are restored), each time before the next transaction takes
// writes (ReadAt).
func (s *Session) Epoch() uint64 { return s.epoch.Load() }

// AwaitCommit is how long a write made outside a handler (an HTTP request,
// a timer) waits for its transaction to commit.
const AwaitCommit = 5 * time.Second

// Owner takes and gives up the partitions the consumer group assigns: a
// process's state by partition. The group's assignor (copartitioned) gives
// a member the same partition numbers of every topic it reads.
type Owner interface {
	// Assigned runs when the group assigns partitions, before any record
	// of them is handed out and before any write of the generation: the
	// owner restores their state. An error stops the process.
	Assigned(ctx context.Context, partitions []int32, generation int32) error
	// Revoked runs when a rebalance takes the partitions away (lost: the
	// group went on without this instance, as after a long pause).
	Revoked(lost bool)
	// Distrust runs when a transaction that held writes did not commit:
	// the state holds what they changed. If err is ErrAborted, the
	// transaction is over and the writers were told (Add's over), or are
	// about to be, before Restore; otherwise its outcome is unknown and
	// every partition's state must be dropped.
	Distrust(err error)
	// Restore serves again, or restores, the partitions still assigned
	// after Distrust, and
	// reports whether it serves them (false: a rebalance is under way, and
	// Assigned will restore what it is given).
	Restore(ctx context.Context) (bool, error)
}

// SessionConfig configures NewSession.
type SessionConfig struct {
	Kafka config.Kafka
	// Group is the consumer group, and the client id; with no topic added,
	// the session joins no group and owns every partition.
	Group string
	// TransactionalID is unique to the instance and the same after its
	// restart, so the restart aborts what its predecessor left open.
	TransactionalID string
	// TransactionTimeout is how long a crashed instance's open transaction
	// holds up the readers of its partitions before the broker aborts it.
	TransactionTimeout time.Duration
	// UserData is what the instance advertises in its group membership.
	UserData []byte
	Owner    Owner
	// Metrics, if set, gets the transactions' metrics (transactionMetrics).
	Metrics prometheus.Registerer

	// Hooks are franz-go hooks on the session's clients, its consumer and
	// its producers (metrics of one's own, or a test's view of them).
	Hooks []kgo.Hook
	// Opened, if set, runs each time writes open: once an assignment's
	// partitions are restored (or, with no group, at the start), when its
	// first transaction has begun. It runs on the session's loop, which
	// commits: it must not wait for a commit.
	Opened func()
}

// Session is a process's reads and writes on Kafka, on franz-go
// (groupTxn): it reads the process's topics in its consumer group and
// writes every record (state, commands, replies, events) in Kafka
// transactions that commit the consumed offsets with the group's
// generation (KIP-447). An instance that
// lost its partitions without knowing it (a long pause, a network
// partition) cannot commit afterwards: the broker refuses the offsets of
// an old generation, the transaction is aborted, and no read_committed
// consumer sees its records.
//
// One loop polls what is fetched, hands every record to the handler of its
// topic on one of a fixed set of workers, the one its key hashes to, so
// that the records of a key are handled in order and the keys in
// parallel, waits for all of them, handles in the same way what was
// fetched meanwhile, and commits their writes and offsets in one
// transaction. Under load a poll returns many records, so a commit
// carries many handlers' writes; idle, a record is handed out as soon as
// it is fetched. Writes outside a handler (an HTTP request, a timer) join
// the open transaction and wake the loop, which commits them at once.
type Session struct {
	cfg         SessionConfig
	logger      *slog.Logger
	metrics     transactionMetrics
	awaitCommit time.Duration // AwaitCommit; shorter in tests
	linger      time.Duration // linger; longer in tests
	heldFirst   time.Duration // heldFirst; shorter in tests
	offsetsRead func()        // tests: groupTxn's

	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	running context.Context // Run's, which ends with it; ctx before Run
	started atomic.Bool
	done    chan struct{} // closed when Run returns

	topics   []string
	handlers map[string]func(*message.Message) error // by topic, once handled
	outs     []chan *message.Message                 // of Subscribe, closed when Run returns
	waiting  int                                     // topics without a handler yet
	handled  chan struct{}                           // a handler was registered (one slot: a wake-up)

	workers []chan job      // started by Run
	shares  [][]*kgo.Record // a batch's records by worker, reused

	mu    sync.RWMutex // shared by writers while they produce; the loop's to end and begin
	cl    txnClient
	group atomic.Pointer[groupTxn] // cl, in a group: Heartbeat's, without mu
	begun bool                     // a transaction is begun (the loop's)
	cur   *txn                     // the transaction writes join
	open  atomic.Bool
	dirty atomic.Bool // cur has writers: records, or writes that wait for its end
	// produced: cur holds records. A transaction with writers but no
	// records is none to the broker: its offsets are committed alone.
	produced atomic.Bool
	broken   atomic.Bool   // a record of cur failed: it must abort
	epoch    atomic.Uint64 // Epoch
	// abandon ends the context of the batch in hand (nil between
	// batches). A failed write and a revocation call it: the batch's
	// handlers stop rather than retry in a transaction that can only abort
	// (whose producer franz-go may not recover before the transaction
	// ends), the batch aborts, and its records come again.
	abandon atomic.Pointer[context.CancelFunc]

	// batch is held while a polled batch is handed out: a revocation
	// waits for the handlers before the state they use is given up.
	batch sync.Mutex

	reopen atomic.Bool // partitions were assigned: begin the generation's transactions
	// revocations counts the revocations begun, and assignedAt is what it
	// was at the last assignment: writes open only for an assignment no
	// revocation has followed (a restore after an abort that one overtook
	// opens nothing).
	revocations, assignedAt atomic.Uint64
	revoking                atomic.Bool // partitions were revoked: abort the open transaction
	failed                  chan error  // an assignment that could not be restored

	pollMu     sync.Mutex
	cancelPoll context.CancelFunc

	// failing holds the partitions of the records given up on in the
	// batch in hand (deliver); held, the loop's, the partitions it holds
	// back (holdBack).
	failingMu sync.Mutex
	failing   map[partitionOf]bool
	held      map[partitionOf]heldPartition
}

// partitionOf is a partition of a topic.
type partitionOf struct {
	topic     string
	partition int32
}

// heldPartition is a partition held back since its records kept failing:
// fetched again at until (paused until then), and held back for twice
// wait if they fail again.
type heldPartition struct {
	until  time.Time
	wait   time.Duration
	paused bool
}

// Holding back a partition whose record keeps failing: first for
// heldFirst, then twice as long each time it fails again, up to heldMax.
const (
	heldFirst = 5 * time.Second
	heldMax   = time.Minute
)

// txnClient is what the loop needs of franz-go: a groupTxn, or a
// transactional producer alone for a process that reads nothing.
type txnClient interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	// Flush sends what is produced and waits for it; done already, ctx
	// makes it send without waiting (kick).
	Flush(ctx context.Context) error
	Begin() error
	// Prepare flushes the transaction's records (produced: it has any)
	// and, in a group, sends its offsets: the outcome of every write is
	// known before End chooses to commit.
	Prepare(ctx context.Context, produced bool) error
	End(ctx context.Context, commit kgo.TransactionEndTry) (bool, error)
	PollRecords(ctx context.Context, max int) kgo.Fetches
	// PauseFetchPartitions and ResumeFetchPartitions stop and start
	// fetching partitions (a partition held back: holdBack).
	PauseFetchPartitions(map[string][]int32) map[string][]int32
	ResumeFetchPartitions(map[string][]int32)
	Close()
}

// txn is one transaction: done closes once it is committed or aborted,
// after its callbacks ran, so that a writer that waited for an abort
// does not read its own write before the state put it back.
type txn struct {
	done  chan struct{}
	err   error
	mu    sync.Mutex
	ended bool
	after []func(committed bool)
}

func newTxn() *txn { return &txn{done: make(chan struct{})} }

func (x *txn) end(err error) {
	x.mu.Lock()
	if x.ended {
		x.mu.Unlock()
		return
	}
	x.ended, x.err = true, err
	after := x.after
	x.after = nil
	x.mu.Unlock()
	for _, fn := range after {
		fn(err == nil)
	}
	close(x.done)
}

// then calls fn once x is committed or aborted. Called as x ends, it
// waits for the callbacks registered before it: a store learns of its
// writes' commits in the order they joined.
func (x *txn) then(fn func(committed bool)) {
	x.mu.Lock()
	if x.ended {
		x.mu.Unlock()
		<-x.done
		fn(x.err == nil)
		return
	}
	x.after = append(x.after, fn)
	x.mu.Unlock()
}

// NewSession returns a session; add the topics it reads with AddTopic,
// subscribe to each, and Run it.
func NewSession(cfg SessionConfig, logger *slog.Logger) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{cfg: cfg, logger: logger, awaitCommit: AwaitCommit, linger: linger, heldFirst: heldFirst, ctx: ctx, cancel: cancel, running: ctx,
		done: make(chan struct{}), handlers: map[string]func(*message.Message) error{}, handled: make(chan struct{}, 1),
		cur: newTxn(), failed: make(chan error, 1), metrics: newTransactionMetrics(),
		failing: map[partitionOf]bool{}, held: map[partitionOf]heldPartition{}}
	if cfg.Metrics != nil {
		if err := s.metrics.register(cfg.Metrics); err != nil {
			logger.Warn("transaction metrics not registered", "error", err)
		}
	}
	return s
}

// AddTopic adds a topic the group reads; call it before Handle (or
// Subscribe) and Run.
func (s *Session) AddTopic(topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.handlers[topic]; !ok {
		s.handlers[topic] = nil
		s.topics = append(s.topics, topic)
		s.waiting++
	}
}

// Handle makes h the handler of the records of topic, one of the topics
// added; call it before Run, which waits for every topic's. The loop calls
// h with each record as a message (RecordFromCtx in its context, which
// ends once the record is through): nil acks it, an error nacks it and h
// is called again, with a copy, after a pause, until it acks or the
// session stops. h must return once the message's context ends.
func (s *Session) Handle(topic string, h func(*message.Message) error) error {
	return s.register(topic, h, nil)
}

func (s *Session) register(topic string, h func(*message.Message) error, out chan *message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.handlers[topic]
	if !ok {
		return fmt.Errorf("consumer group %s does not read %s", s.cfg.Group, topic)
	}
	if cur != nil {
		return fmt.Errorf("consumer group %s: %s subscribed twice", s.cfg.Group, topic)
	}
	s.handlers[topic] = h
	if out != nil {
		s.outs = append(s.outs, out)
	}
	s.waiting--
	select {
	case s.handled <- struct{}{}:
	default:
	}
	return nil
}

// Subscribe implements message.Subscriber for the topics added, on
// Handle: each record is handed out on the channel, and its handler
// returns once the message is acked or nacked. The channel closes when
// the session stops.
func (s *Session) Subscribe(_ context.Context, topic string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	if err := s.register(topic, func(msg *message.Message) error { return handOut(out, msg) }, out); err != nil {
		return nil, err
	}
	return out, nil
}

// errNacked is a message its subscriber nacked: it is handed out again.
var errNacked = errors.New("message nacked")

// handOut hands msg out on out and waits for its subscriber's answer.
func handOut(out chan<- *message.Message, msg *message.Message) error {
	ctx := msg.Context() // ends with the session
	select {
	case out <- msg:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-msg.Acked():
		return nil
	case <-msg.Nacked():
		return errNacked
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the session and waits for Run to return.
func (s *Session) Close() error {
	s.cancel()
	if s.started.Load() {
		<-s.done
	}
	return nil
}

// Run joins the group once every topic has its handler, and consumes and
// commits until ctx ends or the session is closed. A client that fails
// (Kafka gone past its retries) is replaced by a new one, after the state
// is dropped: what it held may include aborted writes.
func (s *Session) Run(ctx context.Context) error {
	if s.started.Swap(true) {
		return errors.New("session run twice")
	}
	defer close(s.done)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(s.ctx, stop)()
	s.running = ctx
	defer s.closeOuts()
	if len(s.topics) > 0 {
		// A watermill router subscribes when it runs, maybe after this.
		for !s.allHandled() {
			select {
			case <-s.handled:
			case <-ctx.Done():
				return nil
			}
		}
		defer s.startWorkers()() // stopped before the channels of Subscribe close
	} else {
		s.reopen.Store(true) // no group: it owns every partition, now
	}
	for {
		err := s.runClient(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var failed fatalError
		if errors.As(err, &failed) {
			return failed.err
		}
		s.logger.Warn("kafka client failed; connecting a new one", "error", err)
		s.cfg.Owner.Distrust(err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		if len(s.topics) == 0 {
			if _, err := s.cfg.Owner.Restore(ctx); err != nil {
				return err
			}
			s.reopen.Store(true)
		}
	}
}

// allHandled reports whether every topic added has its handler.
func (s *Session) allHandled() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.waiting == 0
}

// fatalError ends Run: an assignment that could not be restored (the
// process stops rather than serve part of its state), or a group the
// broker refuses for good.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }

// refusedSettings is franz-go's refusal of the client's settings (it
// checks them and connects to nothing): no retry mends it, so it ends Run.
// A session timeout past its range is one.
func refusedSettings(err error) error {
	return fatalError{fmt.Errorf("kafka client settings (KAFKA_* variables): %w", err)}
}

// refusedGroup passes to Run the group errors that no retry mends: the
// broker takes no session timeout outside its range
// (group.min.session.timeout.ms, group.max.session.timeout.ms), nor an
// invalid group id. franz-go would ask again forever, and the process
// would never be ready. A group not authorized is asked again: an ACL
// just created may not have reached every broker yet.
type refusedGroup struct{ s *Session }

func (h refusedGroup) OnGroupManageError(err error) {
	switch {
	case errors.Is(err, kerr.InvalidSessionTimeout):
		err = fmt.Errorf("join group %s with KAFKA_SESSION_TIMEOUT %s: %w", h.s.cfg.Group, h.s.sessionTimeout(), err)
	case errors.Is(err, kerr.InvalidGroupID):
		err = fmt.Errorf("join group %s: %w", h.s.cfg.Group, err)
	default:
		return
	}
	select {
	case h.s.failed <- err:
	default:
	}
	h.s.wake()
}

func (s *Session) closeOuts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.outs {
		close(ch)
	}
	s.outs = nil
}

// runClient connects a client and runs the loop on it until ctx ends or
// the client fails.
func (s *Session) runClient(ctx context.Context) error {
	cl, err := s.connect()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cl = cl
	s.mu.Unlock()
	if g, ok := cl.(*groupTxn); ok {
		s.group.Store(g)
	}
	clear(s.held) // paused on the client before this one
	s.countHeld()
	defer func() {
		s.mu.Lock()
		s.open.Store(false)
		s.begun = false
		s.cur.end(errors.New("kafka client stopped"))
		s.cur = newTxn()
		s.cl = nil
		s.mu.Unlock()
		s.group.Store(nil)
		cl.Close() // leaves the group
	}()
	for {
		if err := s.step(ctx, cl); err != nil || ctx.Err() != nil {
			if ctx.Err() != nil {
				s.finish(cl)
				return nil
			}
			return err
		}
	}
}

// pollMax bounds the records one transaction carries.
const pollMax = 2000

// pollWhileDirty is how long a poll waits for records when writes wait to
// be committed.
const pollWhileDirty = time.Millisecond

// step polls once, hands out what it got and commits.
func (s *Session) step(ctx context.Context, cl txnClient) error {
	select {
	case err := <-s.failed:
		return fatalError{err}
	default:
	}
	if err := s.transitions(cl); err != nil {
		return err
	}
	s.resumeHeld(cl)
	records := s.poll(ctx, cl)
	if err := s.transitions(cl); err != nil {
		return err
	}
	if len(records) > 0 && !s.begun {
		// Not owned any more, or not yet restored: the records come
		// again from the committed offsets.
		_, err := cl.End(context.Background(), kgo.TryAbort)
		return err
	}
	through, consumed := true, len(records) > 0
	handled, handling := 0, time.Duration(0)
	var batches [][]*kgo.Record // the records handled, by poll
	// A transaction is ended well before the broker would abort it (and
	// fence the producer): a handler that keeps failing (a dependency
	// down) is retried until then at most, and the transaction aborts,
	// what it wrote is put back, and its records come again. A handler
	// that is slow but succeeds is never cut: no more records join.
	held := time.Now().Add(s.transactionTimeout() / 2)
	for len(records) > 0 {
		batchCtx, cancel := context.WithCancel(context.WithValue(ctx, retryUntilKey{}, held))
		s.abandon.Store(&cancel)
		if s.broken.Load() { // a write failed while the loop polled
			cancel()
		}
		s.batch.Lock()
		if !s.open.Load() {
			// The partitions were revoked since these records were
			// polled (revoked holds the batch while it gives them up):
			// their handlers' writes could only be refused. The
			// transaction aborts, and the records come again to the
			// partitions' next owner.
			s.batch.Unlock()
			s.abandon.Store(nil)
			cancel()
			through = false
			break
		}
		began := time.Now()
		through = s.handle(batchCtx, records)
		handling += time.Since(began)
		batches = append(batches, records)
		s.batch.Unlock()
		s.abandon.Store(nil)
		cancel()
		handled += len(records)
		if !through || handled >= pollMax || s.broken.Load() || s.revoking.Load() || time.Now().After(held) {
			break
		}
		// What was fetched meanwhile joins this transaction rather than
		// wait for one of its own: under load, fewer commits, each
		// carrying more. Idle, nothing was, and the batch commits at
		// once. (A revocation meanwhile aborts the transaction.)
		records = s.fetched(cl.PollRecords(nil, pollMax-handled))
	}
	failing := s.takeFailing()
	if !anyOf(batches, func(p partitionOf) bool { return !failing[p] }) {
		// Every partition of the transaction's records failed (a
		// dependency down, say): holding them back would let nothing
		// else go on, and would only try them again later. They are
		// tried again at once, but for those held back before, which
		// keep failing: fetched again, one fails alone, the records
		// that came meanwhile waiting for it.
		maps.DeleteFunc(failing, func(p partitionOf, _ bool) bool { _, before := s.held[p]; return !before })
	}
	committed := false
	if consumed || s.dirty.Load() {
		s.metrics.records.Observe(float64(handled))
		s.metrics.handle.Observe(handling.Seconds())
		var err error
		if committed, err = s.commit(ctx, cl, through); err != nil {
			return err
		}
	}
	s.holdBack(cl, failing, batches, committed)
	return nil
}

// anyOf reports whether the partition of a record of batches is one f
// says.
func anyOf(batches [][]*kgo.Record, f func(partitionOf) bool) bool {
	return slices.ContainsFunc(batches, func(b []*kgo.Record) bool {
		return slices.ContainsFunc(b, func(r *kgo.Record) bool { return f(partitionOf{r.Topic, r.Partition}) })
	})
}

// takeFailing returns the partitions of the records given up on since it
// was last called.
func (s *Session) takeFailing() map[partitionOf]bool {
	s.failingMu.Lock()
	defer s.failingMu.Unlock()
	if len(s.failing) == 0 {
		return nil
	}
	failing := s.failing
	s.failing = map[partitionOf]bool{}
	return failing
}

// holdBack stops fetching the partitions whose records kept failing
// until their transaction aborted (failing: beside records of other
// partitions, which then go on), for heldFirst, then twice
// as long each time they fail again: the records of the instance's other
// partitions, handled again, commit meanwhile, where each abort took
// them back with it for as long as the failing record failed. A held
// partition is fetched again when its time is up (resumeHeld), and held
// no more once a transaction that handled its records (batches)
// committed.
func (s *Session) holdBack(cl txnClient, failing map[partitionOf]bool, batches [][]*kgo.Record, committed bool) {
	if committed {
		maps.DeleteFunc(s.held, func(p partitionOf, h heldPartition) bool {
			return !h.paused && anyOf(batches, func(q partitionOf) bool { return q == p })
		})
		return
	}
	if len(failing) == 0 || s.revoking.Load() {
		return
	}
	pause := map[string][]int32{}
	for p := range failing {
		h := s.held[p]
		h.wait = min(max(2*h.wait, s.heldFirst), heldMax)
		h.until, h.paused = time.Now().Add(h.wait), true
		s.held[p] = h
		pause[p.topic] = append(pause[p.topic], p.partition)
		s.logger.Warn("a partition whose record keeps failing is held back: the others go on", "topic", p.topic, "partition", p.partition, "for", h.wait)
	}
	cl.PauseFetchPartitions(pause)
	s.countHeld()
}

// countHeld sets partitions_held_back.
func (s *Session) countHeld() {
	n := 0
	for _, h := range s.held {
		if h.paused {
			n++
		}
	}
	s.metrics.heldBack.Set(float64(n))
}

// resumeHeld fetches again the partitions held back whose time is up.
func (s *Session) resumeHeld(cl txnClient) {
	if len(s.held) == 0 {
		return
	}
	resume := map[string][]int32{}
	for p, h := range s.held {
		if h.paused && !time.Now().Before(h.until) {
			h.paused = false
			s.held[p] = h
			resume[p.topic] = append(resume[p.topic], p.partition)
		}
	}
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(resume)
		s.countHeld()
	}
}

// heldUntil returns when the first partition held back is fetched again,
// if one is.
func (s *Session) heldUntil() (until time.Time, ok bool) {
	for _, h := range s.held {
		if h.paused && (!ok || h.until.Before(until)) {
			until, ok = h.until, true
		}
	}
	return until, ok
}

// releaseHeld fetches every partition held back again, and forgets them:
// the partitions were revoked. (A restore after an abort keeps them held:
// they are still this instance's.)
func (s *Session) releaseHeld(cl txnClient) {
	resume := map[string][]int32{}
	for p, h := range s.held {
		if h.paused {
			resume[p.topic] = append(resume[p.topic], p.partition)
		}
	}
	clear(s.held)
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(resume)
		s.countHeld()
	}
}

// transitions aborts the open transaction when the partitions were
// revoked, and begins the generation's first once they are assigned.
func (s *Session) transitions(cl txnClient) error {
	if s.revoking.Swap(false) {
		s.releaseHeld(cl)
		dirty, err := s.abortOpen(cl)
		if err != nil {
			return err
		}
		if dirty { // the state holds the aborted writes
			s.cfg.Owner.Distrust(fmt.Errorf("%w: %w", ErrRebalancing, ErrAborted))
			if err := s.restoreAfterAbort(context.Background()); err != nil {
				return err
			}
		}
	}
	if s.reopen.Swap(false) && s.unrevoked() {
		// An open transaction here wrote nothing (writes were closed), but
		// franz-go still marks it to abort for the revocation before.
		if _, err := s.abortOpen(cl); err != nil {
			return err
		}
		s.mu.Lock()
		if err := cl.Begin(); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("begin transaction: %w", err)
		}
		s.begun = true
		s.dirty.Store(false)
		s.produced.Store(false)
		s.broken.Store(false)
		s.open.Store(true)
		// A revocation since the check (with franz-go's next assignment
		// under way, Begin cleared its mark) keeps writes closed: the
		// next transitions aborts what began. Checked after opening,
		// since revoked counts before it closes.
		opened := s.unrevoked()
		if !opened {
			s.open.Store(false)
		}
		s.mu.Unlock()
		if opened && s.cfg.Opened != nil {
			s.cfg.Opened()
		}
	}
	return nil
}

// unrevoked reports whether no revocation has followed the last
// assignment: only then may writes open.
func (s *Session) unrevoked() bool { return s.revocations.Load() == s.assignedAt.Load() }

// abortOpen aborts the open transaction, if one is begun, failing its
// writers, and reports whether it held writes. Writes are refused until
// the next transaction begins.
func (s *Session) abortOpen(cl txnClient) (dirty bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.begun {
		return false, nil
	}
	s.open.Store(false)
	dirty = s.dirty.Swap(false)
	s.produced.Store(false)
	s.broken.Store(false)
	_, err = cl.End(context.Background(), kgo.TryAbort)
	s.begun = false
	s.cur.end(ErrRebalancing)
	s.cur = newTxn()
	if dirty {
		s.epoch.Add(1)
	}
	return dirty, err
}

// poll returns what is fetched, waiting for it unless writes wait for a
// commit; a write wakes it.
func (s *Session) poll(ctx context.Context, cl txnClient) []*kgo.Record {
	pollCtx, cancel := context.WithCancel(ctx)
	s.pollMu.Lock()
	s.cancelPoll = cancel
	s.pollMu.Unlock()
	// A flag set before cancelPoll was, whose wake found no poll to end.
	if s.dirty.Load() || s.revoking.Load() || s.reopen.Load() || len(s.failed) > 0 {
		cancel()
		pollCtx, cancel = context.WithTimeout(ctx, pollWhileDirty)
	} else if until, ok := s.heldUntil(); ok {
		// Then a partition held back is fetched again; a wake still ends
		// the poll sooner.
		var stop context.CancelFunc
		pollCtx, stop = context.WithDeadline(pollCtx, until)
		defer stop()
	}
	fetches := cl.PollRecords(pollCtx, pollMax)
	cancel()
	s.pollMu.Lock()
	s.cancelPoll = nil
	s.pollMu.Unlock()
	return s.fetched(fetches)
}

// fetched returns the records of fetches, and logs their errors but a
// poll's end.
func (s *Session) fetched(fetches kgo.Fetches) []*kgo.Record {
	fetches.EachError(func(topic string, partition int32, err error) {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			s.logger.Warn("fetch", "topic", topic, "partition", partition, "error", err)
		}
	})
	return fetches.Records()
}

// wake makes a waiting poll return.
func (s *Session) wake() {
	s.pollMu.Lock()
	if s.cancelPoll != nil {
		s.cancelPoll()
	}
	s.pollMu.Unlock()
}

// Workers is how many records a Session handles at once, at most: a
// record's worker is the one its key hashes to. As many as a Subscriber
// keeps in flight per partition (MaxInFlight): enough for the handlers
// that wait on Kafka or the registry to overlap, while an idle worker
// costs one parked goroutine, whose stack, grown once, serves every record.
const Workers = 64

// job is a batch's share of records for one worker, in the batch's order.
type job struct {
	ctx     context.Context // the batch's: once it ends, the records left are not acked
	records []*kgo.Record
	missed  *atomic.Bool // set if a record was not acked
	done    *sync.WaitGroup
}

// startWorkers starts the workers, and returns what stops them and waits
// for them to end.
func (s *Session) startWorkers() (stop func()) {
	s.workers = make([]chan job, Workers)
	s.shares = make([][]*kgo.Record, Workers)
	var wg sync.WaitGroup
	for i := range s.workers {
		// One slot: a worker has one job at most, as the loop waits
		// for the batch before the next, so handing it out never blocks.
		s.workers[i] = make(chan job, 1)
		wg.Go(func() {
			for j := range s.workers[i] {
				for _, r := range j.records {
					if !s.deliver(j.ctx, r) {
						j.missed.Store(true)
					}
				}
				j.done.Done()
			}
		})
	}
	return func() {
		for _, w := range s.workers {
			close(w)
		}
		wg.Wait()
	}
}

// handle hands every record to its worker, and reports whether all were
// acked (not: the session is stopping).
func (s *Session) handle(ctx context.Context, records []*kgo.Record) bool {
	for i := range s.shares {
		clear(s.shares[i])
		s.shares[i] = s.shares[i][:0]
	}
	for _, r := range records {
		i := workerOf(r)
		s.shares[i] = append(s.shares[i], r)
	}
	var (
		missed atomic.Bool
		done   sync.WaitGroup
	)
	for i, share := range s.shares {
		if len(share) > 0 {
			done.Add(1)
			s.workers[i] <- job{ctx: ctx, records: share, missed: &missed, done: &done}
		}
	}
	done.Wait()
	return !missed.Load()
}

// workerOf returns the worker of r: by topic and key (FNV-1a), so a
// key's records are handled in order. A record without a key goes by its
// partition, keeping the order Kafka gives it, which is per partition.
func workerOf(r *kgo.Record) int {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := range len(r.Topic) {
		h = (h ^ uint64(r.Topic[i])) * prime
	}
	if len(r.Key) > 0 {
		for _, b := range r.Key {
			h = (h ^ uint64(b)) * prime
		}
	} else {
		h = (h ^ uint64(uint32(r.Partition))) * prime
	}
	return int(h % Workers)
}

// deliver calls the handler of r's topic until it acks the record (true)
// or ctx ends, pausing after every nack.
func (s *Session) deliver(ctx context.Context, r *kgo.Record) bool {
	if ctx.Err() != nil {
		return false
	}
	h := s.handlers[r.Topic]
	msgCtx, cancel := context.WithCancel(WithRecord(ctx, Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Timestamp: r.Timestamp}))
	defer cancel() // a message's context ends when it is through, as watermill expects
	msg := toMessage(r)
	first := time.Now()
	for {
		msg.SetContext(msgCtx)
		if h(msg) == nil {
			return true
		}
		if until, ok := retryUntil(ctx); ok && !time.Now().Before(until) {
			s.logger.Warn("a record still failing at half the transaction timeout: the transaction aborts, and its records come again",
				"topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
			if first.Before(until) { // tried until then, not once past it behind a record of its worker
				s.failingMu.Lock()
				s.failing[partitionOf{r.Topic, r.Partition}] = true
				s.failingMu.Unlock()
			}
			return false
		}
		pause := time.NewTimer(nackResendSleep)
		select {
		case <-pause.C:
		case <-ctx.Done():
			pause.Stop()
			return false
		}
		msg = msg.Copy() // a message is acked or nacked once
	}
}

// retryUntilKey is the context key of when the failing handlers of a
// transaction's records give up (retryUntil).
type retryUntilKey struct{}

// retryUntil is when the handlers of ctx's records that keep failing stop
// being retried, so that their transaction aborts well before the broker
// would abort it.
func retryUntil(ctx context.Context) (time.Time, bool) {
	until, ok := ctx.Value(retryUntilKey{}).(time.Time)
	return until, ok
}

// toMessage reads a record as watermill-kafka's marshaler does: the
// message's uuid and metadata from its headers.
func toMessage(r *kgo.Record) *message.Message {
	var uuid string
	metadata := make(message.Metadata, len(r.Headers))
	for _, h := range r.Headers {
		if h.Key == kafka.UUIDHeaderKey {
			uuid = string(h.Value)
		} else {
			metadata[h.Key] = string(h.Value)
		}
	}
	msg := message.NewMessage(uuid, r.Value)
	msg.Metadata = metadata
	return msg
}

// endTimeout bounds the end of a transaction; canceling it leaves the
// client unusable, so it is long, and a client that overruns it is
// replaced.
const endTimeout = 30 * time.Second

// commit ends the open transaction: with a commit if every record was
// through and every write of it landed, otherwise with an abort, after
// which the records come again from the committed offsets. It begins the
// next one, unless the partitions were revoked meanwhile, and reports
// whether it committed.
func (s *Session) commit(ctx context.Context, cl txnClient, through bool) (bool, error) {
	s.mu.Lock()
	tx, dirty, produced := s.cur, s.dirty.Swap(false), s.produced.Swap(false)
	endCtx, cancel := context.WithTimeout(context.Background(), endTimeout)
	try := kgo.TryAbort
	var err error
	if through {
		// Every write's outcome must be known before the choice (Prepare
		// flushes): a commit would keep the writes that landed without
		// the one that failed.
		began := time.Now()
		err = cl.Prepare(endCtx, produced)
		s.metrics.prepare.Observe(time.Since(began).Seconds())
		try = kgo.TryCommit
	}
	if s.broken.Swap(false) {
		try = kgo.TryAbort
	}
	var committed bool
	if err == nil {
		began := time.Now()
		committed, err = cl.End(endCtx, try)
		s.metrics.end.Observe(time.Since(began).Seconds())
	}
	cancel()
	s.begun = false
	var over *GenerationOver // aborted, its generation over
	if errors.As(err, &over) {
		err = nil
	}
	var txErr error
	switch {
	case err != nil:
		txErr = fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	case over != nil:
		txErr = fmt.Errorf("%w (%w: %w)", ErrFenced, ErrAborted, over)
	case !committed:
		txErr = fmt.Errorf("%w (%w)", ErrFenced, ErrAborted)
	}
	s.cur = newTxn()
	// The state holds writes that did not commit, or the group's
	// generation is over: the partitions may be another's already, even
	// when the transaction wrote nothing.
	failed := !committed && (dirty || over != nil)
	if err != nil {
		err = fmt.Errorf("end transaction: %w", err)
	} else if !failed && s.open.Load() {
		if err = cl.Begin(); err != nil {
			err = fmt.Errorf("begin transaction: %w", err)
		} else {
			s.begun = true
		}
	}
	if err != nil || failed {
		s.open.Store(false)
	}
	s.mu.Unlock()
	if failed {
		// Dropped before their writers learn of the failure, so that none
		// of them reads its own write afterwards.
		s.logger.Warn("transaction not committed", "error", txErr)
		s.cfg.Owner.Distrust(txErr)
	}
	tx.end(txErr)
	if failed {
		s.epoch.Add(1)
	}
	if err != nil || !failed || ctx.Err() != nil {
		return committed && err == nil, err
	}
	return false, s.restoreAfterAbort(ctx)
}

// restoreAfterAbort restores what is still assigned after Distrust; the
// transactions begin again once it is, unless a rebalance is under way.
func (s *Session) restoreAfterAbort(ctx context.Context) error {
	serving, err := s.cfg.Owner.Restore(ctx)
	if err != nil {
		return fatalError{err}
	}
	if serving {
		s.reopen.Store(true)
	}
	return nil
}

// finish commits what waits to be committed when the session stops. If
// that aborts, nothing is restored: the process is going (commit's ctx,
// done, says so).
func (s *Session) finish(cl txnClient) {
	if s.begun && s.dirty.Load() {
		stopping, stop := context.WithCancel(context.Background())
		stop()
		if _, err := s.commit(stopping, cl, true); err != nil {
			s.logger.Warn("last commit", "error", err)
		}
	}
	if s.begun {
		s.mu.Lock()
		_, _ = cl.End(context.Background(), kgo.TryAbort)
		s.begun = false
		s.mu.Unlock()
	}
}

// Send adds msgs to the open transaction. Written on behalf of a consumed
// message (ctx is its handler's, RecordFromCtx), it returns at once: the
// message's offset is committed in the same transaction, so the records
// and the offset become visible together, and an abort takes both back.
// Otherwise (an HTTP request, a timer) it returns once the transaction is
// committed (ErrCommitPending after AwaitCommit): then they are durable
// and visible.
func (s *Session) Send(ctx context.Context, msgs []*kgo.Record) error {
	wait, err := s.Add(ctx, msgs, nil)
	if err != nil {
		return err
	}
	return wait()
}

// Add adds msgs to the open transaction and returns the wait that Send
// does: at once for a handler's, for the commit otherwise. A writer that
// holds a lock releases it before it waits, since the commit may wait for
// a handler that needs it. over, if not nil, is called once the
// transaction msgs joined is committed or aborted, before a Restore after
// its abort.
func (s *Session) Add(ctx context.Context, msgs []*kgo.Record, over func(committed bool)) (func() error, error) {
	ctx, cancel := s.budget(ctx)
	tx, err := s.add(ctx, msgs)
	return s.waitFor(ctx, cancel, tx, err, over)
}

// budget bounds the waits of a write outside a handler, together, by
// AwaitCommit: for a commit under way, for its records' acknowledgements,
// for its own commit. The context it returns ends then, ErrCommitPending
// its cause.
func (s *Session) budget(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, handling := RecordFromCtx(ctx); handling {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, s.awaitCommit,
		fmt.Errorf("%w (waited %s)", ErrCommitPending, s.awaitCommit))
}

// waitFor returns the wait of a write that joined tx (or failed with err):
// none for a handler's, tx's commit otherwise; over learns tx's end. The
// wait, or the error, ends ctx's budget (cancel).
func (s *Session) waitFor(ctx context.Context, cancel context.CancelFunc, tx *txn, err error, over func(committed bool)) (func() error, error) {
	if err != nil {
		cancel()
		return nil, err
	}
	if over != nil {
		tx.then(over)
	}
	if _, handling := RecordFromCtx(ctx); handling {
		return func() error { return nil }, nil
	}
	return func() error {
		defer cancel()
		select {
		case <-tx.done:
			return tx.err
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}, nil
}

// AddAcked adds acked to the open transaction, waits until Kafka has
// acknowledged each of them (their Partition and Offset are set), then
// adds what then builds from them, and returns the wait Add does. No
// commit comes between the two: a record that must know where another
// landed (an archived record's pointer) commits with it, or neither does.
// A handler's writes are in one transaction anyway; a write outside one
// waited for the first's acknowledgement without the transaction's lock,
// and the loop, woken by it, could commit it alone.
func (s *Session) AddAcked(ctx context.Context, acked []*kgo.Record, then func() []*kgo.Record, over func(committed bool)) (func() error, error) {
	ctx, cancel := s.budget(ctx)
	// Outside a handler, the acknowledgements are given up on once the
	// budget is spent, not when the caller goes: giving up aborts the
	// transaction, every writer's. A handler's batch aborts anyway.
	acking := ctx
	if _, handling := RecordFromCtx(ctx); !handling {
		var stop context.CancelFunc
		acking, stop = s.budget(context.WithoutCancel(ctx))
		defer stop()
	}
	tx, err := s.locked(ctx, func() (*txn, error) { return s.addAckedLocked(ctx, acking, acked, then) })
	return s.waitFor(ctx, cancel, tx, err, over)
}

// addAckedLocked is AddAcked's add, which waits for the acknowledgements
// until acking ends.
func (s *Session) addAckedLocked(ctx, acking context.Context, acked []*kgo.Record, then func() []*kgo.Record) (*txn, error) {
	acks := make(chan error, len(acked))
	tx, err := s.addLocked(ctx, acked, acks)
	if err != nil {
		return nil, err
	}
	var errs []error
	for range acked {
		select {
		case err := <-acks:
			errs = append(errs, err)
		case <-acking.Done():
			// What builds on the records cannot join without them, nor
			// they commit without it: the transaction aborts, and the
			// loop, which may wait in a poll, must end it.
			s.broken.Store(true)
			s.wake()
			return nil, context.Cause(acking)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if _, err := s.addLocked(ctx, then(), nil); err != nil {
		return nil, err
	}
	return tx, nil
}

// linger is how long a produced record waits before it is sent. The
// commit sends what waits (Flush), so a transaction's records go out
// together, in one produce request, where records sent as they are
// written went out in two or more, one per handler that wrote while the
// previous request was in flight. A batch handled for longer sends its
// records every linger, and a writer that awaits its records
// (AddAcked) sends them at once.
const linger = 5 * time.Millisecond

// kick makes cl send what it holds, without waiting: a Flush whose
// context is done stops every linger and returns. A record whose topic
// the client has not written to yet waits for its metadata first, and
// then for its linger.
func kick(cl txnClient) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = cl.Flush(ctx)
}

// add produces records into the open transaction and returns it.
func (s *Session) add(ctx context.Context, records []*kgo.Record) (*txn, error) {
	return s.locked(ctx, func() (*txn, error) { return s.addLocked(ctx, records, nil) })
}

// locked runs add with s.mu read-locked (rlock), and wakes the loop once a
// write joined the transaction.
func (s *Session) locked(ctx context.Context, add func() (*txn, error)) (*txn, error) {
	if err := s.rlock(ctx); err != nil {
		return nil, err
	}
	tx, err := add()
	s.mu.RUnlock()
	if err == nil {
		s.wake()
	}
	return tx, err
}

// addLocked is add, with s.mu read-locked by the caller, who wakes the
// loop once it unlocks; acks, if set, receives each record's outcome
// (franz-go sets its Partition and Offset), and the records are sent at
// once.
func (s *Session) addLocked(ctx context.Context, records []*kgo.Record, acks chan<- error) (*txn, error) {
	if !s.open.Load() || s.cl == nil {
		return nil, ErrRebalancing
	}
	if Stale(ctx, s.epoch.Load()) {
		return nil, ErrStaleRead
	}
	tx := s.cur
	for _, r := range records {
		if r.Context == nil {
			r.Context = context.Background()
		}
		s.cl.Produce(r.Context, r, func(r *kgo.Record, err error) {
			if err != nil {
				s.logger.Warn("produce in transaction", "topic", r.Topic, "error", err)
				s.broken.Store(true)
				if abandon := s.abandon.Load(); abandon != nil {
					(*abandon)()
				}
				s.wake()
			}
			if acks != nil {
				acks <- err
			}
		})
	}
	if acks != nil {
		kick(s.cl)
	}
	if len(records) > 0 {
		s.produced.Store(true)
	}
	s.dirty.Store(true)
	return tx, nil
}

// rlock read-locks s.mu, which a commit holds while it ends. A handler's
// write waits for it as long as it takes (no commit runs while a batch is
// handled); any other waits no longer than ctx allows, which its budget
// ends: an end the coordinator keeps refusing is asked again for up to
// endTimeout, and an HTTP request must get its 503 long before.
func (s *Session) rlock(ctx context.Context) error {
	if _, handling := RecordFromCtx(ctx); handling || s.mu.TryRLock() {
		if handling {
			s.mu.RLock()
		}
		return nil
	}
	locked := make(chan struct{})
	go func() {
		s.mu.RLock()
		close(locked)
	}()
	select {
	case <-locked:
		return nil
	case <-ctx.Done():
	}
	go func() {
		<-locked
		s.mu.RUnlock()
	}()
	return context.Cause(ctx)
}

// keepPartition marks, in its context, a record whose writer chose its
// partition (WithPartition).
type keepPartition struct{}

var keepPartitionCtx = context.WithValue(context.Background(), keepPartition{}, true)

// WithPartition marks r to be written to partition p, whatever its key: a
// record co-partitioned with another aggregate than its key's
// (store.Config.PartitionKey), or archived beside its changelog record.
func WithPartition(r *kgo.Record, p int32) *kgo.Record {
	r.Partition, r.Context = p, keepPartitionCtx
	return r
}

// kgoPartitioner puts a keyed record where the Java client's default
// partitioner does (murmur2 of the key), unless its writer chose its
// partition (a record co-partitioned with another aggregate).
var kgoPartitioner = kgo.BasicConsistentPartitioner(func(topic string) func(*kgo.Record, int) int {
	keyed := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	return func(r *kgo.Record, n int) int {
		if r.Context != nil && r.Context.Value(keepPartition{}) != nil {
			return int(r.Partition)
		}
		return keyed.Partition(r, n)
	}
})

// producers is how many transactional producers a session that reads
// topics writes with, one transaction each, in turn. Apache Kafka adds a
// partition to a producer's transaction (KIP-890) only once the
// producer's previous transaction is complete, its markers written, which
// is after its commit is answered; a producer that begins its next
// transaction at once waits for that, and the broker tries again only
// every 20 ms by default (add.partitions.to.txn.retry.backoff.ms). The
// next producer in turn ended its transaction one commit earlier.
const producers = 2

// TransactionalIDs returns the transactional ids of the producers of a
// session whose TransactionalID is base: base itself, then base-1, and so
// on. Taking them all aborts what an instance left open.
func TransactionalIDs(base string) []string {
	ids := []string{base}
	for i := 1; i < producers; i++ {
		ids = append(ids, fmt.Sprintf("%s-%d", base, i))
	}
	return ids
}

// transactionTimeout is how long the broker lets a transaction stay open
// before it aborts it.
func (s *Session) transactionTimeout() time.Duration {
	return cmp.Or(s.cfg.TransactionTimeout, 10*time.Second)
}

// RebalanceTimeout is how long a member of a group that rebalances has to
// join it again (franz-go's default): one that does not, paused say, loses
// its partitions then, however long its session timeout.
const RebalanceTimeout = time.Minute

// HeartbeatInterval is how often a member of a group of that session
// timeout heartbeats: five times a session at least, and at most 300 ms
// apart.
func HeartbeatInterval(sessionTimeout time.Duration) time.Duration {
	return min(sessionTimeout/5, 300*time.Millisecond)
}

func (s *Session) sessionTimeout() time.Duration {
	return cmp.Or(s.cfg.Kafka.SessionTimeout, 10*time.Second)
}

// connect makes the franz-go clients: a consumer group on the group's
// topics whose transactions, written by producers in turn, commit its
// offsets (groupTxn), or a transactional producer alone when there are
// none.
func (s *Session) connect() (txnClient, error) {
	k := s.cfg.Kafka
	opts, err := KgoOptions(k)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ClientID(s.cfg.Group),
		kgo.WithLogger(kgoLogger{l: s.logger}),
		kgo.WithHooks(s.cfg.Hooks...),
	)
	txnTimeout := s.transactionTimeout()
	producer := func(txnID string) (txnProducer, error) {
		aborted := new(atomic.Bool)
		cl, err := kgo.NewClient(append(slices.Clone(opts),
			kgo.WithLogger(kgoLogger{s.logger, aborted}),
			kgo.TransactionalID(txnID),
			kgo.TransactionTimeout(txnTimeout),
			// A record that cannot be written within the transaction's
			// time fails, and its transaction aborts.
			kgo.RecordDeliveryTimeout(txnTimeout),
			kgo.RecordPartitioner(kgoPartitioner),
			kgo.ProducerLinger(s.linger),
			// Small records on a local network: compressing costs more CPU
			// than the bytes it saves.
			kgo.ProducerBatchCompression(kgo.NoCompression()),
			// In a group, it sends the group's offsets
			// (groupTxn.commitOffsets).
			kgo.MaxVersions(groupVersions()),
		)...)
		if err != nil {
			return txnProducer{}, refusedSettings(err)
		}
		// The producer takes its transactional id now rather than at its
		// first write: that aborts what a client before it left open under
		// the id (replaced after a failed end, or a restarted instance's
		// predecessor), whose pending offsets and records would otherwise
		// hold up the restore of the partitions, and every reader of what
		// it wrote to, until the transaction timed out. Failing here, it
		// takes it at its first write.
		ctx, cancel := context.WithTimeout(s.running, 5*time.Second)
		defer cancel()
		if _, _, err := cl.ProducerID(ctx); err != nil {
			s.logger.Warn("take the transactional id", "transactional_id", txnID, "error", err)
		}
		return txnProducer{cl, txnID, aborted}, nil
	}
	if len(s.topics) == 0 {
		p, err := producer(s.cfg.TransactionalID)
		if err != nil {
			return nil, err
		}
		return producerOnly{p}, nil
	}
	g := &groupTxn{group: s.cfg.Group, logger: s.logger, offsetsRead: s.offsetsRead}
	for _, id := range TransactionalIDs(s.cfg.TransactionalID) {
		p, err := producer(id)
		if err != nil {
			g.closeProducers()
			return nil, err
		}
		g.producers = append(g.producers, p)
	}
	sessionTimeout := s.sessionTimeout()
	opts = append(opts,
		kgo.WithHooks(refusedGroup{s}),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		// Offsets are committed in the producers' transactions only.
		kgo.DisableAutoCommit(),
		// A fetch answers as soon as anything is there; under load, what
		// arrives while a batch is handled is the next batch.
		kgo.FetchMinBytes(int32(max(k.FetchMinBytes, 1))),
		kgo.FetchMaxWait(max(cmp.Or(k.FetchMaxWait, 500*time.Millisecond), 10*time.Millisecond)),
		kgo.SessionTimeout(sessionTimeout),
		kgo.RebalanceTimeout(RebalanceTimeout),
		// A member learns of a rebalance from a heartbeat's answer:
		// frequent ones hand a dead instance's partitions over sooner.
		kgo.HeartbeatInterval(HeartbeatInterval(sessionTimeout)),
		// Every member gets the same partition numbers of every topic it
		// reads (all have one count): the co-partitioning that lets an
		// instance own a key's command, state and replies together. Range
		// too, while a member of a build before copartitioned is in the
		// group.
		kgo.Balancers(copartitioned{s.cfg.UserData}, advertising{kgo.RangeBalancer(), s.cfg.UserData}),
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
			// franz-go ends ctx only once this returns, and closing the
			// client waits for it: a restore under way ends with Run.
			ctx, stop := context.WithCancel(ctx)
			defer stop()
			defer context.AfterFunc(s.running, stop)()
			s.assigned(ctx, cl, g, assigned)
		}),
		kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) {
			s.revoked(false, g.fail)
		}),
		kgo.OnPartitionsLost(func(context.Context, *kgo.Client, map[string][]int32) {
			s.revoked(true, g.fail)
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		g.closeProducers()
		return nil, refusedSettings(err)
	}
	g.Client = cl
	return g, nil
}

// assigned restores the newly assigned partitions, once g takes them
// (once no former owner's transaction is open on them), then lets the
// loop begin the generation's transactions. (cl is g's client: the
// callback may come before NewClient returns it.)
func (s *Session) assigned(ctx context.Context, cl *kgo.Client, g *groupTxn, assigned map[string][]int32) {
	partitions, err := samePartitions(assigned)
	if err == nil {
		err = g.assign(ctx, cl, assigned)
	}
	if err == nil {
		_, generation := cl.GroupMetadata()
		err = s.cfg.Owner.Assigned(ctx, partitions, generation)
	}
	if err != nil {
		if ctx.Err() != nil {
			return // the client is closing
		}
		select {
		case s.failed <- err:
		default:
		}
		s.wake()
		return
	}
	s.epoch.Add(1) // what was read before the assignment may be another's now
	s.assignedAt.Store(s.revocations.Load())
	s.reopen.Store(true)
	s.wake()
}

// revoked stops writes at once, marks the open transaction to abort
// (mark: groupTxn.fail), abandons the batch in hand and waits for its
// handlers, gives the partitions up and lets the loop abort what is open:
// a transaction begun before a rebalance never commits, and its records
// come again to their next owner. Writes stop before the mark: an end
// between the two would clear it, and the loop, finding writes open,
// begin a transaction unmarked that takes them (after a loss, with no
// offsets to fence it). The batch is abandoned rather than finished: its
// transaction can only abort, and a handler that keeps failing (a
// dependency down) would otherwise hold the group's rebalance, and this
// instance's state of partitions the group gives to another, for as long
// as it fails.
func (s *Session) revoked(lost bool, mark func()) {
	// An assignment whose transactions the loop has not opened yet is
	// over too (franz-go revokes as soon as an assignment's callback
	// returns if the group moved on meanwhile): opened, they would take
	// writes for partitions given up.
	s.revocations.Add(1)
	s.reopen.Store(false)
	s.open.Store(false) // its handlers' writes go to a transaction that aborts
	mark()
	if abandon := s.abandon.Load(); abandon != nil {
		(*abandon)()
	}
	s.batch.Lock()
	s.cfg.Owner.Revoked(lost)
	s.batch.Unlock()
	s.revoking.Store(true)
	s.wake()
}

// samePartitions returns the partition numbers assigned, which the
// assignor makes the same for every topic (range too, while a member of a
// build before copartitioned makes the group use it, as long as every
// member reads the same topics).
func samePartitions(assigned map[string][]int32) ([]int32, error) {
	var first []int32
	var firstTopic string
	for topic, ps := range assigned {
		ps = slices.Sorted(slices.Values(ps))
		if first == nil {
			first, firstTopic = ps, topic
			continue
		}
		if !slices.Equal(first, ps) {
			return nil, fmt.Errorf("assigned partitions %v of %s but %v of %s: the topics must be co-partitioned", first, firstTopic, ps, topic)
		}
	}
	if first == nil {
		first = []int32{}
	}
	return first, nil
}

// producerOnly is the transactional producer of a process that reads
// nothing: its transactions commit no offsets, and nothing fences them.
type producerOnly struct{ txnProducer }

func (c producerOnly) Begin() error { return c.BeginTransaction() }

func (c producerOnly) Prepare(ctx context.Context, _ bool) error { return c.Flush(ctx) }

func (c producerOnly) End(ctx context.Context, commit kgo.TransactionEndTry) (bool, error) {
	if !commit {
		if err := c.AbortBufferedRecords(ctx); err != nil {
			return false, err
		}
	}
	return c.end(ctx, commit)
}

func (c producerOnly) PollRecords(ctx context.Context, _ int) kgo.Fetches {
	if ctx != nil { // nil: what is fetched already, as franz-go's
		<-ctx.Done()
	}
	return nil
}

// copartitioned is the group balancer of the sessions. The partition
// numbers (one count for every topic read) are shared out among the
// members in ranges, in the order of their ids, and each member gets, for
// every number of its range, that partition of every topic it reads. When
// the members read the same topics, that is what the range balancer
// gives; when they do not (a rolling deploy that adds a topic, such as a
// new saga type's replies, or drops one), a member still gets the same
// numbers of each of its topics, where the range balancer shared each
// topic among its readers alone. A number's partition of a topic its
// holder does not read waits, unread, until that member is replaced. Its
// membership carries the instance's advertised data.
type copartitioned struct{ userData []byte }

func (copartitioned) ProtocolName() string { return "copartitioned" }
func (copartitioned) IsCooperative() bool  { return false }

func (b copartitioned) JoinGroupMetadata(topics []string, _ map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version, meta.Topics, meta.Generation, meta.UserData = 3, topics, generation, b.userData
	return meta.AppendTo(nil)
}

func (copartitioned) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b copartitioned) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	if err != nil {
		return nil, nil, err
	}
	return cb, cb.MemberTopics(), nil
}

func (copartitioned) Balance(cb *kgo.ConsumerBalancer, counts map[string]int32) kgo.IntoSyncAssignment {
	type member struct {
		m      *kmsg.JoinGroupResponseMember
		topics []string
	}
	var members []member
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		members = append(members, member{m, meta.Topics})
	})
	plan := cb.NewPlan()
	if len(members) == 0 {
		return plan
	}
	slices.SortFunc(members, func(x, y member) int { return strings.Compare(x.m.MemberID, y.m.MemberID) })
	var n int32 // the partition count (process.Run refuses topics whose counts differ)
	for _, c := range counts {
		n = max(n, c)
	}
	per, rest := int(n)/len(members), int(n)%len(members)
	p := int32(0)
	for i, mb := range members {
		take := per
		if i < rest {
			take++
		}
		for range take {
			for _, topic := range mb.topics {
				if p < counts[topic] {
					plan.AddPartition(mb.m, topic, p)
				}
			}
			p++
		}
	}
	return plan
}

// advertising is a group balancer that puts the instance's advertised data
// in its membership (the consumer protocol's user data), where the other
// instances read it.
type advertising struct {
	kgo.GroupBalancer
	userData []byte
}

func (b advertising) JoinGroupMetadata(topics []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	if err := meta.ReadFrom(b.GroupBalancer.JoinGroupMetadata(topics, current, generation)); err != nil {
		meta.Topics = topics
	}
	meta.UserData = b.userData
	return meta.AppendTo(nil)
}

// kgoLogger passes franz-go's warnings and errors to the process's log;
// a transactional producer's also notes when franz-go aborts a
// transaction it was asked to commit (txnProducer.end).
type kgoLogger struct {
	l       *slog.Logger
	aborted *atomic.Bool // a producer's; nil for a consumer
}

// abortedInstead is what franz-go logs when it ends with an abort a
// transaction asked to commit, none of whose produces it saw
// acknowledged (KIP-890: the broker may hold the transaction open);
// EndTransaction then returns nil all the same.
const abortedInstead = "no produce succeeded in this transaction but produces were attempted; issuing an abort to clear any server-side partition registrations"

func (k kgoLogger) Level() kgo.LogLevel {
	if k.aborted != nil {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch {
	case level == kgo.LogLevelError:
		k.l.Error("kafka client: "+msg, keyvals...)
	case level == kgo.LogLevelWarn:
		k.l.Warn("kafka client: "+msg, keyvals...)
	case k.aborted != nil && msg == abortedInstead:
		k.aborted.Store(true)
	}
}

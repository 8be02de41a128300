package messaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// endOnly is a txnClient that records what it is asked and does nothing;
// its polls wait for their context to end.
type endOnly struct{ produced, ended int }

func (c *endOnly) Produce(context.Context, *kgo.Record, func(*kgo.Record, error)) { c.produced++ }
func (c *endOnly) Flush(context.Context) error                                    { return nil }
func (c *endOnly) Begin() error                                                   { return nil }
func (c *endOnly) Prepare(context.Context, bool) error                            { return nil }
func (c *endOnly) End(context.Context, kgo.TransactionEndTry) (bool, error) {
	c.ended++
	return false, nil
}
func (c *endOnly) PollRecords(ctx context.Context, _ int) kgo.Fetches {
	<-ctx.Done()
	return nil
}
func (c *endOnly) PauseFetchPartitions(map[string][]int32) map[string][]int32 { return nil }
func (c *endOnly) ResumeFetchPartitions(map[string][]int32)                   {}
func (c *endOnly) Close()                                                     {}

// Once the loop aborts the open transaction for a rebalance, nothing is
// written until the next transaction begins: a write in between would go
// to no transaction, and its writer could be told it committed.
func TestAnAbortedTransactionTakesNoWrites(t *testing.T) {
	s := NewSession(SessionConfig{}, slog.New(slog.DiscardHandler))
	cl := &endOnly{}
	s.cl, s.begun = cl, true
	s.open.Store(true)
	if _, err := s.abortOpen(cl); err != nil {
		t.Fatal(err)
	}
	if cl.ended != 1 {
		t.Fatalf("abortOpen ended %d transactions, want 1", cl.ended)
	}
	if _, err := s.add(t.Context(), []*kgo.Record{{Topic: "t", Value: []byte("v")}}); !errors.Is(err, ErrRebalancing) {
		t.Errorf("a write after the abort: got %v, want ErrRebalancing", err)
	}
	if cl.produced != 0 {
		t.Errorf("%d records produced with no transaction open, want none", cl.produced)
	}
}

// An assignment whose restore failed stops the loop even when it fails
// while the loop is not polling yet (wake then has no poll to end): the
// next poll does not wait for records that may never come.
func TestAFailedAssignmentIsNotMissedByTheNextPoll(t *testing.T) {
	s := NewSession(SessionConfig{}, slog.New(slog.DiscardHandler))
	s.failed <- errors.New("restore failed")
	s.wake() // no poll to end yet
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		s.poll(t.Context(), &endOnly{})
	}()
	select {
	case <-polled:
	case <-time.After(5 * time.Second):
		t.Fatal("the poll still waits 5s after the assignment failed")
	}
}

// An aborted transaction's callbacks run before its writers learn of the
// abort, and the epoch moves after them, before the next transaction
// takes writes: a write made from what was read before the
// abort (perhaps an aborted write) is refused, one read after is taken.
func TestAWriteReadBeforeAnAbortIsRefused(t *testing.T) {
	s := NewSession(SessionConfig{}, slog.New(slog.DiscardHandler))
	cl := &endOnly{}
	s.cl, s.begun = cl, true
	s.open.Store(true)
	before := ReadAt(t.Context(), s.Epoch())
	tx, err := s.add(before, []*kgo.Record{{Topic: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	inCallback := struct {
		epoch uint64
		done  bool
	}{epoch: 99}
	tx.then(func(bool) { inCallback.epoch, inCallback.done = s.Epoch(), isClosed(tx.done) })
	if dirty, err := s.abortOpen(cl); err != nil || !dirty {
		t.Fatalf("abortOpen: dirty %v, error %v; want a transaction with writes aborted", dirty, err)
	}
	if inCallback.epoch != 0 || inCallback.done {
		t.Errorf("in the transaction's callback: epoch %d, writers told %v; want 0 and false (the state is put back first)", inCallback.epoch, inCallback.done)
	}
	if !isClosed(tx.done) || s.Epoch() != 1 {
		t.Fatalf("after the abort: writers told %v, epoch %d; want true and 1", isClosed(tx.done), s.Epoch())
	}

	s.begun = true // the next transaction, as transitions begins it
	s.open.Store(true)
	if _, err := s.add(before, []*kgo.Record{{Topic: "t"}}); !errors.Is(err, ErrStaleRead) {
		t.Errorf("a write read before the abort: got %v, want ErrStaleRead", err)
	}
	if _, err := s.add(ReadAt(t.Context(), s.Epoch()), []*kgo.Record{{Topic: "t"}}); err != nil {
		t.Errorf("a write read after the abort: %v", err)
	}
}

// A revocation that found no transaction begun marks the next one to abort
// (fail); the mark is over once partitions are assigned again, or it
// aborted the new generation's first transaction for nothing. Before an
// assignment it stays: such a transaction could commit no offsets, so
// nothing would fence it.
func TestARevocationsMarkEndsWithTheNextAssignment(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.TransactionalID("mark"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	g := &groupTxn{producers: []txnProducer{{Client: cl, txnID: "mark"}}}
	begin := func() bool {
		t.Helper()
		if err := g.Begin(); err != nil {
			t.Fatal(err)
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.failed
	}
	g.fail()
	if !begin() {
		t.Error("a transaction begun after a revocation, before an assignment: not marked to abort")
	}
	_ = cl.EndTransaction(t.Context(), kgo.TryAbort)
	g.fail()
	g.mu.Lock()
	g.assigned = map[string][]int32{"t": {0}} // as assign does
	g.mu.Unlock()
	if begin() {
		t.Error("a transaction begun after the next assignment: marked to abort by the revocation before it")
	}
}

// A revocation that runs whole while the loop is between its check of the
// revocations and its Begin, franz-go's next assignment taking its
// partitions meanwhile (which clears the mark for the transaction begun),
// leaves writes closed: opened, they would take a write read in the
// generation revoked, before the next one's restore.
func TestARevocationBetweenTheCheckAndTheBeginLeavesWritesClosed(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.TransactionalID("between"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	g := &groupTxn{producers: []txnProducer{{Client: cl, txnID: "between", aborted: new(atomic.Bool)}}}
	g.assigned = map[string][]int32{"t": {0}}
	s := NewSession(SessionConfig{Owner: noOwner{}}, slog.New(slog.DiscardHandler))
	read := ReadAt(t.Context(), s.Epoch())
	hooked := beginHook{g, func() {
		s.revoked(false, g.fail)
		g.mu.Lock()
		g.assigned = map[string][]int32{"t": {0}} // the next assignment's, as assign does
		g.mu.Unlock()
	}}
	s.cl = hooked
	s.reopen.Store(true) // the assignment revoked, not opened yet
	if err := s.transitions(hooked); err != nil {
		t.Fatal(err)
	}
	if s.open.Load() {
		t.Error("writes open after a revocation that came before the transaction began")
	}
	if _, err := s.add(read, []*kgo.Record{{Topic: "t", Value: []byte("v")}}); err == nil {
		t.Error("a write read in the generation revoked joined the transaction")
	}
}

// beginHook is a groupTxn whose Begin runs before first.
type beginHook struct {
	*groupTxn
	before func()
}

func (b beginHook) Begin() error {
	b.before()
	return b.groupTxn.Begin()
}

// noOwner owns nothing and restores nothing.
type noOwner struct{}

func (noOwner) Assigned(context.Context, []int32, int32) error { return nil }
func (noOwner) Revoked(bool)                                   {}
func (noOwner) Distrust(error)                                 {}
func (noOwner) Restore(context.Context) (bool, error)          { return false, nil }

// A revocation closes writes before it marks the open transaction to
// abort: marked first, an end in between cleared the mark, and the loop,
// finding writes open, began a transaction unmarked that took writes for
// the partitions given up.
func TestARevocationClosesWritesBeforeItMarks(t *testing.T) {
	s := NewSession(SessionConfig{Owner: noOwner{}}, slog.New(slog.DiscardHandler))
	s.open.Store(true)
	openAtMark := true
	s.revoked(true, func() { openAtMark = s.open.Load() })
	if openAtMark {
		t.Error("writes open when the revocation marked the transaction to abort")
	}
}

// An assignment the loop had not opened yet when its partitions were
// revoked stays closed: opened, it took writes for partitions given up.
func TestARevocationOvertakingAnAssignmentLeavesWritesClosed(t *testing.T) {
	s := NewSession(SessionConfig{Owner: noOwner{}}, slog.New(slog.DiscardHandler))
	cl := &endOnly{}
	s.cl = cl
	s.reopen.Store(true) // assigned, not opened yet
	s.revoked(false, func() {})
	if err := s.transitions(cl); err != nil {
		t.Fatal(err)
	}
	if s.open.Load() {
		t.Error("writes open after the revocation of the assignment that would have opened them")
	}
}

// A handler whose write is refused as its partitions are given up, or
// whose message's context ended, is not retried, nor logged as an error:
// its work is handed over, as on every rebalance.
func TestAHandlerStoppedByARevocationIsNotLoggedAsAnError(t *testing.T) {
	for name, fail := range map[string]func(*message.Message) error{
		"a write refused": func(*message.Message) error { return fmt.Errorf("publish: %w", ErrRebalancing) },
		"its context ended": func(msg *message.Message) error {
			msg.SetContext(canceled())
			return errors.New("write: context canceled")
		},
	} {
		var buf bytes.Buffer
		logger := Logger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
		calls := 0
		h := retry(time.Millisecond, time.Millisecond, logger)(func(msg *message.Message) ([]*message.Message, error) {
			calls++
			return nil, fail(msg)
		})
		if _, err := h(message.NewMessage("1", nil)); err == nil {
			t.Errorf("%s: got nil, want the error", name)
		}
		if calls != 1 || buf.Len() != 0 {
			t.Errorf("%s: got %d calls and the log %q, want one call and nothing logged", name, calls, buf.String())
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// restoreCounter is an Owner that counts its restores.
type restoreCounter struct {
	noOwner
	restores int
}

func (o *restoreCounter) Restore(context.Context) (bool, error) { o.restores++; return true, nil }

// The last commit of a session that stops, if it aborts, is not followed
// by a restore: the process is going, and a restore would hold its stop
// for as long as reading its state takes, or for ever with Kafka gone.
func TestALastCommitThatAbortsRestoresNothing(t *testing.T) {
	o := &restoreCounter{}
	s := NewSession(SessionConfig{Owner: o}, slog.New(slog.DiscardHandler))
	cl := &endOnly{} // every end aborts
	s.cl, s.begun = cl, true
	s.open.Store(true)
	if _, err := s.add(t.Context(), []*kgo.Record{{Topic: "t", Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	s.finish(cl)
	if o.restores != 0 {
		t.Errorf("restores after the last commit aborted: got %d, want none", o.restores)
	}
}

// blockedRestore is an Owner whose restore waits until released, holding
// the lock its Revoked takes, as the process's partitions do.
type blockedRestore struct {
	noOwner
	mu       sync.Mutex
	entered  chan struct{} // the restore holds mu
	revoking chan struct{} // Revoked was called
	released chan struct{}
}

func (o *blockedRestore) Restore(context.Context) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.entered)
	<-o.released
	return true, nil
}

func (o *blockedRestore) Revoked(bool) {
	close(o.revoking)
	o.mu.Lock()
	defer o.mu.Unlock()
}

// A revocation that comes while a restore after an abort runs leaves
// writes closed: the restore's end does not open them for partitions
// given up meanwhile.
func TestARevocationDuringARestoreLeavesWritesClosed(t *testing.T) {
	o := &blockedRestore{entered: make(chan struct{}), revoking: make(chan struct{}), released: make(chan struct{})}
	s := NewSession(SessionConfig{Owner: o}, slog.New(slog.DiscardHandler))
	cl := &endOnly{}
	s.cl = cl
	restored := make(chan error)
	go func() { restored <- s.restoreAfterAbort(context.Background()) }()
	<-o.entered
	revoked := make(chan struct{})
	go func() { s.revoked(false, func() {}); close(revoked) }()
	<-o.revoking // revoked is under way, its writes closed, waiting for the restore's lock
	close(o.released)
	if err := <-restored; err != nil {
		t.Fatal(err)
	}
	<-revoked
	staysClosed(t, s, cl)
}

// A callback that joins a transaction as it ends runs after the callbacks
// that joined before it, as it would had it joined in time: a store keeps
// the value of the last write it learns committed, and one learnt out of
// order put an older value back after a later abort.
func TestACallbackThatJoinsAnEndingTransactionRunsLast(t *testing.T) {
	x := newTxn()
	var mu sync.Mutex
	var order []string
	ran := func(name string) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, name)
	}
	release := make(chan struct{})
	x.then(func(bool) { <-release; ran("joined before") })
	go x.end(nil)
	for ended := false; !ended; runtime.Gosched() {
		x.mu.Lock()
		ended = x.ended
		x.mu.Unlock()
	}
	late := make(chan struct{})
	go func() { x.then(func(bool) { ran("joined late") }); close(late) }()
	waiting := func() bool { // the late callback's goroutine waits in then
		buf := make([]byte, 1<<20)
		return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("(*txn).then"))
	}
	for deadline := time.Now().Add(10 * time.Second); !waiting(); time.Sleep(time.Millisecond) {
		select {
		case <-late:
			t.Fatal("the late callback ran while an earlier one was still running")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the late callback neither ran nor waited within 10 s")
		}
	}
	close(release)
	<-late
	if !slices.Equal(order, []string{"joined before", "joined late"}) {
		t.Errorf("callbacks ran in the order %v, want the one that joined before first", order)
	}
}

// gatedRevoke is an Owner whose Revoked waits for a gate before it takes
// the lock its Restore takes: a restore may run in between.
type gatedRevoke struct {
	noOwner
	mu       sync.Mutex
	revoking chan struct{} // Revoked was called
	gate     chan struct{}
}

func (o *gatedRevoke) Restore(context.Context) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return true, nil
}

func (o *gatedRevoke) Revoked(bool) {
	close(o.revoking)
	<-o.gate
	o.mu.Lock()
	defer o.mu.Unlock()
}

// A restore after an abort that runs while a revocation is under way,
// before the owner gives its partitions up, opens no writes either.
func TestARestoreWhileARevocationIsUnderWayLeavesWritesClosed(t *testing.T) {
	o := &gatedRevoke{revoking: make(chan struct{}), gate: make(chan struct{})}
	s := NewSession(SessionConfig{Owner: o}, slog.New(slog.DiscardHandler))
	cl := &endOnly{}
	s.cl = cl
	revoked := make(chan struct{})
	go func() { s.revoked(false, func() {}); close(revoked) }()
	<-o.revoking // its writes closed, the partitions not given up yet
	if err := s.restoreAfterAbort(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(o.gate)
	<-revoked
	staysClosed(t, s, cl)
}

// staysClosed checks that the loop's next transitions leave writes
// closed, though the restore asked to open them.
func staysClosed(t *testing.T, s *Session, cl txnClient) {
	t.Helper()
	if !s.reopen.Load() {
		t.Fatal("the restore did not ask to open writes: the case this test is for did not happen")
	}
	if err := s.transitions(cl); err != nil {
		t.Fatal(err)
	}
	if s.open.Load() {
		t.Error("writes open after a restore that a revocation under way overtook")
	}
}

// overEnd is a txnClient whose every end is an abort because the group's
// generation is over, as groupTxn.End reports a refusal of the offsets
// with IllegalGeneration.
type overEnd struct{ endOnly }

func (c *overEnd) End(context.Context, kgo.TransactionEndTry) (bool, error) {
	return false, &GenerationOver{Generation: 1, Err: kerr.IllegalGeneration}
}

// distrusting is an Owner that keeps what Distrust was told.
type distrusting struct {
	noOwner
	told error
}

func (o *distrusting) Distrust(err error) { o.told = err }

// A commit whose offsets the group refused because its generation is over
// aborts, known to be aborted (the writes are put back), and tells the
// Owner that the generation is over; the client is not replaced.
func TestACommitOfAGenerationOverTellsTheOwner(t *testing.T) {
	o := &distrusting{}
	s := NewSession(SessionConfig{Owner: o}, slog.New(slog.DiscardHandler))
	cl := &overEnd{}
	s.cl, s.begun = cl, true
	s.open.Store(true)
	if _, err := s.add(t.Context(), []*kgo.Record{{Topic: "t", Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if committed, err := s.commit(t.Context(), cl, true); committed || err != nil {
		t.Errorf("commit: got %v, %v; want false, nil: an abort, not a failure of the client", committed, err)
	}
	if over := new(GenerationOver); !errors.Is(o.told, ErrAborted) || !errors.As(o.told, &over) {
		t.Errorf("Distrust was told %v, want ErrAborted and a GenerationOver", o.told)
	}
}

// pausing is an endOnly that records the partitions paused and resumed.
type pausing struct {
	endOnly
	paused, resumed []map[string][]int32
}

func (c *pausing) PauseFetchPartitions(p map[string][]int32) map[string][]int32 {
	c.paused = append(c.paused, p)
	return nil
}
func (c *pausing) ResumeFetchPartitions(p map[string][]int32) { c.resumed = append(c.resumed, p) }

// A partition held back again waits twice as long, up to heldMax; it is
// fetched again once its time is up, held no more once a transaction
// that handled it committed, and released at once by a revocation.
func TestAPartitionHeldBackAgainWaitsTwiceAsLong(t *testing.T) {
	s := NewSession(SessionConfig{}, slog.New(slog.DiscardHandler))
	cl := &pausing{}
	p := partitionOf{"t", 3}
	failing := map[partitionOf]bool{p: true}
	var waits []time.Duration
	for range 6 {
		s.holdBack(cl, failing, nil, false)
		waits = append(waits, s.held[p].wait)
		s.held[p] = heldPartition{until: time.Now(), wait: s.held[p].wait, paused: true} // its time is up
		s.resumeHeld(cl)
	}
	if want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute}; !slices.Equal(waits, want) {
		t.Errorf("waits: got %v, want %v", waits, want)
	}
	if len(cl.paused) != 6 || len(cl.resumed) != 6 || !slices.Equal(cl.resumed[0]["t"], []int32{3}) {
		t.Errorf("paused %v, resumed %v: want t/3 six times each", cl.paused, cl.resumed)
	}
	s.holdBack(cl, nil, [][]*kgo.Record{{{Topic: "t", Partition: 4}}}, true)
	if _, held := s.held[p]; !held {
		t.Error("a commit that did not handle the partition forgot it")
	}
	s.holdBack(cl, nil, [][]*kgo.Record{{{Topic: "t", Partition: 3}}}, true)
	if _, held := s.held[p]; held {
		t.Error("a commit that handled the partition did not forget it")
	}
	s.holdBack(cl, failing, nil, false)
	if got := s.held[p].wait; got != heldFirst {
		t.Errorf("held back again once forgotten: waits %v, want %v", got, heldFirst)
	}
	if until, ok := s.heldUntil(); !ok || until.Before(time.Now().Add(heldFirst-time.Second)) {
		t.Errorf("heldUntil: got %v, %v; want about %v from now", until, ok, heldFirst)
	}
	s.revoking.Store(true)
	if err := s.transitions(cl); err != nil {
		t.Fatal(err)
	}
	if len(s.held) != 0 || !slices.Equal(cl.resumed[len(cl.resumed)-1]["t"], []int32{3}) {
		t.Errorf("after a revocation: held %v, last resumed %v; want none held, t/3 resumed", s.held, cl.resumed[len(cl.resumed)-1])
	}
}

// A record given up on at the deadline holds back its partition only if
// it was tried until then: one first tried past it, behind a failing
// record of its worker, failed once, and may be healthy.
func TestOnlyARecordTriedUntilTheDeadlineHoldsBackItsPartition(t *testing.T) {
	s := NewSession(SessionConfig{}, slog.New(slog.DiscardHandler))
	s.handlers["t"] = func(*message.Message) error { return errors.New("fails") }
	for _, tc := range []struct {
		name  string
		until time.Duration // from the delivery
		want  bool
	}{
		{"tried until the deadline", 300 * time.Millisecond, true},
		{"first tried past the deadline", -time.Millisecond, false},
	} {
		ctx := context.WithValue(t.Context(), retryUntilKey{}, time.Now().Add(tc.until))
		if s.deliver(ctx, &kgo.Record{Topic: "t", Partition: 2}) {
			t.Fatalf("%s: a record whose handler fails was acked", tc.name)
		}
		if got := s.takeFailing()[partitionOf{"t", 2}]; got != tc.want {
			t.Errorf("%s: its partition noted failing: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A write outside a handler waits AwaitCommit at most in all: for the
// commit under way, then for its own. Each wait had AwaitCommit of its
// own, so a write that found a slow commit under way waited nearly twice
// as long before its 503.
func TestAWriteOutsideAHandlerWaitsAwaitCommitInAll(t *testing.T) {
	s := NewSession(SessionConfig{}, slog.New(slog.DiscardHandler))
	s.cl, s.begun = &endOnly{}, true // its transactions never end
	s.open.Store(true)
	s.awaitCommit = time.Second
	s.mu.Lock() // a commit under way, which ends after 800 ms
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Send(t.Context(), []*kgo.Record{{Topic: "t", Value: []byte("v")}}) }()
	time.Sleep(800 * time.Millisecond)
	s.mu.Unlock()
	err := <-done
	waited := time.Since(start)
	if !errors.Is(err, ErrCommitPending) {
		t.Fatalf("got %v, want ErrCommitPending", err)
	}
	if waited > 1500*time.Millisecond {
		t.Errorf("waited %s, want AwaitCommit (%s) in all", waited, s.awaitCommit)
	}
}

// A write outside a handler whose records Kafka does not acknowledge
// (AddAcked: an archived saga and its pointer) waits AwaitCommit at most
// too, and its transaction aborts: the pointer cannot join without the
// records' offsets. It waited for as long as the acknowledgements took.
func TestAnAckedWriteWaitsAwaitCommitAtMost(t *testing.T) {
	s := NewSession(SessionConfig{}, slog.New(slog.DiscardHandler))
	s.cl, s.begun = &endOnly{}, true // acknowledges nothing
	s.open.Store(true)
	s.awaitCommit = 100 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		_, err := s.AddAcked(t.Context(), []*kgo.Record{{Topic: "t", Value: []byte("v")}},
			func() []*kgo.Record { return nil }, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrCommitPending) {
			t.Errorf("got %v, want ErrCommitPending", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AddAcked still waits for acknowledgements after 10s")
	}
	if !s.broken.Load() {
		t.Error("the transaction holding records without what builds on them is not marked to abort")
	}
}

// An acknowledged write that gives up marks its transaction to abort and
// wakes the loop to end it: the loop, waiting in a poll, left the
// transaction open, holding back its topics' readers, until something
// else woke it.
func TestAnAckedWriteThatGivesUpWakesTheLoop(t *testing.T) {
	s := NewSession(SessionConfig{}, slog.New(slog.DiscardHandler))
	s.cl, s.begun = &endOnly{}, true // acknowledges nothing
	s.open.Store(true)
	s.awaitCommit = 50 * time.Millisecond
	poll, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.cancelPoll = cancel // the loop waits in a poll
	if _, err := s.AddAcked(t.Context(), []*kgo.Record{{Topic: "t", Value: []byte("v")}},
		func() []*kgo.Record { return nil }, nil); !errors.Is(err, ErrCommitPending) {
		t.Fatalf("got %v, want ErrCommitPending", err)
	}
	select {
	case <-poll.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the loop's poll was not woken")
	}
}

// ackLater acknowledges each record after a while.
type ackLater struct {
	endOnly
	after time.Duration
}

func (c *ackLater) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	time.AfterFunc(c.after, func() { promise(r, nil) })
}

// A caller that goes while its acknowledged write waits for Kafka (a
// client that disconnects from an operator's abort) does not abort the
// transaction every writer shares: its records land. It marked the
// transaction to abort, the batch in hand and the other writers' writes
// with it.
func TestACallerGoneDuringAnAckedWriteAbortsNothing(t *testing.T) {
	s := NewSession(SessionConfig{}, slog.New(slog.DiscardHandler))
	s.cl, s.begun = &ackLater{after: 100 * time.Millisecond}, true
	s.open.Store(true)
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // gone before the acknowledgement comes
	_, err := s.AddAcked(ctx, []*kgo.Record{{Topic: "t", Value: []byte("v")}}, func() []*kgo.Record { return nil }, nil)
	if s.broken.Load() {
		t.Errorf("AddAcked: %v, and the shared transaction is marked to abort because its caller went", err)
	}
}

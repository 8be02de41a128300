package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// owner is a messaging.Owner that remembers what it was assigned.
type owner struct {
	mu        sync.Mutex
	assigned  []int32
	revoked   int
	distrusts int
	lastErr   error // Distrust's
	restores  int
	// onDistrust, if set, runs in Distrust, before it returns.
	onDistrust func()
}

func (o *owner) Assigned(_ context.Context, partitions []int32, _ int32) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.assigned = partitions
	return nil
}

func (o *owner) Revoked(bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.revoked++
	o.assigned = nil
}

func (o *owner) Distrust(err error) {
	o.mu.Lock()
	o.distrusts++
	o.lastErr = err
	hook := o.onDistrust
	o.mu.Unlock()
	if hook != nil {
		hook()
	}
}

func (o *owner) Restore(context.Context) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.restores++
	return true, nil
}

func (o *owner) distrusted() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.distrusts
}

func (o *owner) owns() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.assigned) > 0
}

// startSession runs a session of group on topic in, whose handler is
// handle, until the test ends; hooks see its client.
func startSession(t *testing.T, cfg config.Kafka, group, txnID, in string, handle func(s *messaging.Session, msg *message.Message) error, hooks ...kgo.Hook) (*messaging.Session, *owner) {
	t.Helper()
	o := &owner{}
	s := messaging.NewSession(messaging.WithHooks(messaging.SessionConfig{Kafka: cfg, Group: group, TransactionalID: txnID, Owner: o}, hooks...), quiet())
	s.AddTopic(in)
	msgs, err := s.Subscribe(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	runSession(t, s)
	go func() {
		for msg := range msgs {
			if err := handle(s, msg); err != nil {
				msg.Nack()
				continue
			}
			msg.Ack()
		}
	}()
	return s, o
}

// ackAll adds the topics to s, and acks every message of them.
func ackAll(t *testing.T, s *messaging.Session, topics ...string) {
	t.Helper()
	for _, topic := range topics {
		s.AddTopic(topic)
		msgs, err := s.Subscribe(t.Context(), topic)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for msg := range msgs {
				msg.Ack()
			}
		}()
	}
}

// runSession runs s until the test ends.
func runSession(t *testing.T, s *messaging.Session) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// reply writes the message's payload to out, keyed as it was, on behalf of
// the message: in its transaction.
func reply(out string) func(s *messaging.Session, msg *message.Message) error {
	return func(s *messaging.Session, msg *message.Message) error {
		r, _ := messaging.RecordFromCtx(msg.Context())
		return s.Send(msg.Context(), []*kgo.Record{{Topic: out, Key: r.Key, Value: msg.Payload}})
	}
}

// readCommitted reads topic from its start, committed records only, until
// done says it has enough.
func readCommitted(t *testing.T, cfg config.Kafka, topic string, done func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	return readUntil(t, cfg, topic, done, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
}

// A batch's replies and its consumed offsets commit together: every
// record is answered once, in its key's order, and the group's committed
// offsets reach the end of the input.
func TestSessionCommitsRepliesWithTheOffsets(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "session.in", Partitions: 4}, contracts.TopicSpec{Name: "session.out", Partitions: 4}
	cfg := startKafka(t, in, out)
	startSession(t, cfg, "session", "session-1", in.Name, reply(out.Name))

	const keys, each = 8, 25
	var records []*kgo.Record
	for i := range each {
		for k := range keys {
			records = append(records, &kgo.Record{Topic: in.Name, Key: fmt.Appendf(nil, "k%d", k), Value: fmt.Appendf(nil, "%d", i),
				Headers: []kgo.RecordHeader{{Key: "_watermill_message_uuid", Value: fmt.Appendf(nil, "%d-%d", k, i)}}})
		}
	}
	produce(t, cfg, records...)

	got := readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= keys*each })
	byKey := map[string][]string{}
	for _, r := range got {
		byKey[string(r.Key)] = append(byKey[string(r.Key)], string(r.Value))
	}
	for k := range keys {
		want := make([]string, each)
		for i := range want {
			want[i] = fmt.Sprint(i)
		}
		if key := fmt.Sprintf("k%d", k); !slices.Equal(byKey[key], want) {
			t.Errorf("replies of %s: got %v, want %v: once each, in order", key, byKey[key], want)
		}
	}

	admin := kadm.NewClient(kgoClient(t, cfg))
	eventually(t, "the group's offsets to reach the end of "+in.Name, func() bool {
		committed, err := admin.FetchOffsets(t.Context(), "session")
		ends, eerr := admin.ListEndOffsets(t.Context(), in.Name)
		if err != nil || eerr != nil {
			return false
		}
		ok := true
		ends.Each(func(e kadm.ListedOffset) {
			c, found := committed.Lookup(in.Name, e.Partition)
			ok = ok && (e.Offset == 0 || found && c.At == e.Offset) // an empty partition has nothing to commit
		})
		return ok
	})
}

// bufferedHook tells when the client has fetched a record, before any
// poll hands it out.
type bufferedHook chan *kgo.Record

func (h bufferedHook) OnFetchRecordBuffered(r *kgo.Record) {
	select {
	case h <- r:
	default: // more than the test reads
	}
}

// await returns once the client has fetched the record of that value, or
// after 10 s.
func (h bufferedHook) await(value string) {
	for deadline := time.After(10 * time.Second); ; {
		select {
		case r := <-h:
			if string(r.Value) != value {
				continue
			}
		case <-deadline:
		}
		return
	}
}

// startJoined runs a session of group (transactional id group-1) that
// answers each record of in on out, the first "a" once "b" is fetched too.
// It produces a, then b while a is in hand: b is fetched while a's batch
// is handled, and handed out by the loop's next poll, without waiting.
func startJoined(t *testing.T, cfg config.Kafka, group, in, out string, hooks ...kgo.Hook) (*messaging.Session, *owner) {
	t.Helper()
	buffered := make(bufferedHook, 16)
	o := &owner{}
	s := messaging.NewSession(messaging.WithHooks(messaging.SessionConfig{Kafka: cfg, Group: group, TransactionalID: group + "-1", Owner: o},
		append(hooks, buffered)...), quiet())
	s.AddTopic(in)
	started := make(chan struct{})
	var once sync.Once
	if err := s.Handle(in, func(msg *message.Message) error {
		first := false
		if string(msg.Payload) == "a" {
			once.Do(func() { first = true; close(started) })
		}
		if first {
			buffered.await("b")
		}
		r, _ := messaging.RecordFromCtx(msg.Context())
		return s.Send(msg.Context(), []*kgo.Record{{Topic: out, Key: r.Key, Value: msg.Payload}})
	}); err != nil {
		t.Fatal(err)
	}
	runSession(t, s)
	eventually(t, "the partitions to be assigned", o.owns)
	produce(t, cfg, &kgo.Record{Topic: in, Key: []byte("a"), Value: []byte("a")})
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("a was not handled")
	}
	produce(t, cfg, &kgo.Record{Topic: in, Key: []byte("b"), Value: []byte("b")})
	return s, o
}

// A record fetched while a batch is handled joins the batch's
// transaction: one commit carries both, rather than one each.
func TestARecordFetchedWhileABatchIsHandledJoinsItsTransaction(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "joins.in", Partitions: 1}, contracts.TopicSpec{Name: "joins.out", Partitions: 1}
	cfg := startKafka(t, in, out)
	startJoined(t, cfg, "joins", in.Name, out.Name)
	got := readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 2 })
	if len(got) != 2 || string(got[0].Value) != "a" || string(got[1].Value) != "b" {
		t.Fatalf("%s: got %s, want a then b", out.Name, describe(got))
	}
	// A transaction's records are followed by its commit marker, which
	// takes an offset: b right after a is one transaction.
	if got[1].Offset != got[0].Offset+1 {
		t.Errorf("a's reply at offset %d, b's at %d: two transactions, want one", got[0].Offset, got[1].Offset)
	}
}

// A write outside a handler (an HTTP request's) returns once committed.
func TestSessionWriteOutsideAHandlerReturnsOnceCommitted(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "outside.in", Partitions: 2}, contracts.TopicSpec{Name: "outside.out", Partitions: 2}
	cfg := startKafka(t, in, out)
	s, o := startSession(t, cfg, "outside", "outside-1", in.Name, reply(out.Name))
	eventually(t, "the partitions to be assigned", o.owns)
	eventually(t, "a write to be accepted", func() bool {
		err := s.Send(t.Context(), []*kgo.Record{{Topic: out.Name, Key: []byte("k"), Value: []byte("outside")}})
		// Refused while the first transaction begins, or in one that
		// aborted (franz-go may abort a first transaction asked to
		// commit: TestACommitThatFranzGoAbortsIsNoCommit): not written,
		// and the writer is told so.
		if err != nil && !errors.Is(err, messaging.ErrRebalancing) && !errors.Is(err, messaging.ErrAborted) {
			t.Fatalf("write outside a handler: %v", err)
		}
		return err == nil
	})
	// Committed when Send returned: the last stable offset, up to which
	// read_committed readers read, is past it already.
	stable, err := kadm.NewClient(kgoClient(t, cfg)).ListCommittedOffsets(t.Context(), out.Name)
	if err != nil || stable.Error() != nil {
		t.Fatalf("last stable offsets of %s: %v %v", out.Name, err, stable.Error())
	}
	var readable int64
	stable.Each(func(o kadm.ListedOffset) { readable += o.Offset })
	if readable == 0 {
		t.Errorf("when Send returned, nothing of %s was committed", out.Name)
	}
	got := readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 1 })
	if string(got[0].Value) != "outside" {
		t.Errorf("got %s, want the write", describe(got))
	}
}

// A write that joins a transaction with no records (a store's answer
// read from a write still open, waiting for its outcome) leaves no
// transaction open on the broker: its commit sends the offsets alone, as
// a batch that wrote nothing does. Sent in a transaction that produced
// nothing, they began one there that franz-go did not end.
func TestAJoinWithoutRecordsLeavesNoTransactionOpen(t *testing.T) {
	in := contracts.TopicSpec{Name: "join.in", Partitions: 2}
	cfg := startKafka(t, in)
	s, o := startSession(t, cfg, "join", "join-1", in.Name, func(*messaging.Session, *message.Message) error { return nil })
	eventually(t, "the partitions to be assigned", o.owns)
	eventually(t, "a write without records to be accepted", func() bool {
		err := s.Send(t.Context(), nil)
		if err != nil && !errors.Is(err, messaging.ErrRebalancing) && !errors.Is(err, messaging.ErrAborted) {
			t.Fatalf("write outside a handler: %v", err)
		}
		return err == nil
	})
	described, err := kadm.NewClient(kgoClient(t, cfg)).DescribeTransactions(t.Context(), messaging.TransactionalIDs("join-1")...)
	if err != nil {
		t.Fatalf("describe the transactions: %v", err)
	}
	seen := 0
	for id, d := range described {
		if d.Err != nil {
			continue
		}
		seen++
		if d.State == "Ongoing" {
			t.Errorf("transactional id %s: a transaction is open on the broker (since %d), want none", id, d.StartTimestamp)
		}
	}
	if seen == 0 {
		t.Errorf("described %v: no transactional id of the session, want its own", described)
	}
}

// Opened runs once an assignment's partitions are restored and writes are
// open: a write outside a handler made in it joins the transaction.
func TestOpenedRunsOnceWritesAreOpen(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "opened.in", Partitions: 2}, contracts.TopicSpec{Name: "opened.out", Partitions: 2}
	cfg := startKafka(t, in, out)
	o := &owner{}
	type outcome struct {
		owned bool
		err   error
		wait  func() error
	}
	first := make(chan outcome, 1)
	var s *messaging.Session
	s = messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "opened", TransactionalID: "opened-1", Owner: o,
		Opened: func() {
			wait, err := s.Add(context.Background(), []*kgo.Record{{Topic: out.Name, Key: []byte("k"), Value: []byte("opened")}}, nil)
			select {
			case first <- outcome{o.owns(), err, wait}:
			default:
			}
		}}, quiet())
	s.AddTopic(in.Name)
	if _, err := s.Subscribe(t.Context(), in.Name); err != nil {
		t.Fatal(err)
	}
	runSession(t, s)
	select {
	case got := <-first:
		if !got.owned || got.err != nil {
			t.Fatalf("a write when Opened ran: assigned %v, error %v; want true and nil", got.owned, got.err)
		}
		// A first transaction franz-go aborts is told to the writer
		// (TestACommitThatFranzGoAbortsIsNoCommit); either way it ends.
		if err := got.wait(); err != nil && !errors.Is(err, messaging.ErrAborted) {
			t.Errorf("the write's commit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Opened did not run within 30s")
	}
}

// An instance that lost its partitions while it handled a record (a long
// pause: the group went on without it) cannot commit what it wrote for
// it: a read_committed reader sees only the new owner's reply.
func TestAZombieSessionCannotCommit(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "zombie.in", Partitions: 1}, contracts.TopicSpec{Name: "zombie.out", Partitions: 1}
	cfg := startKafka(t, in, out)

	paused, resume := make(chan struct{}), make(chan struct{})
	wrote := make(chan error, 1)
	var once sync.Once
	_, zombie := startSession(t, cfg, "zombie", "zombie-1", in.Name, func(s *messaging.Session, msg *message.Message) error {
		first := false
		once.Do(func() { first = true })
		if !first {
			return nil // the record again, after the abort: this instance no longer writes
		}
		err := reply(out.Name)(s, msg)
		wrote <- err
		close(paused)
		<-resume // paused, mid-handler, its reply written
		return err
	})
	eventually(t, "the first instance to own the partition", zombie.owns)
	produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("k"), Value: []byte("v")})
	<-paused
	if err := <-wrote; err != nil {
		t.Fatalf("the zombie's write was refused before its commit (%v): the test would prove nothing", err)
	}

	// The group goes on without the paused instance, as after its session
	// timed out, and a second instance takes the partition and answers.
	evict(t, cfg, "zombie")
	startSession(t, cfg, "zombie", "zombie-2", in.Name, func(s *messaging.Session, msg *message.Message) error {
		r, _ := messaging.RecordFromCtx(msg.Context())
		return s.Send(msg.Context(), []*kgo.Record{{Topic: out.Name, Key: r.Key, Value: []byte("live")}})
	})
	readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 1 })

	close(resume) // the zombie's handler returns, and it tries to commit
	eventually(t, "the zombie to learn it lost its partition", func() bool { return !zombie.owns() })
	// A marker after the zombie's try: once it is read, so would be
	// anything the zombie committed before it.
	produce(t, cfg, &kgo.Record{Topic: out.Name, Key: []byte("k"), Value: []byte("marker")})
	got := readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool {
		return slices.ContainsFunc(got, func(r *kgo.Record) bool { return string(r.Value) == "marker" })
	})
	var values []string
	for _, r := range got {
		values = append(values, string(r.Value))
	}
	if !slices.Equal(values, []string{"live", "marker"}) {
		t.Errorf("read committed %s: got %v, want [live marker]: the zombie's reply must never be read", out.Name, values)
	}
}

// A write made outside a handler (an HTTP request, a timer) waits for its
// commit, but not for ever: a commit held up (here by a handler that does
// not finish) gives ErrCommitPending, so a request answers 503 rather than
// hang past its client's patience.
func TestSessionWaitsForACommitAWhileOnly(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "await.in", Partitions: 1}, contracts.TopicSpec{Name: "await.out", Partitions: 1}
	cfg := startKafka(t, in, out)
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s, o := startSession(t, cfg, "await", "await-1", in.Name, func(*messaging.Session, *message.Message) error {
		once.Do(func() { close(held) })
		<-release
		return nil
	})
	eventually(t, "the partition to be assigned", o.owns)
	produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("k"), Value: []byte("v")})
	<-held
	messaging.SetAwaitCommit(s, 50*time.Millisecond)
	write := func(value string) error {
		return s.Send(t.Context(), []*kgo.Record{{Topic: out.Name, Key: []byte("k"), Value: []byte(value)}})
	}
	start := time.Now()
	if err := write("slow"); !errors.Is(err, messaging.ErrCommitPending) {
		t.Errorf("a write whose commit is held up: got %v, want ErrCommitPending", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("a write whose commit is held up returned after %s, want about 50 ms", waited)
	}
	close(release)
	// Once the batch is through, writes wait for their commit and succeed.
	messaging.SetAwaitCommit(s, messaging.AwaitCommit)
	if err := write("next"); err != nil {
		t.Errorf("the next write: %v", err)
	}
}

// A write outside a handler by an instance that lost its partitions and
// does not know it yet is fenced too, although its transaction consumed
// nothing: it is refused, and never read.
func TestAZombieSessionCannotCommitAWriteOutsideAHandler(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "outzombie.in", Partitions: 1}, contracts.TopicSpec{Name: "outzombie.out", Partitions: 1}
	cfg := startKafka(t, in, out)
	s, o := startSession(t, cfg, "outzombie", "outzombie-1", in.Name, reply(out.Name))
	eventually(t, "the partition to be assigned", o.owns)
	// Something consumed and committed, so the group has offsets.
	produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("k"), Value: []byte("first"),
		Headers: []kgo.RecordHeader{{Key: "_watermill_message_uuid", Value: []byte("1")}}})
	readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 1 })

	evict(t, cfg, "outzombie")
	err := s.Send(t.Context(), []*kgo.Record{{Topic: out.Name, Key: []byte("k"), Value: []byte("zombie")}})
	if !errors.Is(err, messaging.ErrFenced) && !errors.Is(err, messaging.ErrRebalancing) {
		t.Fatalf("a write of an evicted instance: got %v, want ErrFenced (or ErrRebalancing, had it learned first)", err)
	}
	produce(t, cfg, &kgo.Record{Topic: out.Name, Key: []byte("k"), Value: []byte("marker")})
	got := readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool {
		return slices.ContainsFunc(got, func(r *kgo.Record) bool { return string(r.Value) == "marker" })
	})
	for _, r := range got {
		if string(r.Value) == "zombie" {
			t.Errorf("read committed %s: the evicted instance's write was read: %s", out.Name, describe(got))
		}
	}
}

// evict takes every member out of group, as the coordinator does with a
// member whose session timed out.
func evict(t *testing.T, cfg config.Kafka, group string) {
	t.Helper()
	admin := kadm.NewClient(kgoClient(t, cfg))
	described, err := admin.DescribeGroups(t.Context(), group)
	if err != nil || described.Error() != nil {
		t.Fatalf("describe group %s: %v %v", group, err, described.Error())
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group = group
	for _, m := range described[group].Members {
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID = m.MemberID
		leave.Members = append(leave.Members, lm)
	}
	if _, err := leave.RequestWith(t.Context(), kgoClient(t, cfg)); err != nil {
		t.Fatalf("evict the members of %s: %v", group, err)
	}
}

// startRefusing starts a session of group name on the embedded broker,
// whose fault injection can refuse the writes to the topic refused, once
// it owns its partitions; it replies on kept.
func startRefusing(t *testing.T, name string) (*devstack.Stack, config.Kafka, *messaging.Session, *owner, contracts.TopicSpec, contracts.TopicSpec) {
	t.Helper()
	in, kept, refused := contracts.TopicSpec{Name: name + ".in", Partitions: 1}, contracts.TopicSpec{Name: name + ".kept", Partitions: 1},
		contracts.TopicSpec{Name: name + ".refused", Partitions: 1}
	stack, cfg := startEmbedded(t, in, kept, refused)
	s, o := startSession(t, cfg, name, name+"-1", in.Name, reply(kept.Name))
	// Assigned, a session takes writes once its first transaction begins;
	// before, a write is refused with ErrRebalancing.
	eventually(t, "the session to take writes", func() bool { return messaging.TakesWrites(s) })
	return stack, cfg, s, o, kept, refused
}

// startEmbedded starts the embedded broker and registry with the given
// topics, for a test that injects faults or reads the requests; with
// KAFKA_BROKERS set, the test is skipped.
func startEmbedded(t *testing.T, topics ...contracts.TopicSpec) (*devstack.Stack, config.Kafka) {
	t.Helper()
	stack := devstack.StartForTest(t)
	if stack.Cluster() == nil {
		t.Skip("needs the embedded broker")
	}
	cfg := config.Kafka{Brokers: stack.Brokers(), SchemaRegistryURL: stack.RegistryURL(), AutoRegisterSchemas: true}
	if err := messaging.EnsureTopics(cfg, topics); err != nil {
		t.Fatal(err)
	}
	return stack, cfg
}

// A transaction's writes commit all or none: a write the broker refuses
// aborts the others of its transaction, and Send says so, once the state
// that holds them is dropped (Owner.Distrust): the writer must not read
// them back.
func TestSessionWritesAllOrNothing(t *testing.T) {
	stack, cfg, s, o, kept, refused := startRefusing(t, "all")
	write := func(value string, topics ...string) error {
		var msgs []*kgo.Record
		for _, topic := range topics {
			msgs = append(msgs, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte(value)})
		}
		return s.Send(t.Context(), msgs)
	}

	// While the state is being dropped, Send must not return: give it a
	// while to do so wrongly.
	returned := make(chan struct{})
	var early atomic.Bool
	o.mu.Lock()
	o.onDistrust = func() {
		select {
		case <-returned:
			early.Store(true)
		case <-time.After(300 * time.Millisecond):
		}
	}
	o.mu.Unlock()
	fault := stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: refused.Name, Err: kerr.TopicAuthorizationFailed, Count: -1})
	err := write("refused", kept.Name, refused.Name)
	close(returned)
	if err == nil {
		t.Fatal("Send with one of its writes refused: got nil, want an error")
	}
	if o.distrusted() == 0 || early.Load() {
		t.Errorf("Send returned its error (%v) before the state that holds its writes was dropped (dropped %d times)", err, o.distrusted())
	}
	fault.Remove()
	// Refused while the session restores, or aborted (now and then
	// franz-go aborts a first transaction it was asked to commit:
	// TestACommitThatFranzGoAbortsIsNoCommit), a write is tried again.
	eventually(t, "a write to be accepted", func() bool {
		err := write("accepted", kept.Name)
		if err != nil && !errors.Is(err, messaging.ErrRebalancing) && !errors.Is(err, messaging.ErrAborted) {
			t.Fatalf("write after the fault: %v", err)
		}
		return err == nil
	})
	got := readCommitted(t, cfg, kept.Name, func(got []*kgo.Record) bool { return len(got) >= 1 })
	if len(got) != 1 || string(got[0].Value) != "accepted" {
		t.Errorf("%s: got %s, want the accepted write alone", kept.Name, describe(got))
	}
}

// A record whose handler keeps failing (a dependency down) does not hold
// its transaction open past half the transaction's timeout: the broker
// would abort it and fence the producer, and the client would be
// replaced. The transaction aborts, what it wrote is put back, and the
// records come again, until the handler succeeds.
func TestARecordThatKeepsFailingDoesNotHoldItsTransaction(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "held.in", Partitions: 1}, contracts.TopicSpec{Name: "held.out", Partitions: 1}
	cfg := startKafka(t, in, out)
	var failing atomic.Bool
	failing.Store(true)
	o := &owner{}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "held", TransactionalID: "held-1", Owner: o,
		TransactionTimeout: 2 * time.Second}, quiet())
	s.AddTopic(in.Name)
	if err := s.Handle(in.Name, func(msg *message.Message) error {
		if string(msg.Payload) == "fails" && failing.Load() {
			return errors.New("the registry is down")
		}
		return reply(out.Name)(s, msg)
	}); err != nil {
		t.Fatal(err)
	}
	runSession(t, s)
	eventually(t, "the partition to be assigned", o.owns)
	produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("a"), Value: []byte("handled")},
		&kgo.Record{Topic: in.Name, Key: []byte("b"), Value: []byte("fails")})
	eventually(t, "the transaction holding the handled record's reply to abort", func() bool { return o.distrusted() > 0 })
	failing.Store(false)
	// Once more, after both: every reply the topic holds before it
	// is there.
	readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 2 })
	produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("c"), Value: []byte("last")})
	var values []string
	for _, r := range readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool {
		return slices.ContainsFunc(got, func(r *kgo.Record) bool { return string(r.Value) == "last" })
	}) {
		values = append(values, string(r.Value))
	}
	slices.Sort(values)
	if want := []string{"fails", "handled", "last"}; !slices.Equal(values, want) {
		t.Errorf("%s: got %q, want each reply once: %q", out.Name, values, want)
	}
}

// A record that keeps failing holds back its partition, not the
// instance: once its transaction aborted, its partition is not fetched
// for a while, and the records of the other partitions, handled again,
// commit while it still fails; it is fetched again, and handled, later.
func TestARecordThatKeepsFailingHoldsBackOnlyItsPartition(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "stuck.in", Partitions: 2}, contracts.TopicSpec{Name: "stuck.out", Partitions: 1}
	cfg := startKafka(t, in, out)
	var failing atomic.Bool
	failing.Store(true)
	var tries atomic.Int32
	o := &owner{}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "stuck", TransactionalID: "stuck-1", Owner: o,
		TransactionTimeout: 2 * time.Second}, quiet())
	messaging.SetHeldFirst(s, time.Second)
	s.AddTopic(in.Name)
	if err := s.Handle(in.Name, func(msg *message.Message) error {
		if err := reply(out.Name)(s, msg); err != nil || string(msg.Payload) != "fails" || !failing.Load() {
			return err
		}
		tries.Add(1)
		return errors.New("a bug no retry cures") // after a write: the transaction aborts with writes, and the state is restored
	}); err != nil {
		t.Fatal(err)
	}
	runSession(t, s)
	eventually(t, "the partitions to be assigned", o.owns)
	manual := kgoClient(t, cfg, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	write := func(p int32, value string) {
		t.Helper()
		if err := manual.ProduceSync(t.Context(), &kgo.Record{Topic: in.Name, Partition: p, Key: []byte(value), Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	write(0, "fails")
	eventually(t, "the failing record to be tried", func() bool { return tries.Load() > 0 })
	write(1, "handled") // fetched while the batch of the failing one is in hand
	// While the other still fails.
	readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool {
		return slices.ContainsFunc(got, func(r *kgo.Record) bool { return string(r.Value) == "handled" })
	})
	if o.distrusted() == 0 {
		t.Error("the failing record's transaction did not abort with its writes")
	}
	if got := messaging.HeldBack(s); got != 1 {
		t.Errorf("partitions_held_back: got %v, want 1", got)
	}
	// A write outside a handler wakes the loop while it waits for the held
	// partition's time: it commits at once, not once that time is up.
	messaging.SetAwaitCommit(s, time.Second)
	if err := s.Send(context.Background(), []*kgo.Record{{Topic: out.Name, Value: []byte("sent")}}); err != nil {
		t.Errorf("a write outside a handler while a partition is held back: %v", err)
	}
	// Fetched again once its time is up, it fails alone in its
	// transaction: held back before, it is held back again, not tried at
	// once for as long as it fails, the records that come meanwhile
	// waiting for it.
	before := tries.Load()
	eventually(t, "the held partition to be fetched again", func() bool { return tries.Load() > before })
	eventually(t, "the partition to be held back again", func() bool { return messaging.HeldBack(s) == 1 })
	failing.Store(false)
	var values []string
	for _, r := range readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 3 }) {
		values = append(values, string(r.Value))
	}
	slices.Sort(values)
	if want := []string{"fails", "handled", "sent"}; !slices.Equal(values, want) {
		t.Errorf("%s: got %q, want each reply once: %q", out.Name, values, want)
	}
	if got := messaging.HeldBack(s); got != 0 {
		t.Errorf("partitions_held_back once it was handled: got %v, want 0", got)
	}
}

// A partition is held back only beside others: when every record of the
// batch fails (a dependency down), nothing else could go on, and the
// records are tried again as soon as their transaction aborted, not a
// held-back partition's 5 s later.
func TestARecordFailingAloneIsTriedAgainAtOnce(t *testing.T) {
	in := contracts.TopicSpec{Name: "alone.in", Partitions: 1}
	cfg := startKafka(t, in)
	var tries atomic.Int32
	o := &owner{}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "alone", TransactionalID: "alone-1", Owner: o,
		TransactionTimeout: 2 * time.Second}, quiet())
	s.AddTopic(in.Name)
	if err := s.Handle(in.Name, func(*message.Message) error {
		tries.Add(1)
		return errors.New("the registry is down")
	}); err != nil {
		t.Fatal(err)
	}
	runSession(t, s)
	eventually(t, "the partition to be assigned", o.owns)
	produce(t, cfg, &kgo.Record{Topic: in.Name, Value: []byte("fails")})
	// Tried every 100 ms, for 1 s a transaction: 15 tries are in the
	// second one, which a partition held back would begin after 6 s.
	deadline := time.Now().Add(4 * time.Second)
	for tries.Load() < 15 {
		if time.Now().After(deadline) {
			t.Fatalf("tried %d times in 4 s: the record was held back after its transaction aborted", tries.Load())
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// Handlers that are slow but succeed are not cut at half the transaction
// timeout: their transaction commits, where cutting it made it abort and
// come again as slow, for ever.
func TestSlowHandlersThatSucceedCommit(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "slow.in", Partitions: 1}, contracts.TopicSpec{Name: "slow.out", Partitions: 1}
	cfg := startKafka(t, in, out)
	o := &owner{}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "slow", TransactionalID: "slow-1", Owner: o,
		TransactionTimeout: 3 * time.Second}, quiet())
	s.AddTopic(in.Name)
	if err := s.Handle(in.Name, func(msg *message.Message) error {
		time.Sleep(50 * time.Millisecond) // 40 of one key: 2 s, more than the 1.5 s a failing one is given, 1 s within the timeout
		return reply(out.Name)(s, msg)
	}); err != nil {
		t.Fatal(err)
	}
	runSession(t, s)
	eventually(t, "the partition to be assigned", o.owns)
	var records []*kgo.Record
	for i := range 40 {
		records = append(records, &kgo.Record{Topic: in.Name, Key: []byte("k"), Value: []byte(fmt.Sprint(i))})
	}
	produce(t, cfg, records...)
	readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 40 })
	if n := o.distrusted(); n != 0 {
		t.Errorf("transactions aborted: %d, want none", n)
	}
}

// A dead letter is counted once its transaction commits: one whose
// transaction aborted is written again when its message comes again, and
// counted then.
func TestADeadLetterIsCountedOnceCommitted(t *testing.T) {
	in := contracts.TopicSpec{Name: "counted.in", Partitions: 1}
	stack, cfg := startEmbedded(t, in, contracts.TopicSpec{Name: contracts.TopicDeadLetter, Partitions: 1})
	o := &owner{}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "counted", TransactionalID: "counted-1", Owner: o}, quiet())
	metrics := prometheus.NewRegistry()
	handlers, err := messaging.NewHandlers(messaging.HandlersConfig{DeadLetter: messaging.PublisherOn(s), Metrics: metrics,
		Subscriber: "messaging.Session"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	bad := errors.New("cannot be handled")
	s.AddTopic(in.Name)
	if err := s.Handle(in.Name, handlers.Wrap("counted", in.Name, messaging.Poison(func(*message.Message) error { return bad }, bad))); err != nil {
		t.Fatal(err)
	}
	// The first dead letter's write is refused: its transaction aborts.
	fault := stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: contracts.TopicDeadLetter, Err: kerr.TopicAuthorizationFailed})
	runSession(t, s)
	produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("k"), Value: []byte("poison")})
	if err := fault.Wait(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	letters := readCommitted(t, cfg, contracts.TopicDeadLetter, func(got []*kgo.Record) bool { return len(got) >= 1 })
	if len(letters) != 1 {
		t.Fatalf("dead letters: got %s, want one", describe(letters))
	}
	eventually(t, "the dead letter counted", func() bool {
		return series(t, metrics, "messages_dead_lettered_total", map[string]string{"topic": in.Name}).GetCounter().GetValue() >= 1
	})
	if got := series(t, metrics, "messages_dead_lettered_total", map[string]string{"topic": in.Name}).GetCounter().GetValue(); got != 1 {
		t.Errorf("messages_dead_lettered_total: got %v, want 1: the dead letter of the aborted transaction counted too", got)
	}
}

// A transaction known to be aborted says so to Distrust (ErrAborted), and
// tells each writer's over that it did not commit before the owner is
// asked to serve again (Restore): a state can put the writes back in over.
func TestAnAbortedTransactionTellsItsWritersBeforeRestore(t *testing.T) {
	stack, _, s, o, kept, refused := startRefusing(t, "told")

	fault := stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: refused.Name, Err: kerr.TopicAuthorizationFailed, Count: -1})
	defer fault.Remove()
	type told struct {
		committed      bool
		restoresBefore int
	}
	overs := make(chan told, 1)
	o.mu.Lock()
	restoresAtStart := o.restores
	o.mu.Unlock()
	wait, err := s.Add(t.Context(), []*kgo.Record{{Topic: kept.Name, Value: []byte("a")}, {Topic: refused.Name, Value: []byte("b")}},
		func(committed bool) {
			o.mu.Lock()
			defer o.mu.Unlock()
			overs <- told{committed, o.restores}
		})
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := wait(); err == nil {
		t.Fatal("the wait of a transaction with a refused write: got nil, want an error")
	}
	select {
	case got := <-overs:
		if got.committed || got.restoresBefore != restoresAtStart {
			t.Errorf("over: got committed=%v after %d Restores, want false before any", got.committed, got.restoresBefore-restoresAtStart)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("over was not called within 10s")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !errors.Is(o.lastErr, messaging.ErrAborted) {
		t.Errorf("Distrust: got %v, want ErrAborted", o.lastErr)
	}
}

// The records of a key are handled one at a time, in offset order, by the
// handler given to Handle, while a handler held up on another key does not
// hold them back; a nacked record is handled again before its key's next.
func TestSessionHandlesAKeyInOrderAndKeysInParallel(t *testing.T) {
	in := contracts.TopicSpec{Name: "workers.in", Partitions: 1} // every key in one partition, one batch
	cfg := startKafka(t, in)
	var (
		mu      sync.Mutex
		handled = map[string][]int64{} // acked offsets by key
		busy    = map[string]bool{}    // a handler of the key is running
		nacked  bool
	)
	release := make(chan struct{})
	o := &owner{}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "workers", TransactionalID: "workers-1", Owner: o}, quiet())
	s.AddTopic(in.Name)
	err := s.Handle(in.Name, func(msg *message.Message) error {
		r, _ := messaging.RecordFromCtx(msg.Context())
		key := string(r.Key)
		mu.Lock()
		if busy[key] {
			t.Errorf("two handlers of key %s at once (offset %d)", key, r.Offset)
		}
		busy[key] = true
		fail := key == "flaky" && !nacked
		nacked = nacked || fail
		mu.Unlock()
		defer func() {
			mu.Lock()
			busy[key] = false
			mu.Unlock()
		}()
		if key == "slow" {
			select {
			case <-release:
			case <-msg.Context().Done():
				return msg.Context().Err()
			}
		}
		if fail {
			return errors.New("nacked once")
		}
		mu.Lock()
		handled[key] = append(handled[key], r.Offset)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if err := s.Handle(in.Name, func(*message.Message) error { return nil }); err == nil {
		t.Errorf("a second Handle of %s: got nil error, want one", in.Name)
	}
	runSession(t, s)

	// slow first: its handler holds on while the other keys, on other
	// workers, go on.
	keys := []string{"slow", "flaky"}
	taken := map[int]bool{messaging.WorkerOf(in.Name, "slow"): true, messaging.WorkerOf(in.Name, "flaky"): true}
	if len(taken) != 2 {
		t.Fatalf("slow and flaky on one worker: the test needs other keys")
	}
	for i := 0; len(keys) < 5; i++ {
		if k := fmt.Sprintf("k%d", i); !taken[messaging.WorkerOf(in.Name, k)] {
			taken[messaging.WorkerOf(in.Name, k)] = true
			keys = append(keys, k)
		}
	}
	const each = 10
	var records []*kgo.Record
	want := map[string][]int64{}
	for i := range each {
		for _, k := range keys {
			want[k] = append(want[k], int64(len(records)))
			records = append(records, &kgo.Record{Topic: in.Name, Key: []byte(k), Value: fmt.Appendf(nil, "%d", i)})
		}
	}
	produce(t, cfg, records...)

	count := func(key string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled[key])
	}
	for _, k := range keys[1:] {
		eventually(t, "the records of "+k+" to be handled while slow's first is held", func() bool { return count(k) == each })
	}
	if got := count("slow"); got != 0 {
		t.Errorf("records of slow handled while its first was held: %d, want 0", got)
	}
	close(release)
	eventually(t, "the records of slow to be handled once released", func() bool { return count("slow") == each })

	mu.Lock()
	defer mu.Unlock()
	if !nacked {
		t.Error("flaky's first record was never nacked: the test proves nothing of a nack")
	}
	for _, k := range keys {
		if !slices.Equal(handled[k], want[k]) {
			t.Errorf("offsets handled of %s: got %v, want %v: each once, in order", k, handled[k], want[k])
		}
	}
}

// A topic added after another got its handler (as a process subscribes
// one topic after the other) is read too, once it has its own.
func TestSessionReadsTopicsAddedOneAfterAnother(t *testing.T) {
	a, b := contracts.TopicSpec{Name: "added.a", Partitions: 1}, contracts.TopicSpec{Name: "added.b", Partitions: 1}
	cfg := startKafka(t, a, b)
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "added", TransactionalID: "added-1", Owner: &owner{}}, quiet())
	got := make(chan string, 2)
	for _, topic := range []string{a.Name, b.Name} {
		s.AddTopic(topic)
		if err := s.Handle(topic, func(*message.Message) error { got <- topic; return nil }); err != nil {
			t.Fatalf("Handle %s: %v", topic, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	produce(t, cfg, &kgo.Record{Topic: a.Name, Value: []byte("a")}, &kgo.Record{Topic: b.Name, Value: []byte("b")})
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case topic := <-got:
			seen[topic] = true
		case err := <-done:
			t.Fatalf("Run returned %v before both topics were read", err)
		case <-time.After(20 * time.Second):
			t.Fatalf("read within 20s: %v, want both %s and %s", seen, a.Name, b.Name)
		}
	}
}

// A write that fails the transaction's producer (Kafka answers
// OUT_OF_ORDER_SEQUENCE_NUMBER, which franz-go recovers from only by
// ending the transaction) abandons the batch in hand: its handlers stop
// instead of retrying in a transaction that can only abort, it aborts,
// and its records come again, to be written in the next. The reply is
// read once, well within the transaction's timeout.
func TestSessionAbandonsABatchWhoseTransactionFailed(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "abandon.in", Partitions: 1}, contracts.TopicSpec{Name: "abandon.out", Partitions: 1}
	stack, cfg := startEmbedded(t, in, out)
	_, o := startSession(t, cfg, "abandon", "abandon-1", in.Name, func(s *messaging.Session, msg *message.Message) error {
		r, _ := messaging.RecordFromCtx(msg.Context())
		// As a store archives: the write must be acknowledged to go on.
		_, err := s.AddAcked(msg.Context(), []*kgo.Record{{Topic: out.Name, Key: r.Key, Value: msg.Payload}}, func() []*kgo.Record { return nil }, nil)
		return err
	})
	eventually(t, "the partitions to be assigned", o.owns)
	stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: out.Name, Err: kerr.OutOfOrderSequenceNumber, Count: 1})
	produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("k"), Value: []byte("v")})
	start := time.Now()
	got := readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 1 })
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("the reply took %s, want well within the 10 s transaction timeout", elapsed.Round(time.Millisecond))
	}
	if len(got) != 1 || string(got[0].Value) != "v" {
		t.Errorf("%s: got %s, want the reply once", out.Name, describe(got))
	}
}

// writesHook records the keys of the requests a client writes, and
// calls written, if set, with each.
type writesHook struct {
	mu      sync.Mutex
	keys    []kmsg.Key
	written func(kmsg.Key)
}

func (h *writesHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	h.mu.Lock()
	h.keys = append(h.keys, kmsg.Key(key))
	h.mu.Unlock()
	if h.written != nil {
		h.written(kmsg.Key(key))
	}
}

// observe calls fn with every request of key the embedded broker gets,
// which it then answers as usual.
func observe(cluster *kfake.Cluster, key kmsg.Key, fn func(kmsg.Request)) {
	cluster.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		fn(req)
		return nil, nil, false
	})
}

// heartbeatsInCommits counts the heartbeats written between a
// transaction's offsets and its end, and the commits.
func (h *writesHook) heartbeatsInCommits() (heartbeats, commits int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	in := false
	for _, k := range h.keys {
		switch k {
		case kmsg.TxnOffsetCommit:
			in = true
		case kmsg.Heartbeat:
			if in {
				heartbeats++
			}
		case kmsg.EndTxn:
			if in {
				commits++
			}
			in = false
		}
	}
	return heartbeats, commits
}

// A commit is three requests in a row: the flush of its records, its
// offsets, its end. It does not force a heartbeat before the end, as
// franz-go's GroupTransactSession does (KIP-447's generation, which the
// offsets carry, fences it already).
func TestACommitWaitsForNoHeartbeat(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "trips.in", Partitions: 1}, contracts.TopicSpec{Name: "trips.out", Partitions: 1}
	cfg := startKafka(t, in, out)
	writes := &writesHook{}
	_, o := startSession(t, cfg, "trips", "trips-1", in.Name, reply(out.Name), writes)
	eventually(t, "the partitions to be assigned", o.owns)

	const n = 5
	for i := range n { // one at a time: a commit each
		produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("k"), Value: fmt.Appendf(nil, "%d", i)})
		readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) > i })
	}
	// A heartbeat of the client's own rhythm (every 300 ms) may fall
	// within a commit, now and then; a heartbeat awaited by every commit
	// is in each. (The hook hears of a write once it is written, maybe
	// after the broker has answered it.)
	eventually(t, fmt.Sprintf("%d commits to be written", n), func() bool {
		_, commits := writes.heartbeatsInCommits()
		return commits >= n
	})
	if heartbeats, commits := writes.heartbeatsInCommits(); heartbeats > commits/2 {
		t.Errorf("%d heartbeats within %d commits: want most without one", heartbeats, commits)
	}
}

// A commit made before franz-go has learnt the group's committed offsets
// (it asks for them once the partitions are assigned) commits them as
// they were, not the log's start.
func TestACommitBeforeTheOffsetsAreFetchedKeepsThem(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "keep.in", Partitions: 1}, contracts.TopicSpec{Name: "keep.out", Partitions: 1}
	stack, cfg := startEmbedded(t, in, out)
	produce(t, cfg, &kgo.Record{Topic: in.Name, Value: []byte("0")}, &kgo.Record{Topic: in.Name, Value: []byte("1")})
	admin := kadm.NewClient(kgoClient(t, cfg))
	committed := func() int64 {
		t.Helper()
		offsets, err := admin.FetchOffsets(t.Context(), "keep")
		if err != nil {
			t.Fatal(err)
		}
		o, ok := offsets.Lookup(in.Name, 0)
		if !ok {
			return -1
		}
		return o.At
	}
	var set kadm.Offsets
	set.AddOffset(in.Name, 0, 2, -1)
	if _, err := admin.CommitOffsets(t.Context(), "keep", set); err != nil || committed() != 2 {
		t.Fatalf("commit the group's offset 2: %v", err)
	}

	// The session's first OffsetFetch waits for stable offsets before its
	// restore; the next ones, franz-go's, are refused (its coordinator is
	// loading) until the session has sent the write's offsets.
	cluster := stack.Cluster()
	release := make(chan struct{})
	var once sync.Once
	sentOffsets := &writesHook{written: func(k kmsg.Key) {
		if k == kmsg.TxnOffsetCommit {
			once.Do(func() { close(release) })
		}
	}}
	var fetches atomic.Int32
	cluster.ControlKey(int16(kmsg.OffsetFetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		r := req.(*kmsg.OffsetFetchRequest)
		if r.Group != "keep" && (len(r.Groups) == 0 || r.Groups[0].Group != "keep") || fetches.Add(1) == 1 {
			return nil, nil, false
		}
		select {
		case <-release:
			return nil, nil, false
		default:
		}
		resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.Version = r.Version
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		if r.Version >= 8 {
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group, g.ErrorCode = "keep", kerr.CoordinatorLoadInProgress.Code
			resp.Groups = append(resp.Groups, g)
		}
		return resp, nil, true
	})
	s, o := startSession(t, cfg, "keep", "keep-1", in.Name, func(*messaging.Session, *message.Message) error { return nil }, sentOffsets)
	eventually(t, "the partitions to be assigned", o.owns)
	var err error
	eventually(t, "a write outside a handler to commit", func() bool {
		err = s.Send(t.Context(), []*kgo.Record{{Topic: out.Name, Value: []byte("w")}})
		return !errors.Is(err, messaging.ErrRebalancing)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := committed(); got != 2 {
		t.Errorf("the group's committed offset after a commit made before franz-go fetched it: got %d, want 2", got)
	}
}

// A commit sends the offsets of the partitions read since the last one,
// not those of every partition the session is assigned.
func TestACommitSendsTheOffsetsThatMoved(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "moved.in", Partitions: 4}, contracts.TopicSpec{Name: "moved.out", Partitions: 4}
	stack, cfg := startEmbedded(t, in, out)
	var mu sync.Mutex
	var sent []int // partitions of each TxnOffsetCommit
	observe(stack.Cluster(), kmsg.TxnOffsetCommit, func(req kmsg.Request) {
		n := 0
		for _, t := range req.(*kmsg.TxnOffsetCommitRequest).Topics {
			n += len(t.Partitions)
		}
		mu.Lock()
		sent = append(sent, n)
		mu.Unlock()
	})
	_, o := startSession(t, cfg, "moved", "moved-1", in.Name, reply(out.Name))
	eventually(t, "the partitions to be assigned", o.owns)
	produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("k"), Value: []byte("v")})
	readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 || sent[0] != 1 {
		t.Errorf("partitions of each offset commit: got %v, want [1]: the one read", sent)
	}
}

// lingering starts a session, reading name.in with handle, whose records
// wait a minute to be sent unless something sends them.
func lingering(t *testing.T, name string, handle func(s *messaging.Session, msg *message.Message) error) (*devstack.Stack, config.Kafka) {
	t.Helper()
	in, out := contracts.TopicSpec{Name: name + ".in", Partitions: 1}, contracts.TopicSpec{Name: name + ".out", Partitions: 1}
	stack, cfg := startEmbedded(t, in, out)
	o := &owner{}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: name, TransactionalID: name + "-1", Owner: o}, quiet())
	messaging.SetLinger(s, time.Minute)
	s.AddTopic(in.Name)
	if err := s.Handle(in.Name, func(msg *message.Message) error { return handle(s, msg) }); err != nil {
		t.Fatal(err)
	}
	runSession(t, s)
	eventually(t, "the partitions to be assigned", o.owns)
	return stack, cfg
}

// warm has every producer of a lingering session load name.out's metadata
// (a record of a topic its client has not written to yet waits for it,
// then for the linger): it sends "first" once a producer, each after the
// last one's perMessage records are read.
func warm(t *testing.T, cfg config.Kafka, name string, perMessage int) {
	t.Helper()
	for i := range messaging.TransactionalIDs(name + "-1") {
		produce(t, cfg, &kgo.Record{Topic: name + ".in", Value: []byte("first")})
		readCommitted(t, cfg, name+".out", func(got []*kgo.Record) bool { return len(got) >= (i+1)*perMessage })
	}
}

// A transaction's records wait for its commit and go out together: a
// handler that writes once, and twice more once the first record could
// have reached the broker, makes one produce request.
func TestATransactionsRecordsGoOutInOneProduceRequest(t *testing.T) {
	var produced atomic.Int32
	arrived := make(chan struct{}, 1) // a produce request of the session reached the broker
	stack, cfg := lingering(t, "together", func(s *messaging.Session, msg *message.Message) error {
		for i := range 3 {
			if err := s.Send(msg.Context(), []*kgo.Record{{Topic: "together.out", Value: msg.Payload}}); err != nil {
				return err
			}
			if i == 0 && string(msg.Payload) != "first" { // the first loads the topic's metadata
				// Sent as it is written, the record reaches the broker
				// in far less; left for the commit, it does not.
				select {
				case <-arrived:
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
		return nil
	})
	ids := messaging.TransactionalIDs("together-1")
	observe(stack.Cluster(), kmsg.Produce, func(req kmsg.Request) {
		if id := req.(*kmsg.ProduceRequest).TransactionID; id != nil && slices.Contains(ids, *id) {
			produced.Add(1)
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
	})
	warm(t, cfg, "together", 3)
	before := produced.Load()
	select { // the warm-up's
	case <-arrived:
	default:
	}
	produce(t, cfg, &kgo.Record{Topic: "together.in", Value: []byte("second")})
	readCommitted(t, cfg, "together.out", func(got []*kgo.Record) bool { return len(got) >= 3*(len(ids)+1) })
	if n := produced.Load() - before; n != 1 {
		t.Errorf("produce requests of a transaction of three records: got %d, want 1", n)
	}
}

// A write that awaits its records (AddAcked) sends them at once rather
// than after the linger: its offset is known before its handler returns,
// and so before the commit that would send it otherwise.
func TestAnAwaitedWriteIsSentAtOnce(t *testing.T) {
	offsets := make(chan int64, 1)
	_, cfg := lingering(t, "awaited", func(s *messaging.Session, msg *message.Message) error {
		r := &kgo.Record{Topic: "awaited.out", Value: msg.Payload}
		if string(msg.Payload) == "first" { // loads the topic's metadata
			return s.Send(msg.Context(), []*kgo.Record{r})
		}
		if _, err := s.AddAcked(msg.Context(), []*kgo.Record{r}, func() []*kgo.Record { return nil }, nil); err != nil {
			return err
		}
		offsets <- r.Offset
		return nil
	})
	warm(t, cfg, "awaited", 1)
	produce(t, cfg, &kgo.Record{Topic: "awaited.in", Value: []byte("second")})
	select {
	case off := <-offsets:
		if off < 1 {
			t.Errorf("offset of the awaited record: got %d, want past the first record's", off)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("an awaited write still waits after 20s: it is left to linger")
	}
}

// The session's metrics describe each transaction: the records it
// carried and the time of its phases, one observation of each a commit.
func TestSessionMetricsDescribeItsTransactions(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "metrics.in", Partitions: 2}, contracts.TopicSpec{Name: "metrics.out", Partitions: 2}
	cfg := startKafka(t, in, out)
	reg := prometheus.NewRegistry()
	o := &owner{}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "metrics", TransactionalID: "metrics-1", Owner: o, Metrics: reg}, quiet())
	s.AddTopic(in.Name)
	if err := s.Handle(in.Name, func(msg *message.Message) error {
		return reply(out.Name)(s, msg)
	}); err != nil {
		t.Fatal(err)
	}
	runSession(t, s)
	eventually(t, "the partitions to be assigned", o.owns)

	const n = 10
	for i := range n {
		produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte(fmt.Sprint(i)), Value: []byte("v")})
	}
	readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= n })

	// The last commit's end is observed once Kafka answers it, which may be
	// after its records are read. A transaction that aborted (franz-go may
	// abort one under load) hands its records again: they count again, and
	// one whose prepare failed has no end.
	phase := func(name string) *dto.Histogram {
		return series(t, reg, "transaction_seconds", map[string]string{"phase": name}).GetHistogram()
	}
	phases := []string{"handle", "prepare", "end"}
	eventually(t, fmt.Sprintf("transaction_records to sum to %d at least, handle observed once a transaction, prepare and end observed", n), func() bool {
		records := series(t, reg, "transaction_records", nil).GetHistogram()
		return records.GetSampleSum() >= n && phase("handle").GetSampleCount() == records.GetSampleCount() &&
			phase("prepare").GetSampleCount() > 0 && phase("end").GetSampleCount() > 0
	})
	for _, name := range phases {
		if h := phase(name); h.GetSampleSum() <= 0 {
			t.Errorf("transaction_seconds{phase=%q}: %d observations summing to %gs, want a positive sum", name, h.GetSampleCount(), h.GetSampleSum())
		}
	}
}

// Consecutive transactions are written by the session's producers in
// turn: a producer's next transaction begins only once the others have
// had theirs, by when Apache Kafka has completed its previous one.
func TestConsecutiveTransactionsTakeTurnsAmongTheProducers(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "turns.in", Partitions: 1}, contracts.TopicSpec{Name: "turns.out", Partitions: 1}
	stack, cfg := startEmbedded(t, in, out)
	ids := messaging.TransactionalIDs("turns-1")
	if len(ids) < 2 {
		t.Fatalf("transactional ids of a session: got %v, want two or more", ids)
	}
	var (
		mu    sync.Mutex
		ended []string
	)
	observe(stack.Cluster(), kmsg.EndTxn, func(req kmsg.Request) {
		if id := req.(*kmsg.EndTxnRequest).TransactionalID; slices.Contains(ids, id) {
			mu.Lock()
			ended = append(ended, id)
			mu.Unlock()
		}
	})
	_, o := startSession(t, cfg, "turns", "turns-1", in.Name, reply(out.Name))
	eventually(t, "the partitions to be assigned", o.owns)
	const n = 4
	for i := range n { // one transaction each: the next is sent once the last is read
		produce(t, cfg, &kgo.Record{Topic: in.Name, Value: []byte(strconv.Itoa(i))})
		readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) > i })
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ended) < n {
		t.Fatalf("transactions ended: got %v, want %d or more", ended, n)
	}
	for i := 1; i < len(ended); i++ {
		if ended[i] == ended[i-1] {
			t.Errorf("transactions ended by %v: %s ended two in a row", ended, ended[i])
		}
	}
}

// franz-go ends a transaction it is asked to commit with an abort, and
// returns nil, when it saw none of its produces acknowledged: the end a
// session gives its transactions reports that as no commit, so that no
// writer is told its writes are in.
func TestACommitThatFranzGoAbortsIsNoCommit(t *testing.T) {
	out := contracts.TopicSpec{Name: "instead.out", Partitions: 1}
	stack, cfg := startEmbedded(t, out)
	cl, end, err := messaging.Producer(cfg, "instead-1")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: out.Name, Err: kerr.TopicAuthorizationFailed, Count: -1})
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: out.Name, Value: []byte("refused")}).FirstErr(); err == nil {
		t.Fatal("produce to a refused topic: got nil, want an error")
	}
	if committed, err := end(t.Context(), kgo.TryCommit); err != nil || committed {
		t.Errorf("end asked to commit a transaction franz-go aborts: got committed %v, error %v; want not committed", committed, err)
	}
}

// polledHook runs when a poll hands a record out, on the polling
// goroutine, before the poll returns.
type polledHook func(r *kgo.Record)

func (h polledHook) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if polled {
		h(r)
	}
}

// Records a revocation overtook (polled while the batch before them was
// handled, their partition taken away before their handlers ran) are not
// handled: their handlers' writes could only be refused, and the loop
// would wait for them for ever. The transaction aborts, and the records
// come again once the partition is assigned again.
func TestRecordsARevocationOvertookAreNotHandled(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "overtaken.in", Partitions: 1}, contracts.TopicSpec{Name: "overtaken.out", Partitions: 1}
	cfg := startKafka(t, in, out)
	polledB, revoked := make(chan struct{}), make(chan struct{})
	var polledOnce sync.Once
	polled := polledHook(func(r *kgo.Record) {
		if string(r.Value) != "b" {
			return
		}
		polledOnce.Do(func() {
			close(polledB)
			<-revoked // b is in the loop's hands, its handler not called yet
		})
	})
	s, o := startJoined(t, cfg, "overtaken", in.Name, out.Name, polled)
	select {
	case <-polledB:
	case <-time.After(10 * time.Second):
		t.Fatal("b was not polled")
	}
	evict(t, cfg, "overtaken")
	eventually(t, "the partition to be taken away", func() bool { return !o.owns() && !messaging.TakesWrites(s) })
	close(revoked)

	got := readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 2 })
	values := []string{}
	for _, r := range got {
		values = append(values, string(r.Value))
	}
	if slices.Sort(values); !slices.Equal(values, []string{"a", "b"}) {
		t.Fatalf("%s: got %s, want a and b, once each", out.Name, describe(got))
	}
}

// A write made outside a handler from what was read before the partitions
// were assigned again is refused, however the assignment turned out: the
// key may be another instance's now, and written here, its new owner would
// not know of it. One read after the assignment is taken.
func TestAWriteReadBeforeAnAssignmentIsRefused(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "epoch.in", Partitions: 1}, contracts.TopicSpec{Name: "epoch.out", Partitions: 1}
	cfg := startKafka(t, in, out)
	s, o := startSession(t, cfg, "epoch", "epoch-1", in.Name, reply(out.Name))
	eventually(t, "the first transaction to take writes", func() bool { return o.owns() && messaging.TakesWrites(s) })
	before := messaging.ReadAt(t.Context(), s.Epoch())

	evict(t, cfg, "epoch") // it rejoins, and is assigned the partition again
	eventually(t, "the partition to be taken away", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.revoked > 0 })
	eventually(t, "the partition to be assigned again", func() bool { return o.owns() && messaging.TakesWrites(s) })

	rec := func(v string) []*kgo.Record {
		return []*kgo.Record{{Topic: out.Name, Key: []byte("k"), Value: []byte(v)}}
	}
	if err := s.Send(before, rec("stale")); !errors.Is(err, messaging.ErrStaleRead) {
		t.Errorf("a write read before the assignment: got %v, want ErrStaleRead", err)
	}
	if err := s.Send(messaging.ReadAt(t.Context(), s.Epoch()), rec("fresh")); err != nil {
		t.Fatalf("a write read after the assignment: %v", err)
	}
	got := readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 1 })
	if len(got) != 1 || string(got[0].Value) != "fresh" {
		t.Errorf("%s: got %s, want the fresh write only", out.Name, describe(got))
	}
}

// stuckOwner's restores wait for their context to end.
type stuckOwner struct {
	owner
	restoring chan struct{}
	once      sync.Once
}

func (o *stuckOwner) Assigned(ctx context.Context, _ []int32, _ int32) error {
	o.once.Do(func() { close(o.restoring) })
	<-ctx.Done()
	return ctx.Err()
}

// A restore under way when the session stops (Kafka unreachable, say)
// ends with it: franz-go ends its callback's context only once the
// callback has returned, and a process told to stop would wait for ever.
func TestARestoreUnderWayEndsWithTheSession(t *testing.T) {
	in := contracts.TopicSpec{Name: "stopping.in", Partitions: 1}
	cfg := startKafka(t, in)
	o := &stuckOwner{restoring: make(chan struct{})}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "stopping", TransactionalID: "stopping-1", Owner: o}, quiet())
	s.AddTopic(in.Name)
	if err := s.Handle(in.Name, func(*message.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	select {
	case <-o.restoring:
	case <-time.After(20 * time.Second):
		t.Fatal("no partition was assigned")
	}
	cancel()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run has not returned 10s after its context ended, with a restore under way")
	}
}

// A revocation does not wait for a handler that keeps failing (a registry
// down, a dependency away): its batch is abandoned, since its transaction
// can only abort, and the partitions are given up at once. Waiting held
// the group's rebalance, and left the instance serving state its group
// had given to another.
func TestARevocationAbandonsABatchThatKeepsFailing(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "failing.in", Partitions: 1}, contracts.TopicSpec{Name: "failing.out", Partitions: 1}
	cfg := startKafka(t, in, out)
	var failing atomic.Bool
	failing.Store(true)
	tried := make(chan struct{}, 1)
	_, o := startSession(t, cfg, "failing", "failing-1", in.Name, func(s *messaging.Session, msg *message.Message) error {
		if failing.Load() {
			select {
			case tried <- struct{}{}:
			default:
			}
			return errors.New("a dependency is down")
		}
		return reply(out.Name)(s, msg)
	})
	eventually(t, "the session to own its partition", o.owns)
	produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("k"), Value: []byte("v")})
	<-tried

	evict(t, cfg, "failing")
	revoked := func() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.revoked > 0 }
	for deadline := time.Now().Add(5 * time.Second); !revoked(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the partitions were not given up within 5s of the eviction: the revocation waits for the failing handler")
		}
	}
	failing.Store(false)
	got := readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 1 })
	if len(got) != 1 || string(got[0].Value) != "v" {
		t.Errorf("read committed %s: got %s, want the one reply", out.Name, describe(got))
	}
}

// A client replaced after its transaction's end failed leaves that
// transaction open on the broker, its offsets pending; the new client's
// producers take the same transactional ids at once, which aborts it,
// rather than leave the partitions' restore, and every reader of what it
// wrote to, waiting for the transaction to time out.
func TestAClientReplacedAfterAFailedEndAbortsWhatItLeftOpen(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "reopened.in", Partitions: 1}, contracts.TopicSpec{Name: "reopened.out", Partitions: 1}
	stack, cfg := startEmbedded(t, in, out)
	o := &owner{}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "reopened", TransactionalID: "reopened-1", Owner: o,
		TransactionTimeout: time.Minute}, quiet())
	s.AddTopic(in.Name)
	msgs, err := s.Subscribe(t.Context(), in.Name)
	if err != nil {
		t.Fatal(err)
	}
	runSession(t, s)
	go func() {
		for msg := range msgs {
			if err := reply(out.Name)(s, msg); err != nil {
				msg.Nack()
				continue
			}
			msg.Ack()
		}
	}()
	eventually(t, "the session to take writes", func() bool { return messaging.TakesWrites(s) })
	fault := stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.InvalidTxnState, Count: 1})
	began := time.Now()
	produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("k"), Value: []byte("v")})
	got := readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 1 })
	if fault.Hits() == 0 {
		t.Fatal("no end failed: the test proves nothing")
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("the record was answered %s after the failed end, want within 10s: the transaction left open waited for its timeout", took)
	}
	if len(got) != 1 || string(got[0].Value) != "v" {
		t.Errorf("read committed %s: got %s, want the one reply", out.Name, describe(got))
	}
}

// A write outside a handler while a commit cannot end (the coordinator
// answers CONCURRENT_TRANSACTIONS, which franz-go asks again for as long as
// the end may take) returns within AwaitCommit, as one whose commit is
// held up does, rather than wait for the commit's lock that long.
func TestAWriteDuringACommitThatCannotEndReturnsInTime(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "stuck.in", Partitions: 1}, contracts.TopicSpec{Name: "stuck.out", Partitions: 1}
	stack, cfg := startEmbedded(t, in, out)
	s, _ := startSession(t, cfg, "stuck", "stuck-1", in.Name, reply(out.Name))
	eventually(t, "the session to take writes", func() bool { return messaging.TakesWrites(s) })
	fault := stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.ConcurrentTransactions, Count: -1})
	produce(t, cfg, &kgo.Record{Topic: in.Name, Key: []byte("k"), Value: []byte("v")})
	if err := fault.Wait(t.Context(), 3); err != nil { // the commit's end, asked again
		t.Fatal(err)
	}
	messaging.SetAwaitCommit(s, 200*time.Millisecond)
	start := time.Now()
	err := s.Send(t.Context(), []*kgo.Record{{Topic: out.Name, Key: []byte("k"), Value: []byte("outside")}})
	waited := time.Since(start)
	fault.Remove()
	if !errors.Is(err, messaging.ErrCommitPending) {
		t.Errorf("a write while the commit cannot end: got %v, want ErrCommitPending", err)
	}
	if waited > 2*time.Second {
		t.Errorf("a write while the commit cannot end returned after %s, want about 200 ms", waited)
	}
	// The commit ends once the coordinator answers; the reply is read.
	readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) >= 1 })
}

// A rolling deploy that adds a topic to what a process reads (a new saga
// type's replies) has, for a while, members that read it beside members
// that do not. Each still gets the same partition numbers of every topic it
// reads: the range balancer shared each topic among its readers alone, so
// the new member got every partition of the new topic but part of the
// others, refused that as not co-partitioned, and stopped, again and again.
func TestMembersReadingDifferentTopicsGetTheSameNumbersOfEach(t *testing.T) {
	a, b := contracts.TopicSpec{Name: "deploy.a", Partitions: 2}, contracts.TopicSpec{Name: "deploy.b", Partitions: 2}
	cfg := startKafka(t, a, b)
	old, oldOwner := startSession(t, cfg, "deploy", "deploy-old", a.Name, func(*messaging.Session, *message.Message) error { return nil })
	eventually(t, "the old member to take writes", func() bool { return messaging.TakesWrites(old) })

	o := &owner{}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "deploy", TransactionalID: "deploy-new", Owner: o}, quiet())
	ackAll(t, s, a.Name, b.Name)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	var runErr error
	go func() { runErr = s.Run(ctx); close(stopped) }()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	eventually(t, "both members to own a partition", func() bool {
		select {
		case <-stopped:
			t.Fatalf("the member reading both topics stopped: %v", runErr)
		default:
		}
		return o.owns() && oldOwner.owns() && messaging.TakesWrites(s)
	})
	o.mu.Lock()
	newOwns := slices.Clone(o.assigned)
	o.mu.Unlock()
	oldOwner.mu.Lock()
	oldOwns := slices.Clone(oldOwner.assigned)
	oldOwner.mu.Unlock()
	if len(newOwns) != 1 || len(oldOwns) != 1 || newOwns[0] == oldOwns[0] {
		t.Errorf("partitions: the new member %v, the old %v; want one each, not the same", newOwns, oldOwns)
	}
}

// A transaction that wrote no record commits its offsets alone
// (OffsetCommit, not TxnOffsetCommit). Refused because the group's
// generation is over, it tells the Owner so, as one with records does,
// whether writers waited for it (a store's answer read from a write of
// it) or only records whose handlers wrote nothing: the partitions may be
// another's already (process.partitions then serves none until the next
// assignment). It was told only of an abort, or not at all, and the
// partitions were served until a heartbeat said they were gone.
func TestAnOffsetsOnlyCommitOfAGenerationOverTellsTheOwner(t *testing.T) {
	for _, tt := range []struct {
		name   string
		commit func(t *testing.T, s *messaging.Session, cfg config.Kafka, in string)
	}{
		{"writers without records", func(t *testing.T, s *messaging.Session, _ config.Kafka, _ string) {
			wait, err := s.Add(t.Context(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := wait(); !errors.Is(err, messaging.ErrAborted) {
				t.Errorf("the writer got %v, want ErrAborted", err)
			}
		}},
		{"records whose handlers wrote nothing", func(t *testing.T, _ *messaging.Session, cfg config.Kafka, in string) {
			produce(t, cfg, &kgo.Record{Topic: in, Key: []byte("k"), Value: []byte("v")})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			group := strings.ReplaceAll(tt.name, " ", "-")
			in := contracts.TopicSpec{Name: group + ".in", Partitions: 1}
			stack, cfg := startEmbedded(t, in)
			s, o := startSession(t, cfg, group, group+"-1", in.Name, func(*messaging.Session, *message.Message) error { return nil })
			eventually(t, "writes to open", func() bool { return messaging.TakesWrites(s) })
			stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: group, Err: kerr.IllegalGeneration, Count: 1})
			tt.commit(t, s, cfg, in.Name)
			eventually(t, "the owner to be told", func() bool { return o.distrusted() > 0 })
			o.mu.Lock()
			told := o.lastErr
			o.mu.Unlock()
			if over := new(messaging.GenerationOver); !errors.Is(told, messaging.ErrAborted) || !errors.As(told, &over) {
				t.Errorf("Distrust was told %v, want ErrAborted and a GenerationOver", told)
			}
		})
	}
}

// Offsets a commit read before a rebalance go with the generation they
// were read in. A batch that wrote nothing, whose commit of its offsets
// went out only once the rebalance was over (franz-go holds a commit while
// a join is under way), does not commit them in the next generation over
// what the new owner of one of its partitions committed since: that owner
// would read the partition's records again from there after its restart.
func TestOffsetsReadBeforeARebalanceDoNotCommitInTheNext(t *testing.T) {
	in := contracts.TopicSpec{Name: "reread.in", Partitions: 2}
	cfg := startKafka(t, in)
	const group = "reread"
	var armed atomic.Bool
	reached, release := make(chan struct{}), make(chan struct{})
	firstOwner := &owner{}
	first := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: group, TransactionalID: group + "-1", Owner: firstOwner}, quiet())
	messaging.SetOffsetsRead(first, func() {
		if armed.CompareAndSwap(true, false) {
			close(reached)
			<-release
		}
	})
	ackAll(t, first, in.Name)
	runSession(t, first)
	var released sync.Once
	t.Cleanup(func() { released.Do(func() { close(release) }) }) // before the session stops
	eventually(t, "the first instance to take writes", func() bool { return messaging.TakesWrites(first) })

	toEach := func(value string) {
		cl := kgoClient(t, cfg, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		for p := range int32(2) {
			if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: in.Name, Partition: p, Value: []byte(value)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	committed := func(p int32) int64 {
		offsets, err := kadm.NewClient(kgoClient(t, cfg)).FetchOffsets(t.Context(), group)
		if err != nil {
			return -1
		}
		o, _ := offsets.Lookup(in.Name, p)
		return o.At
	}
	armed.Store(true)
	toEach("read before the rebalance")
	<-reached // the first instance's commit read offset 1 of each partition, and waits

	second, o := startSession(t, cfg, group, group+"-2", in.Name, func(*messaging.Session, *message.Message) error { return nil })
	eventually(t, "the second instance to take writes", func() bool { return o.owns() && messaging.TakesWrites(second) })
	o.mu.Lock()
	moved := o.assigned[0]
	o.mu.Unlock()
	kept := 1 - moved
	toEach("read after it")
	eventually(t, fmt.Sprintf("the second instance to commit partition %d's offset 2", moved), func() bool { return committed(moved) == 2 })

	released.Do(func() { close(release) })
	// The first instance's loop goes on once its commit is over: it
	// commits the partition it kept past both records.
	eventually(t, fmt.Sprintf("the first instance to commit partition %d's offset 2", kept), func() bool { return committed(kept) == 2 })
	if got := committed(moved); got != 2 {
		t.Errorf("partition %d's committed offset is %d once the first instance's commit was over, want 2, its new owner's", moved, got)
	}
	firstOwner.mu.Lock()
	told := firstOwner.lastErr
	firstOwner.mu.Unlock()
	// The broker's answer names topics by id only.
	if want := "offset of " + in.Name + " partition"; told == nil || !strings.Contains(told.Error(), want) {
		t.Errorf("the first instance's owner was told %v, want the refusal of its offsets, naming the topic (%q)", told, want)
	}
}

// A commit the broker made but answered UNKNOWN_SERVER_ERROR (franz-go:
// unconfirmed, the broker may or may not have completed it) is not taken
// for an abort: its writer learns that its outcome is unknown, and the
// Owner drops the state to read it again, where both were told that it
// was known to be aborted, and the stores put back what committed.
func TestACommitAnsweredUnknownServerErrorIsNoKnownAbort(t *testing.T) {
	in, out := contracts.TopicSpec{Name: "unconfirmed.in", Partitions: 1}, contracts.TopicSpec{Name: "unconfirmed.out", Partitions: 1}
	stack, cfg := startEmbedded(t, in, out)
	s, o := startSession(t, cfg, "unconfirmed", "unconfirmed-1", in.Name, func(*messaging.Session, *message.Message) error { return nil })
	eventually(t, "writes to open", func() bool { return messaging.TakesWrites(s) })
	// The first commit of the session's producers goes to the broker
	// through another client, and its answer is replaced.
	forward := kgoClient(t, cfg)
	cluster := stack.Cluster()
	var intercepted, forwarding atomic.Bool
	cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		r := req.(*kmsg.EndTxnRequest)
		if forwarding.Load() || intercepted.Load() || !r.Commit || !strings.HasPrefix(r.TransactionalID, "unconfirmed-1") {
			return nil, nil, false
		}
		intercepted.Store(true)
		var forwarded error
		cluster.SleepControl(func() {
			forwarding.Store(true)
			defer forwarding.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var resp *kmsg.EndTxnResponse
			if resp, forwarded = r.RequestWith(ctx, forward); forwarded == nil {
				forwarded = kerr.ErrorForCode(resp.ErrorCode)
			}
		})
		if forwarded != nil {
			return nil, fmt.Errorf("forward the commit: %w", forwarded), true
		}
		resp := r.ResponseKind().(*kmsg.EndTxnResponse)
		resp.Version, resp.ErrorCode = r.Version, kerr.UnknownServerError.Code
		return resp, nil, true
	})
	err := s.Send(t.Context(), []*kgo.Record{{Topic: out.Name, Key: []byte("k"), Value: []byte("w")}})
	if !intercepted.Load() {
		t.Fatal("the commit was not intercepted")
	}
	readCommitted(t, cfg, out.Name, func(got []*kgo.Record) bool { return len(got) == 1 })
	if !errors.Is(err, messaging.ErrOutcomeUnknown) || errors.Is(err, messaging.ErrAborted) || errors.Is(err, messaging.ErrFenced) {
		t.Errorf("the writer got %v, want ErrOutcomeUnknown, not an error that says the write aborted", err)
	}
	eventually(t, "the owner to be told", func() bool { return o.distrusted() > 0 })
	o.mu.Lock()
	told := o.lastErr
	o.mu.Unlock()
	if errors.Is(told, messaging.ErrAborted) {
		t.Errorf("Distrust was told %v, want an error that does not say the transaction aborted", told)
	}
}

// A group not authorized for a while (an ACL just created, not yet on
// every broker) is asked again: the session joins once the broker lets it,
// and Run goes on. It ended Run, and the process, at the first refusal.
func TestAGroupNotAuthorizedForAWhileIsAskedAgain(t *testing.T) {
	in := contracts.TopicSpec{Name: "unauth.in", Partitions: 1}
	stack, cfg := startEmbedded(t, in)
	fault := stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.JoinGroup}, Group: "unauth", Err: kerr.GroupAuthorizationFailed, Count: 2})
	o := &owner{}
	s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "unauth", TransactionalID: "unauth-1", Owner: o}, quiet())
	ackAll(t, s, in.Name)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "the partition to be assigned after the refusals", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("Run ended with %v, want the join asked again", err)
		default:
		}
		return o.owns()
	})
	if fault.Hits() != 2 {
		t.Fatalf("joins refused: %d, want 2", fault.Hits())
	}
}

// What no retry mends stops Run with the reason, where the session
// asked again for ever and the process was never ready, nor ended: a
// group the broker refuses for good (a session timeout outside the range
// it takes), and settings franz-go refuses (one past the 596 hours it
// takes), for which it connected a new client every second.
func TestWhatNoRetryMendsStopsTheSession(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name           string
		sessionTimeout time.Duration
		want           func(error) bool
	}{
		{"a group refused", 31 * time.Minute, func(err error) bool { // the embedded broker takes 30 at most, as Kafka does
			return errors.Is(err, kerr.InvalidSessionTimeout) && strings.Contains(err.Error(), "KAFKA_SESSION_TIMEOUT")
		}},
		{"settings refused", 600 * time.Hour, func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "session timeout") && strings.Contains(err.Error(), "KAFKA_")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := contracts.TopicSpec{Name: "refused.in", Partitions: 1}
			cfg := startKafka(t, in)
			cfg.SessionTimeout = c.sessionTimeout
			s := messaging.NewSession(messaging.SessionConfig{Kafka: cfg, Group: "refused", TransactionalID: "refused-1", Owner: &owner{}}, quiet())
			ackAll(t, s, in.Name)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			select {
			case err := <-done:
				if !c.want(err) {
					t.Errorf("Run: got %v, want the refusal, naming the variable", err)
				}
			case <-time.After(20 * time.Second):
				cancel()
				<-done
				t.Fatal("Run still going after 20 s, want it ended with the refusal")
			}
		})
	}
}

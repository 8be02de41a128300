package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// groupTxn is the client of a process that reads topics in a consumer
// group: franz-go's consumer in the group, and franz-go's transactional
// producers, which write the transactions in turn and which it ends
// itself.
//
// A transaction that wrote records commits the offsets of the partitions
// read since the last commit or, when none was (the writes of an HTTP
// request or a timer), the last commits again. The broker takes them only
// from a member of the group's current generation (KIP-447), so an
// instance that lost its partitions cannot commit.
//
// The end is three requests in a row: the flush of the records, the
// offsets, the end. franz-go's GroupTransactSession forces a heartbeat
// before the end; this does not: once the offsets are taken, the
// transaction may commit whatever the group does next, since a new
// owner's restore reads its partitions to the log's end and waits for a
// transaction in the way. (Sending the offsets during the flush would save
// another round trip on the embedded broker; Apache Kafka refuses the
// second of the two to add its partition, and a refused produce waits
// for a metadata refresh: docs/architecture.md.)
type groupTxn struct {
	*kgo.Client // the group's consumer
	group       string
	logger      *slog.Logger
	// producers write the transactions in turn, cur the open one's: a
	// producer begins its next transaction once the others have had
	// theirs, its previous one complete by then (see producers). The
	// loop's lock orders the turns with the writes.
	producers []txnProducer
	cur       int

	mu       sync.Mutex // held while a transaction ends: revocations wait for it
	failed   bool       // revoked or lost since the last end: abort
	assigned map[string][]int32
	last     map[string]map[int32]kgo.EpochOffset // committed: read on assignment, then each commit
	sent     map[string]map[int32]kgo.EpochOffset // by Prepare, for End
	sendErr  error                                // of Prepare's offsets: End aborts

	offsetsRead func() // tests: runs in Prepare once the offsets are read
}

// txnProducer is a transactional producer and its id.
type txnProducer struct {
	*kgo.Client
	txnID   string
	aborted *atomic.Bool // set by its logger: see end
}

// end ends the open transaction, and reports whether it committed. A
// nil from franz-go's EndTransaction does not say so: asked to commit a
// transaction none of whose produces it saw acknowledged, it aborts
// instead and says so only in its log (kgoLogger).
func (p txnProducer) end(ctx context.Context, commit kgo.TransactionEndTry) (bool, error) {
	p.aborted.Store(false)
	err := p.EndTransaction(ctx, commit)
	return err == nil && bool(commit) && !p.aborted.Load(), err
}

func (g *groupTxn) producer() txnProducer { return g.producers[g.cur] }

// Produce adds r to the open transaction.
func (g *groupTxn) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	g.producer().Produce(ctx, r, promise)
}

// Flush sends what the open transaction's producer holds and waits for it.
func (g *groupTxn) Flush(ctx context.Context) error { return g.producer().Flush(ctx) }

// Close leaves the group, then closes the producers.
func (g *groupTxn) Close() {
	g.Client.Close()
	g.closeProducers()
}

func (g *groupTxn) closeProducers() {
	for _, p := range g.producers {
		p.Close()
	}
}

// groupVersions caps TxnOffsetCommit at v5, which names topics: v6 wants
// their ids.
func groupVersions() *kversion.Versions {
	v := kversion.Stable()
	v.SetMaxKeyVersion(kmsg.TxnOffsetCommit.Int16(), 5)
	return v
}

// assign takes the partitions assigned with their committed offsets, read
// once no former owner's transaction holds them open (stableOffsets):
// franz-go learns them only after the assignment, and a commit before it
// has must not set them back. (cl is the client: the callback may come
// before NewClient returns it.)
func (g *groupTxn) assign(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) error {
	committed, err := stableOffsets(ctx, cl, g.group, assigned)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.assigned, g.last = maps.Clone(assigned), committed
	return nil
}

// fail makes the open transaction abort: the partitions were revoked or
// lost. It waits for a transaction that is ending.
func (g *groupTxn) fail() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failed, g.assigned, g.last = true, nil, nil
}

// Begin begins a transaction. A revocation that found none begun, whose
// mark (fail) no End cleared, is over once partitions were assigned since:
// the transaction begins in the new generation, and its mark would abort
// it for nothing. Begun before an assignment, it keeps the mark, and
// aborts: it could commit no offsets, so nothing would fence it. Begun
// for an assignment revoked meanwhile, with the next one's partitions
// taken already, it loses the mark all the same: the loop then leaves
// its writes closed (Session.transitions).
func (g *groupTxn) Begin() error {
	g.mu.Lock()
	if g.assigned != nil {
		g.failed = false
	}
	g.mu.Unlock()
	return g.producer().BeginTransaction()
}

// Prepare flushes the transaction's records and sends its offsets: within
// the transaction, or, when it wrote nothing, committed at once. Either
// way they go with the membership they were read in: franz-go's own
// commit takes the generation current when it sends, and holds a commit
// while a join is under way, so offsets read before a rebalance would
// commit in the next generation, those of a partition given up meanwhile
// over its new owner's. Nothing written is visible before End.
func (g *groupTxn) Prepare(ctx context.Context, produced bool) error {
	member, generation, offsets := g.offsets()
	if g.offsetsRead != nil {
		g.offsetsRead()
	}
	var err error
	if produced {
		if err := g.Flush(ctx); err != nil {
			return err
		}
		err = g.commitOffsets(ctx, member, generation, offsets)
	} else {
		// A transaction that wrote nothing is not one to the broker
		// (franz-go would not end it): its offsets are committed alone.
		ctx := kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
			req.MemberID, req.Generation = member, generation
			return nil
		})
		g.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
			if err = cerr; err == nil {
				err = offsetErrors(func(add func(string, int32, int16)) {
					for _, t := range resp.Topics {
						for _, p := range t.Partitions {
							if p.ErrorCode != 0 {
								add(topicOf(req, t), p.Partition, p.ErrorCode)
							}
						}
					}
				})
			}
		})
		err = overIn(generation, err)
	}
	g.mu.Lock()
	g.sent, g.sendErr = offsets, err
	g.mu.Unlock()
	return nil
}

// topicOf is the name of t, a topic of the answer to req: v10's answer
// names topics by id only.
func topicOf(req *kmsg.OffsetCommitRequest, t kmsg.OffsetCommitResponseTopic) string {
	if t.Topic != "" {
		return t.Topic
	}
	for _, rt := range req.Topics {
		if rt.TopicID == t.TopicID {
			return rt.Topic
		}
	}
	return ""
}

// offsets returns what a commit sends, and the group membership (member
// id, generation) read before it, so that offsets read after a rebalance
// go with the generation before it, which the broker refuses, and never
// the other way round: the position of every partition assigned that was
// read past its last commit; if none was, the last commit of every
// partition assigned, which the broker takes only from the group's
// current generation all the same (the fence of a write of an HTTP
// request or a timer).
func (g *groupTxn) offsets() (string, int32, map[string]map[int32]kgo.EpochOffset) {
	member, generation := g.GroupMetadata()
	g.mu.Lock()
	defer g.mu.Unlock()
	last := g.lastLocked()
	var out map[string]map[int32]kgo.EpochOffset
	for topic, parts := range g.UncommittedOffsets() {
		for p, eo := range parts {
			if was, ok := last[topic][p]; ok && was.Offset == eo.Offset {
				continue
			}
			if out == nil {
				out = map[string]map[int32]kgo.EpochOffset{}
			}
			if out[topic] == nil {
				out[topic] = map[int32]kgo.EpochOffset{}
			}
			out[topic][p] = eo
		}
	}
	if out == nil {
		return member, generation, last
	}
	return member, generation, out
}

// lastLocked returns the last commit of every partition assigned: read on
// assignment, or made since. Where nothing was ever committed, that is the
// log's start (offset 0, or the start a reader resets to): what the group
// reads from anyway.
func (g *groupTxn) lastLocked() map[string]map[int32]kgo.EpochOffset {
	out := make(map[string]map[int32]kgo.EpochOffset, len(g.assigned))
	for topic, parts := range g.assigned {
		out[topic] = make(map[int32]kgo.EpochOffset, len(parts))
		for _, p := range parts {
			eo, ok := g.last[topic][p]
			if !ok {
				eo = kgo.EpochOffset{Epoch: -1, Offset: 0}
			}
			out[topic][p] = eo
		}
	}
	return out
}

// commitOffsets sends offsets in the open transaction, as member of the
// group's generation. An instance assigned no partition has none to send.
func (g *groupTxn) commitOffsets(ctx context.Context, member string, generation int32, offsets map[string]map[int32]kgo.EpochOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	p := g.producer()
	id, epoch, err := p.ProducerID(ctx)
	if err != nil {
		return err
	}
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID = p.txnID
	req.Group = g.group
	req.ProducerID, req.ProducerEpoch = id, epoch
	req.MemberID, req.Generation = member, generation
	for topic, parts := range offsets {
		t := kmsg.NewTxnOffsetCommitRequestTopic()
		t.Topic = topic
		for p, eo := range parts {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, eo.Offset, eo.Epoch
			rp.Metadata = &req.MemberID
			t.Partitions = append(t.Partitions, rp)
		}
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, p.Client)
	if err != nil {
		return err
	}
	err = offsetErrors(func(add func(string, int32, int16)) {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				add(t.Topic, p.Partition, p.ErrorCode)
			}
		}
	})
	return overIn(req.Generation, err)
}

// overIn marks err, the refusal of offsets committed in generation, as the
// end of that generation when it says so.
func overIn(generation int32, err error) error {
	if generationOver(err) {
		return &GenerationOver{Generation: generation, Err: err}
	}
	return err
}

// End commits the transaction if asked to, if Prepare's offsets were taken
// and if no rebalance came since it began; otherwise it aborts, and the
// records polled since the last commit come again. An error leaves the
// client in a state to replace.
func (g *groupTxn) End(ctx context.Context, try kgo.TransactionEndTry) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	sent, sendErr := g.sent, g.sendErr
	commit := try == kgo.TryCommit && !g.failed && sendErr == nil
	if try == kgo.TryCommit && sendErr != nil {
		g.logger.Warn("offsets refused: the transaction aborts", "error", sendErr)
	}
	g.sent, g.sendErr, g.failed = nil, nil, false
	p := g.producer()
	if !commit {
		if err := p.AbortBufferedRecords(ctx); err != nil {
			return false, err
		}
	}
	var err error
	unknown := false // a commit the broker may have made
	for range 10 {
		asked := commit
		commit, err = p.end(ctx, kgo.TransactionEndTry(commit))
		// UNKNOWN_SERVER_ERROR to a commit leaves it unconfirmed (franz-go
		// then aborts nothing, and answers the abort asked next with nil).
		unknown = unknown || asked && errors.Is(err, kerr.UnknownServerError)
		// franz-go's answers after which the transaction can still be
		// aborted, as GroupTransactSession does.
		if err == nil || !(errors.Is(err, kerr.OperationNotAttempted) ||
			errors.Is(err, kerr.TransactionAbortable) || errors.Is(err, kerr.UnknownServerError)) {
			break
		}
	}
	if err == nil && unknown && !commit {
		// Neither committed nor aborted for sure: an error, as a request
		// that got no answer is, so that the state is read again from
		// what Kafka holds rather than put back as if it aborted.
		err = errors.New("end transaction: the broker answered UNKNOWN_SERVER_ERROR to the commit: its outcome is unknown")
	}
	if err == nil { // the next transaction is the next producer's
		g.cur = (g.cur + 1) % len(g.producers)
	}
	if err == nil && commit {
		if sent != nil {
			if g.last == nil {
				g.last = map[string]map[int32]kgo.EpochOffset{}
			}
			for topic, parts := range sent {
				if g.last[topic] == nil {
					g.last[topic] = map[int32]kgo.EpochOffset{}
				}
				maps.Copy(g.last[topic], parts)
			}
		}
		return true, nil
	}
	g.SetOffsets(g.lastLocked())
	if err != nil {
		return false, err
	}
	if sendErr != nil && !abortable(sendErr) {
		return false, sendErr
	}
	var over *GenerationOver
	if errors.As(sendErr, &over) {
		return false, over
	}
	return false, nil
}

// generationOver reports whether a refused offset commit means that the
// generation the transaction was begun in is over.
func generationOver(err error) bool {
	return errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.UnknownMemberID) ||
		errors.Is(err, kerr.StaleMemberEpoch) || errors.Is(err, kerr.RebalanceInProgress)
}

// offsetErrors joins the errors of the partitions an offset commit's
// answer lists (each calls add for each).
func offsetErrors(each func(add func(topic string, partition int32, code int16))) error {
	var errs []error
	each(func(topic string, partition int32, code int16) {
		if err := kerr.ErrorForCode(code); err != nil {
			errs = append(errs, fmt.Errorf("offset of %s partition %d: %w", topic, partition, err))
		}
	})
	return errors.Join(errs...)
}

// abortable reports whether a refused offset commit only means that the
// transaction must abort: the group moved on (a rebalance, this member
// forgotten) or its coordinator is busy.
func abortable(err error) bool {
	for _, e := range []error{
		kerr.IllegalGeneration, kerr.UnknownMemberID, kerr.StaleMemberEpoch, kerr.GroupIDNotFound,
		kerr.RebalanceInProgress, kerr.CoordinatorNotAvailable, kerr.CoordinatorLoadInProgress,
		kerr.NotCoordinator, kerr.ConcurrentTransactions, kerr.UnknownServerError, kerr.TransactionAbortable,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// stableOffsets returns the offsets committed of the assigned partitions,
// once no transaction holds them open (a former owner's commit). It tries
// again while the broker says to, until ctx ends. It names the partitions,
// where kadm's FetchOffsets asks for the whole group: with RequireStable,
// that waits for the other members' open transactions too.
func stableOffsets(ctx context.Context, cl *kgo.Client, group string, assigned map[string][]int32) (map[string]map[int32]kgo.EpochOffset, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group, req.RequireStable = group, true
	for topic, parts := range assigned {
		t := kmsg.NewOffsetFetchRequestTopic()
		t.Topic, t.Partitions = topic, parts
		req.Topics = append(req.Topics, t)
	}
	for {
		resp, err := req.RequestWith(ctx, cl)
		var committed map[string]map[int32]kgo.EpochOffset
		if err == nil {
			committed, err = fetchedOffsets(resp)
		}
		if err == nil {
			return committed, nil
		}
		if !kerr.IsRetriable(err) { // retriable: unstable, or the coordinator moving
			return nil, fmt.Errorf("stable offsets of group %s: %w", group, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// fetchedOffsets returns the offsets resp holds (of either format), or
// its first error.
func fetchedOffsets(resp *kmsg.OffsetFetchResponse) (map[string]map[int32]kgo.EpochOffset, error) {
	code, topics := resp.ErrorCode, resp.Topics
	if len(resp.Groups) > 0 { // v8+
		code, topics = resp.Groups[0].ErrorCode, nil
		for _, t := range resp.Groups[0].Topics {
			ft := kmsg.NewOffsetFetchResponseTopic()
			ft.Topic = t.Topic
			for _, p := range t.Partitions {
				fp := kmsg.NewOffsetFetchResponseTopicPartition()
				fp.Partition, fp.Offset, fp.LeaderEpoch, fp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.ErrorCode
				ft.Partitions = append(ft.Partitions, fp)
			}
			topics = append(topics, ft)
		}
	}
	if err := kerr.ErrorForCode(code); err != nil {
		return nil, err
	}
	out := map[string]map[int32]kgo.EpochOffset{}
	for _, t := range topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("offset of %s partition %d: %w", t.Topic, p.Partition, err)
			}
			if p.Offset < 0 { // none committed
				continue
			}
			if out[t.Topic] == nil {
				out[t.Topic] = map[int32]kgo.EpochOffset{}
			}
			out[t.Topic][p.Partition] = kgo.EpochOffset{Epoch: p.LeaderEpoch, Offset: p.Offset}
		}
	}
	return out, nil
}

// ErrNotMember is Heartbeat's error while the session has no group
// client, or its client no membership.
var ErrNotMember = errors.New("not a member of the group")

// Heartbeat asks the group's coordinator whether the session is still the
// member it was: nil when it answers without error, for the member and
// generation franz-go holds now, and then lists the member. The member the
// coordinator answered at time t keeps its partitions until at least t
// plus the shorter of its session and rebalance timeouts, unless it gives
// them up itself or a peer evicts it (see process's lease). franz-go
// heartbeats the group itself; this is a question whose answer its caller
// sees.
//
// Apache Kafka's coordinator answers a heartbeat without error, blindly,
// while it loads the group (after it moved to another broker), even for a
// member the group dropped. So a heartbeat answered without error is
// followed by a DescribeGroups, which a loading coordinator refuses
// (COORDINATOR_LOAD_IN_PROGRESS), and which must list the member.
func (s *Session) Heartbeat(ctx context.Context) error {
	g := s.group.Load()
	if g == nil {
		return ErrNotMember
	}
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group = g.group
	if req.MemberID, req.Generation = g.GroupMetadata(); req.MemberID == "" {
		return ErrNotMember
	}
	resp, err := req.RequestWith(ctx, g.Client)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	describe := kmsg.NewPtrDescribeGroupsRequest()
	describe.Groups = []string{g.group}
	described, err := describe.RequestWith(ctx, g.Client)
	if err != nil {
		return err
	}
	for _, group := range described.Groups {
		if err := kerr.ErrorForCode(group.ErrorCode); err != nil {
			return err
		}
		for _, m := range group.Members {
			if m.MemberID == req.MemberID {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: the coordinator answered member %s's heartbeat, but does not list it", ErrNotMember, req.MemberID)
}

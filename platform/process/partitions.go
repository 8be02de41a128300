package process

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/platform/store"
)

// partitions owns the process's state by partition, as Kafka Streams'
// tasks do. Every topic the process reads or keeps state in has one
// partition count and one partitioner, so partition p of each holds the
// same keys; the consumer group (its copartitioned assignor) gives an instance the same
// partition numbers of every topic it reads. On each assignment it restores
// the state partitions it was newly assigned and drops the ones it lost,
// rebuilds what the services derive, and only then lets the process's
// session begin the generation's transactions and hand out records.
type partitions struct {
	p     *Process
	lease *lease // nil without a group

	mu          sync.Mutex
	assigned    []int32 // by the group, in generation assignedGen
	assignedGen int32   // -1 before the first assignment
	gen         int32   // generation of owned; -1 when what is held is not trusted
	owned       []int32 // restored and served
	revoked     bool    // between a revocation and the next assignment
	// rolledBack: an aborted transaction's writes were put back, and what
	// the services derive must be derived again before serving.
	rolledBack bool
	ready      sync.Once

	// served is owned between an assignment and the next revocation, nil
	// otherwise: what Owner reads, without mu, which a restore holds for
	// as long as it reads.
	served atomic.Pointer[[]int32]
	owners ownersCache

	// stopping is Run's context: once it is done, a revocation is the
	// process leaving its group, and its standby replicas follow nothing.
	stopping context.Context
}

var _ messaging.Owner = (*partitions)(nil)

// assignable is a store as partitions sees it.
type assignable interface {
	Topic() string
	Assign(ctx context.Context, partitions []int32) error
	Revoke(partitions []int32)
	Standby(partitions []int32) error
	Follow(ctx context.Context) error
	Mark(ctx context.Context) error
	Demote(partitions []int32)
	StandbyLag(ctx context.Context) (int64, error)
	OwnsPartition(p int32) bool
}

// Assigned restores the partitions the group assigned. A restore that
// fails (the registry down, a record that does not decode) stops the
// process, for its supervisor to start it again, rather than serve part of
// its state.
func (t *partitions) Assigned(ctx context.Context, claimed []int32, generation int32) error {
	t.lease.renewNow() // while it restores
	t.mu.Lock()
	defer t.mu.Unlock()
	t.assigned, t.assignedGen, t.revoked = claimed, generation, false
	if err := t.assign(ctx, claimed, generation); err != nil {
		return fmt.Errorf("%s: restore: %w", t.p.cfg.Name, err)
	}
	return nil
}

// assign makes the owned partitions claimed. Called with mu held.
func (t *partitions) assign(ctx context.Context, claimed []int32, generation int32) error {
	var keep []int32
	held := t.gen >= 0 && generation == t.gen+1
	if held {
		// Held without a gap: nobody else owned these since. A store
		// that dropped one (a write it could not put back) restores it.
		for _, p := range t.owned {
			if slices.Contains(claimed, p) && t.holdsPartition(p) {
				keep = append(keep, p)
			}
		}
	}
	var lost, fresh []int32
	for _, p := range t.owned {
		if !slices.Contains(keep, p) {
			lost = append(lost, p)
		}
	}
	for _, p := range claimed {
		if !slices.Contains(keep, p) {
			fresh = append(fresh, p)
		}
	}
	start := time.Now()
	for _, s := range t.p.stores {
		if held && t.p.cfg.Kafka.Standby {
			s.Demote(lost) // what it held until the revocation, followed from there
		} else {
			s.Revoke(lost)
		}
	}
	t.owned, t.gen = nil, -1
	t.served.Store(nil)
	if len(fresh) > 0 {
		g, gctx := errgroup.WithContext(ctx)
		for _, s := range t.p.stores {
			g.Go(func() error { return s.Assign(gctx, fresh) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	if t.p.cfg.Kafka.Standby {
		var others []int32
		for p := range t.p.partitionCount {
			if !slices.Contains(claimed, p) {
				others = append(others, p)
			}
		}
		for _, s := range t.p.stores {
			if err := s.Standby(others); err != nil {
				return err
			}
		}
	}
	if err := t.derive(ctx); err != nil {
		return err
	}
	t.rolledBack = false
	t.owned, t.gen = claimed, generation
	t.served.Store(&claimed)
	t.owners.invalidate()
	t.p.Logger.Info("partitions assigned", "generation", generation, "partitions", claimed,
		"restored", fresh, "dropped", lost, "took", time.Since(start).Round(time.Millisecond))
	t.ready.Do(t.p.towardReady)
	return nil
}

// holdsOwned reports whether every store still holds every partition
// owned: one whose put back failed dropped it. Called with mu held.
func (t *partitions) holdsOwned() bool {
	return !slices.ContainsFunc(t.owned, func(p int32) bool { return !t.holdsPartition(p) })
}

// holdsPartition reports whether every store still holds partition p.
func (t *partitions) holdsPartition(p int32) bool {
	return !slices.ContainsFunc(t.p.stores, func(s assignable) bool { return !s.OwnsPartition(p) })
}

// derive lets the services derive again what they derive from the state
// (process.OnRestored). Called with mu held.
func (t *partitions) derive(ctx context.Context) error {
	for _, restored := range t.p.restores {
		if err := restored(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ownAll restores every partition and owns it for good: the process reads
// no topic, so there is no group to share them with.
func (t *partitions) ownAll(ctx context.Context) error {
	all := make([]int32, t.p.partitionCount)
	for i := range all {
		all[i] = int32(i)
	}
	return t.Assigned(ctx, all, 0)
}

// Revoked stops serving: a rebalance takes the partitions away. Their
// state is kept for the next generation, unless the group went on without
// this instance (lost).
func (t *partitions) Revoked(lost bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.revoked = true
	t.served.Store(nil)
	if lost {
		t.drop()
		for _, fn := range t.p.losses {
			fn()
		}
		return
	}
	if t.p.cfg.Kafka.Standby && (t.stopping == nil || t.stopping.Err() == nil) {
		// Nobody writes to them before this instance rejoins: where their
		// changelogs end now is where a standby of what it holds goes on.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, s := range t.p.stores {
			if err := s.Mark(ctx); err != nil {
				t.p.Logger.Warn("revoked partitions will be followed from their start", "error", err)
			}
		}
	}
}

// Distrust stops serving after a transaction with writes did not commit.
// Known to be aborted (messaging.ErrAborted), its writes are put back by
// the stores as their writers learn of it, and Restore serves again once
// the services derived what they derive again. Otherwise, whether it
// committed is not known, and every partition's state is dropped, to be
// restored from Kafka.
func (t *partitions) Distrust(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.served.Store(nil)
	if errors.Is(err, messaging.ErrAborted) && t.gen >= 0 {
		t.p.Logger.Info("putting back what an aborted transaction wrote", "error", err)
		t.rolledBack = true
		var over *messaging.GenerationOver
		if errors.As(err, &over) && over.Generation >= t.assignedGen {
			// The partitions may be another's already: none is served
			// until the next assignment, which the group will make
			// (unless it has, and then they are served again).
			t.revoked = true
		}
		return
	}
	t.p.Logger.Warn("dropping the state of every partition to restore it", "error", err)
	t.drop()
}

// drop forgets every partition's state. Called with mu held.
func (t *partitions) drop() {
	for _, s := range t.p.stores {
		s.Revoke(t.owned)
	}
	t.owned, t.gen, t.rolledBack = nil, -1, false
	t.served.Store(nil)
}

// Restore restores the partitions assigned, after Distrust, unless a
// rebalance is under way: then the assignment restores them.
func (t *partitions) Restore(ctx context.Context) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.revoked {
		return false, nil
	}
	if t.rolledBack && t.holdsOwned() {
		t.rolledBack = false
		if err := t.derive(ctx); err != nil {
			return false, fmt.Errorf("%s: restore: %w", t.p.cfg.Name, err)
		}
		owned := t.owned
		t.served.Store(&owned)
		return true, nil
	}
	// Read again from Kafka, in the generation they were assigned in: a
	// later abort is put back, and the next generation keeps them.
	if err := t.assign(ctx, t.assigned, t.assignedGen); err != nil {
		return false, fmt.Errorf("%s: restore: %w", t.p.cfg.Name, err)
	}
	return true, nil
}

// serves reports whether this instance serves partition p now, and the
// served set it does in (a new one at each assignment and restore). It
// does not wait for a restore: a request for a key of a partition being
// restored is answered at once, by its owner or with a 503. Nor does it
// serve one past its lease, which the group may have taken it from.
func (t *partitions) serves(p int32) (*[]int32, bool) {
	owned := t.served.Load()
	return owned, owned != nil && slices.Contains(*owned, p) && t.lease.held()
}

// Owns implements httpserver.SelfOwners: whether this instance serves the
// key's partition now, and since which assignment or restore.
func (t *partitions) Owns(key string) (any, bool) {
	if t.p.partitionCount == 0 {
		return nil, false
	}
	return t.serves(store.PartitionOf(key, t.p.partitionCount))
}

// Owner implements httpserver.Owners: the instance whose session holds the
// key's partition, from the group's membership, where each member's
// metadata carries its advertised HTTP address.
func (t *partitions) Owner(ctx context.Context, key string) (httpserver.Owner, error) {
	if t.p.partitionCount == 0 {
		return httpserver.Owner{}, httpserver.ErrNoOwner
	}
	if _, ok := t.Owns(key); ok {
		return httpserver.Owner{Self: true}, nil
	}
	part := store.PartitionOf(key, t.p.partitionCount)
	owners, err := t.owners.get(ctx, t.p)
	if err != nil {
		return httpserver.Owner{}, err
	}
	addr, ok := owners[part]
	if !ok || addr == t.p.advertised {
		return httpserver.Owner{}, fmt.Errorf("partition %d: %w", part, httpserver.ErrNoOwner)
	}
	return httpserver.Owner{Addr: addr}, nil
}

// ownersCache keeps the group's partition owners for a moment: a forwarded
// request should not cost a round trip to the group coordinator each. The
// requests that find it stale share one description of the group, and
// each waits for it only as long as its context lets it.
type ownersCache struct {
	mu       sync.Mutex
	at       time.Time
	owners   map[int32]string
	describe singleflight.Group
}

const ownersFresh = time.Second

// adminTimeout bounds each of the process's own requests to Kafka (the
// group's description, an eviction, a fence): a coordinator that does not
// answer must not hold up what waits for it.
const adminTimeout = 5 * time.Second

func (c *ownersCache) invalidate() {
	c.mu.Lock()
	c.owners = nil
	c.mu.Unlock()
}

func (c *ownersCache) get(ctx context.Context, p *Process) (map[int32]string, error) {
	c.mu.Lock()
	owners, at := c.owners, c.at
	c.mu.Unlock()
	if owners != nil && time.Since(at) < ownersFresh {
		return owners, nil
	}
	described := c.describe.DoChan("", func() (any, error) {
		// Shared by several requests: none of their contexts ends it.
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		owners, err := p.describeOwners(ctx)
		if err == nil {
			c.mu.Lock()
			c.owners, c.at = owners, time.Now()
			c.mu.Unlock()
		}
		return owners, err
	})
	select {
	case r := <-described:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(map[int32]string), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// describeOwners asks the group coordinator who holds each partition: only
// a stable group's assignment is an answer.
func (p *Process) describeOwners(ctx context.Context) (map[int32]string, error) {
	g, err := p.describeGroup(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", p.cfg.Name, err)
	}
	if !g.stable {
		return nil, fmt.Errorf("group %s is rebalancing: %w", p.cfg.Name, httpserver.ErrNoOwner)
	}
	owners := map[int32]string{}
	for _, m := range g.members {
		for _, part := range m.partitions {
			owners[part] = AdvertisedAddr(m.data)
		}
	}
	return owners, ctx.Err()
}

// group is the process's consumer group as its coordinator describes it.
type group struct {
	stable  bool
	members map[string]member // by member id
}

// member is what a group member advertises (its user data, "" until the
// group is stable again) and the partitions it is assigned.
type member struct {
	data       string
	partitions []int32 // the same numbers of every topic (the copartitioned assignor)
}

func (p *Process) describeGroup(ctx context.Context) (group, error) {
	groups, err := kadm.NewClient(p.admin).DescribeGroups(ctx, p.cfg.Name)
	if err != nil {
		return group{}, err
	}
	d, ok := groups[p.cfg.Name]
	if !ok {
		return group{}, fmt.Errorf("group %s not described", p.cfg.Name)
	}
	if d.Err != nil {
		return group{}, d.Err
	}
	g := group{stable: d.State == "Stable", members: map[string]member{}}
	for _, m := range d.Members {
		var mb member
		// A member that has not synced yet (the group rebalances, or just
		// restarted) describes itself with nothing.
		if meta, ok := m.Join.AsConsumer(); ok {
			mb.data = string(meta.UserData)
		}
		if a, ok := m.Assigned.AsConsumer(); ok && len(a.Topics) > 0 {
			mb.partitions = a.Topics[0].Partitions
		}
		g.members[m.MemberID] = mb
	}
	return g, nil
}

// memberData is what an instance advertises in its group membership: its
// HTTP address and a start id of its own, so that a restart at the same
// address is told from its predecessor.
func memberData(advertised string) string { return advertised + "#" + uuid.NewString() }

// AdvertisedAddr is the HTTP address in a member's advertised data.
func AdvertisedAddr(data string) string {
	addr, _, _ := strings.Cut(data, "#")
	return addr
}

// checkCoPartitioned fails unless every topic has the same partition
// count: the state of a key must live in the partition whose commands its
// owner handles.
func (p *Process) checkCoPartitioned(ctx context.Context, topics []string) error {
	listed, err := kadm.NewClient(p.admin).ListTopics(ctx, topics...)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return fmt.Errorf("partitions of %v: %w", topics, err)
	}
	counts := map[string]int{}
	var n int
	mismatch := false
	for _, topic := range topics {
		ps := len(listed[topic].Partitions)
		counts[topic] = ps
		if n == 0 {
			n = ps
		}
		mismatch = mismatch || ps != n
	}
	if mismatch {
		return fmt.Errorf("%w: %v", errNotCoPartitioned, counts)
	}
	p.partitionCount = int32(n)
	return nil
}

var errNotCoPartitioned = errors.New("the topics a process reads and keeps its state in must have one partition count")

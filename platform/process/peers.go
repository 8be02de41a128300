package process

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// watchPeers takes dead instances out of the process's consumer group at
// once, instead of leaving their partitions unserved until their session
// times out (KAFKA_SESSION_TIMEOUT, seconds). Each member advertises its
// HTTP address and a start id of its own (memberData). An instance is
// certainly dead when its port refuses connections twice in a row (see
// peers.saw), or when it advertises this instance's address under another
// start id (it is this instance's predecessor, restarted in its place, as
// a supervisor does). Anything less certain, such as a timeout or a name
// that no longer resolves, is left to the session timeout: the generation
// would fence what an evicted live member writes, but not what it reads,
// and it would answer reads of its partitions' keys from its state until
// its next heartbeat (see lease) while their new owner changes them. A
// predecessor evicted that joins again is no predecessor but a live
// instance given this one's address: that ends the watch, and the
// process, with the reason.
func (p *Process) watchPeers(ctx context.Context, w *peers) error {
	ticker := time.NewTicker(peerCheckEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		look, cancel := context.WithTimeout(ctx, adminTimeout)
		_, err := p.evictDead(look, w, true)
		cancel()
		if err != nil {
			return err
		}
	}
}

// peers is what an instance remembers of its group's members between two
// looks at them.
type peers struct {
	advertised map[string]string // by member id, as last seen while the group was stable
	refused    map[string]int    // by member id: looks in a row that found its port refusing
	// evicted are the member data of the predecessors evicted: a dead
	// one never joins again, as its start id died with it.
	evicted map[string]bool
}

func newPeers() *peers {
	return &peers{advertised: map[string]string{}, refused: map[string]int{}, evicted: map[string]bool{}}
}

// saw records what a look at member id's address found, and reports
// whether the member is now certainly dead, or suspect (refused once): its
// port refuses connections, nothing listens there, so the process is gone
// (or misconfigured, advertised where it does not listen). A name that
// does not resolve is not enough: Kubernetes drops the name of a pod that
// fails its readiness probe, a live one.
func (w *peers) saw(id string, r reach) (dead, suspect bool) {
	if r == reachRefused {
		w.refused[id]++
		dead = w.refused[id] >= 2
		return dead, !dead
	}
	delete(w.refused, id)
	return false, false
}

// forget drops what is remembered of a member that left.
func (w *peers) forget(id string) {
	delete(w.advertised, id)
	delete(w.refused, id)
}

// evictBeforeJoining looks at the group twice, a check apart, before this
// instance joins it: the dead members a stable group shows (a predecessor,
// the instances of a deployment that all died) are evicted now, while
// Kafka still shows what they advertise, rather than hold up the join.
func (p *Process) evictBeforeJoining(ctx context.Context, w *peers) error {
	suspect, err := p.evictDead(ctx, w, false)
	if suspect && err == nil {
		time.Sleep(peerCheckEvery) // the second look that makes one certain
		_, err = p.evictDead(ctx, w, false)
	}
	return err
}

// evictDead looks at the group's members once and evicts the dead ones. It
// reports whether a member is suspect (refused once), and fails when a
// predecessor it evicted is back: a live instance with this one's
// address. joined says whether this instance's session runs, its
// transactional ids taken.
func (p *Process) evictDead(ctx context.Context, w *peers, joined bool) (suspect bool, err error) {
	members, err := p.describeMembers(ctx, w)
	if err != nil {
		return false, nil // the coordinator is busy or away: next time
	}
	for id, data := range members {
		if data == p.member {
			continue
		}
		addr := AdvertisedAddr(data)
		predecessor := addr == p.advertised
		if predecessor && w.evicted[data] {
			return suspect, fmt.Errorf("ADVERTISED_HTTP_ADDR %s is another live instance's too: evicted as this one's predecessor, it joined again; "+
				"each instance needs an address of its own (they would evict each other, and fence each other's transactions, for ever)", addr)
		}
		dead := predecessor
		if !dead {
			var maybe bool
			dead, maybe = w.saw(id, probe(addr))
			suspect = suspect || maybe
		}
		if dead {
			if p.evict(ctx, id, addr, joined) && predecessor {
				w.evicted[data] = true
			}
			w.forget(id)
		}
	}
	return suspect, nil
}

// peerCheckEvery is how often an instance looks for dead peers; with two
// looks in a row that find its port refusing, a dead instance leaves the
// group within about twice that.
const peerCheckEvery = 250 * time.Millisecond

// reach is what a dial of a peer's address found.
type reach int

const (
	reachUnknown reach = iota // a timeout, an unreachable network, a name that does not resolve
	reachUp                   // a connection
	reachRefused              // the port refused it
)

func probe(addr string) reach {
	conn, err := net.DialTimeout("tcp", addr, peerCheckEvery)
	if err != nil {
		return reachOf(err)
	}
	conn.Close()
	return reachUp
}

// reachOf classifies a dial's error.
func reachOf(err error) reach {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return reachRefused
	}
	return reachUnknown
}

// describeMembers returns the group's members by id, with what each
// advertises. Kafka shows it only while the group is stable; while it
// rebalances, a member is known by what it advertised when last seen
// stable, so a dead member that holds up a rebalance can be evicted too.
func (p *Process) describeMembers(ctx context.Context, w *peers) (map[string]string, error) {
	g, err := p.describeGroup(ctx)
	if err != nil {
		return nil, err
	}
	members := map[string]string{}
	for id, m := range g.members {
		if m.data != "" {
			w.advertised[id] = m.data
		}
		if data, ok := w.advertised[id]; ok {
			members[id] = data
		}
	}
	for id := range w.advertised {
		if _, ok := g.members[id]; !ok {
			w.forget(id) // left
		}
	}
	return members, nil
}

// evict removes a member from the group, as its own LeaveGroup would: the
// coordinator rebalances the group without it. It reports whether it did.
func (p *Process) evict(ctx context.Context, id, addr string, joined bool) bool {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = p.cfg.Name
	leaving := kmsg.NewLeaveGroupRequestMember()
	leaving.MemberID = id
	req.Members = append(req.Members, leaving)
	resp, err := req.RequestWith(ctx, p.admin) // to the group's coordinator
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err == nil && len(resp.Members) == 1 {
		err = kerr.ErrorForCode(resp.Members[0].ErrorCode)
	}
	if err != nil {
		p.Logger.Warn("evict a dead instance", "member", id, "advertised", addr, "error", err)
		return false
	}
	p.partitions.owners.invalidate()
	p.Logger.Info("evicted a dead instance from the group", "member", id, "advertised", addr)
	for _, id := range p.toFence(addr, joined) {
		p.fence(ctx, id)
	}
	return true
}

// toFence returns the transactional ids of the instance evicted at addr.
// None for a predecessor at this instance's own address once this
// instance has joined: its ids are this instance's, whose session took
// them (fencing the predecessor's), and taking them again would fence
// this instance's own producers.
func (p *Process) toFence(addr string, joined bool) []string {
	if joined && addr == p.advertised {
		return nil
	}
	return messaging.TransactionalIDs(transactionalID(p.cfg.Name, addr))
}

// fence aborts the transaction a dead instance left open under txnID (one
// of its producers'), as its restart would, by taking the id: until then
// its partitions' last stable offset stays where the transaction began,
// and their new owner's restore, which reads up to their end, waits for
// the broker to time the transaction out.
func (p *Process) fence(ctx context.Context, txnID string) {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &txnID
	req.TransactionTimeoutMillis = int32(transactionTimeout.Milliseconds())
	req.ProducerID, req.ProducerEpoch = -1, -1
	for attempt := 0; attempt < 20; attempt++ {
		resp, err := req.RequestWith(ctx, p.admin) // to the transaction's coordinator
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if errors.Is(err, kerr.ConcurrentTransactions) {
			time.Sleep(50 * time.Millisecond) // the broker is aborting it: ask again
			continue
		}
		if err != nil {
			p.Logger.Warn("fence a dead instance's transactions", "transactional_id", txnID, "error", err)
		}
		return
	}
}

// transactionTimeout is how long a crashed instance's open transaction
// holds up the readers of its partitions before the broker aborts it
// (when no eviction fenced it sooner); commits follow writes within
// milliseconds, so no live transaction comes near it.
const transactionTimeout = 10 * time.Second

// transactionalID is the transactional id of a process's instance: the
// same after a restart at the same address, so the restart aborts what its
// predecessor left open.
func transactionalID(name, advertised string) string { return name + "@" + advertised }

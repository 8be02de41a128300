package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
)

// heldStore is an assignable that holds what it is assigned, and can
// drop a partition as a store does when it cannot put back a write.
type heldStore struct {
	owned    []int32
	restored [][]int32 // what each Assign was asked to restore
}

func (s *heldStore) Topic() string { return "held" }
func (s *heldStore) Assign(_ context.Context, ps []int32) error {
	s.restored = append(s.restored, slices.Clone(ps))
	s.owned = append(s.owned, ps...)
	return nil
}
func (s *heldStore) Revoke(ps []int32) {
	s.owned = slices.DeleteFunc(s.owned, func(p int32) bool { return slices.Contains(ps, p) })
}
func (s *heldStore) Standby([]int32) error                     { return nil }
func (s *heldStore) Follow(context.Context) error              { return nil }
func (s *heldStore) Mark(context.Context) error                { return nil }
func (s *heldStore) Demote(ps []int32)                         { s.Revoke(ps) }
func (s *heldStore) StandbyLag(context.Context) (int64, error) { return 0, nil }
func (s *heldStore) OwnsPartition(p int32) bool                { return slices.Contains(s.owned, p) }

// heldPartitions are the partitions, two, of a process ready since its
// start whose one store is s.
func heldPartitions() (s *heldStore, tp *partitions) {
	s = &heldStore{}
	tp = &partitions{p: &Process{Logger: slog.New(slog.DiscardHandler), stores: []assignable{s}, partitionCount: 2}, gen: -1, assignedGen: -1}
	tp.ready.Do(func() {})
	return s, tp
}

// A partition held across a rebalance is kept without a restore only if
// every store still holds it: one that a store dropped (a write it could
// not put back) is restored, not served with no state.
func TestAPartitionAStoreDroppedIsRestoredWhenKept(t *testing.T) {
	s := &heldStore{}
	tp := &partitions{p: &Process{Logger: slog.New(slog.DiscardHandler), stores: []assignable{s}, partitionCount: 2}, gen: -1}
	tp.ready.Do(func() {}) // no HTTP server to mark ready
	if err := tp.assign(t.Context(), []int32{0, 1}, 1); err != nil {
		t.Fatal(err)
	}
	s.Revoke([]int32{0}) // the store could not put back a write of partition 0

	if err := tp.assign(t.Context(), []int32{0, 1}, 2); err != nil {
		t.Fatal(err)
	}
	if len(s.restored) != 2 || !slices.Equal(s.restored[1], []int32{0}) {
		t.Errorf("restores: got %v, want [[0 1] [0]]: partition 0 restored again, 1 kept", s.restored)
	}
	if !s.OwnsPartition(0) || !s.OwnsPartition(1) {
		t.Errorf("the store holds %v, want 0 and 1", s.owned)
	}
}

// After a transaction whose outcome is unknown, every partition is read
// again from Kafka, in the generation it was assigned in: the next
// abort's writes are put back rather than every partition read again,
// and the next generation keeps what it still assigns.
func TestARestoreAfterAnUnknownOutcomeKeepsTheGeneration(t *testing.T) {
	s, tp := heldPartitions()
	if err := tp.Assigned(t.Context(), []int32{0, 1}, 5); err != nil {
		t.Fatal(err)
	}
	tp.Distrust(errors.New("end transaction: broker unreachable")) // outcome unknown: dropped
	if ok, err := tp.Restore(t.Context()); !ok || err != nil {
		t.Fatalf("Restore: %v %v", ok, err)
	}
	if tp.gen != 5 {
		t.Errorf("generation after the restore: got %d, want 5", tp.gen)
	}
	restores := len(s.restored)
	if err := tp.Assigned(t.Context(), []int32{0, 1}, 6); err != nil {
		t.Fatal(err)
	}
	if len(s.restored) != restores {
		t.Errorf("the next generation read %v again, want both kept", s.restored[restores:])
	}
}

// A process is ready once its first partitions are restored and its
// writes open, in either order (with no group, the session opens its
// writes before the process owns its partitions): not before both.
func TestAProcessIsReadyOnceRestoredAndOpen(t *testing.T) {
	for _, restoredFirst := range []bool{true, false} {
		logger := slog.New(slog.DiscardHandler)
		srv, err := httpserver.New(httpserver.Config{Addr: "127.0.0.1:0"}, logger)
		if err != nil {
			t.Fatal(err)
		}
		p := &Process{Logger: logger, HTTP: srv, ready: make(chan struct{}), stores: []assignable{&heldStore{}}, partitionCount: 2}
		tp := &partitions{p: p, gen: -1, assignedGen: -1}
		steps := []func(){
			func() {
				if err := tp.Assigned(t.Context(), []int32{0, 1}, 1); err != nil {
					t.Fatal(err)
				}
			},
			func() { p.opened.Do(p.towardReady) }, // the session's Opened
		}
		if !restoredFirst {
			slices.Reverse(steps)
		}
		steps[0]()
		if got := readyz(srv); got != http.StatusServiceUnavailable {
			t.Errorf("restored first %v, after one step: /readyz %d, want 503", restoredFirst, got)
		}
		select {
		case <-p.ready:
			t.Errorf("restored first %v, after one step: the loops may start, want them held", restoredFirst)
		default:
		}
		steps[1]()
		if got := readyz(srv); got != http.StatusOK {
			t.Errorf("restored first %v, after both: /readyz %d, want 200", restoredFirst, got)
		}
		select {
		case <-p.ready:
		default:
			t.Errorf("restored first %v, after both: the loops are held", restoredFirst)
		}
	}
}

func readyz(srv *httpserver.Server) int {
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return w.Code
}

// unfollowedStore is a heldStore whose standby does not follow, as a
// real one once its process stops: Mark fails.
type unfollowedStore struct {
	heldStore
	marks int
}

func (s *unfollowedStore) Mark(context.Context) error {
	s.marks++
	return errors.New("standby held: not following (Follow)")
}

// A revocation marks where the standby replicas go on from, unless it is
// the process leaving the group as it stops: nothing follows then, and
// a clean stop logs no warning.
func TestAStopRevokesWithoutAWarning(t *testing.T) {
	for _, stopping := range []bool{false, true} {
		var logged bytes.Buffer
		s := &unfollowedStore{}
		p := &Process{Logger: slog.New(slog.NewTextHandler(&logged, nil)), stores: []assignable{s}, partitionCount: 2}
		p.cfg.Kafka.Standby = true
		tp := &partitions{p: p, gen: -1, assignedGen: -1}
		tp.ready.Do(func() {})
		ctx, cancel := context.WithCancel(t.Context())
		tp.stopping = ctx
		if err := tp.Assigned(t.Context(), []int32{0, 1}, 1); err != nil {
			t.Fatal(err)
		}
		if stopping {
			cancel()
		}
		tp.Revoked(false)
		cancel()
		warned := strings.Contains(logged.String(), "level=WARN")
		if stopping && (s.marks != 0 || warned) {
			t.Errorf("revoked as the process stops: %d marks, logged %q; want none", s.marks, logged.String())
		}
		if !stopping && (s.marks != 1 || !warned) {
			t.Errorf("revoked by a rebalance: %d marks, logged %q; want one, and its failure warned of", s.marks, logged.String())
		}
	}
}

// An abort because the group's generation is over serves nothing until
// the next assignment: the partitions may be another instance's already.
// A plain abort serves again once what it wrote is put back, and so does
// one of a generation the group has assigned after already (the abort's
// end raced the assignment).
func TestAnAbortOfAGenerationOverServesNothingUntilAssigned(t *testing.T) {
	over := func(generation int32) error {
		return fmt.Errorf("%w (%w: %w)", messaging.ErrFenced, messaging.ErrAborted,
			&messaging.GenerationOver{Generation: generation, Err: errors.New("illegal generation")})
	}
	for name, c := range map[string]struct {
		assigned int32 // the generation assigned before the abort is told
		err      error
		serve    bool
	}{
		"the generation over":                      {1, over(1), false},
		"a generation over that a later one ended": {2, over(1), true},
		"a plain abort":                            {1, fmt.Errorf("%w (%w)", messaging.ErrFenced, messaging.ErrAborted), true},
	} {
		_, tp := heldPartitions()
		for g := int32(1); g <= c.assigned; g++ {
			if err := tp.Assigned(t.Context(), []int32{0, 1}, g); err != nil {
				t.Fatal(err)
			}
		}
		tp.Distrust(c.err)
		serving, err := tp.Restore(t.Context())
		if err != nil || serving != c.serve || (tp.served.Load() != nil) != c.serve {
			t.Errorf("%s: Restore: serving %v (%v), served %v; want serving %v", name, serving, err, tp.served.Load(), c.serve)
		}
		if err := tp.Assigned(t.Context(), []int32{0, 1}, c.assigned+1); err != nil || tp.served.Load() == nil {
			t.Errorf("%s: the next assignment: %v, served %v; want it served", name, err, tp.served.Load())
		}
	}
}

// Partitions lost run the OnLost hooks, once their state is dropped, so
// that a service forgets what it derived from them (the saga engine, the
// sagas it held, to take them over when given back); partitions revoked
// in a rebalance do not: the next assignment derives again.
func TestLostPartitionsRunTheOnLostHooks(t *testing.T) {
	for _, lost := range []bool{false, true} {
		s := &heldStore{}
		p := &Process{Logger: slog.New(slog.DiscardHandler), stores: []assignable{s}, partitionCount: 2}
		var ran []int
		p.OnLost(func() { ran = append(ran, len(s.owned)) })
		tp := &partitions{p: p, gen: -1, assignedGen: -1}
		tp.ready.Do(func() {})
		if err := tp.Assigned(t.Context(), []int32{0, 1}, 1); err != nil {
			t.Fatal(err)
		}
		tp.Revoked(lost)
		if want := map[bool][]int{false: nil, true: {0}}[lost]; !slices.Equal(ran, want) {
			t.Errorf("revoked, lost %t: the hooks ran with %v partitions held, want %v", lost, ran, want)
		}
	}
}

// A partition revoked and assigned again is another stint of it: a keyed
// request's handler that read its state in the first is not answered in
// the second (httpserver's stillOwned), and neither is one that read it
// before a restore.
func TestAPartitionAssignedAgainIsAnotherStint(t *testing.T) {
	_, tp := heldPartitions()
	if err := tp.Assigned(t.Context(), []int32{0, 1}, 1); err != nil {
		t.Fatal(err)
	}
	first, ok := tp.Owns("k")
	if !ok {
		t.Fatal("the key not owned once its partition is assigned")
	}
	tp.Revoked(false)
	if _, ok := tp.Owns("k"); ok {
		t.Fatal("the key owned once its partition is revoked")
	}
	if err := tp.Assigned(t.Context(), []int32{0, 1}, 3); err != nil {
		t.Fatal(err)
	}
	second, ok := tp.Owns("k")
	if !ok || second == first {
		t.Errorf("assigned again: owned %v in stint %p, want owned in another stint than %p", ok, second, first)
	}
	tp.Distrust(fmt.Errorf("%w (%w)", messaging.ErrFenced, messaging.ErrAborted))
	if serving, err := tp.Restore(t.Context()); !serving || err != nil {
		t.Fatalf("Restore: %v %v", serving, err)
	}
	if third, ok := tp.Owns("k"); !ok || third == second {
		t.Errorf("restored: owned %v in stint %p, want owned in another stint than %p", ok, third, second)
	}
}

package console

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/bits"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/saga"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)

// instance is a saga started at t0 plus started seconds, its latest
// transition a second later, on step (with its direction) in state;
// COMPLETED and REJECTED ones have ended.
func instance(id, typ, state, step string, started int, attempt int) *saga.SagaInstance {
	at := t0.Add(time.Duration(started) * time.Second)
	v := &saga.SagaInstance{SagaID: id, SagaType: typ, Version: 1, State: state, Attempt: attempt,
		History: []saga.SagaTransition{{At: at, Event: saga.EventStarted, State: saga.StateRunning, Step: "first"},
			{At: at.Add(time.Second), Event: "Reply", State: state, Step: step}}}
	if state == saga.StateRunning || state == saga.StateCompensating {
		v.PendingCommandID = id + ":" + step
		v.Deadline = at.Add(time.Minute)
	}
	return v
}

// listAll reads every page of q, limit by limit, following the cursors.
func listAll(t *testing.T, x *Index, q Query) (ids []string, total int) {
	t.Helper()
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("more than 100 pages: the cursor does not move")
		}
		p := x.List(q)
		if len(p.Sagas) > q.Limit {
			t.Fatalf("page of %d, want at most %d", len(p.Sagas), q.Limit)
		}
		for _, s := range p.Sagas {
			ids = append(ids, s.SagaID)
		}
		total = p.Total
		if p.Next == nil {
			return ids, total
		}
		q.After = p.Next
	}
}

func TestListFiltersPagesAndCounts(t *testing.T) {
	x := NewIndex(0)
	put := []*saga.SagaInstance{
		instance("a1", "CreateOrder", saga.StateRunning, "reserve_credit", 10, 1),
		instance("a2", "CreateOrder", saga.StateRunning, "authorize_payment", 20, 3),
		instance("a3", "CreateOrder", saga.StateCompensating, "reserve_credit:compensate", 30, 1),
		instance("a4", "CreateOrder", saga.StateCompleted, "", 40, 0),
		instance("b1", "CancelOrder", saga.StateRunning, "release_credit", 20, 1), // same start as a2: by id
		instance("b2", "CancelOrder", saga.StateRejected, "", 50, 0),
		instance("b3", "CancelOrder", saga.StateRunning, "refund_payment", 60, 1),
	}
	for _, v := range put {
		if _, changed := x.Put(v, 0); !changed {
			t.Fatalf("put %s: not changed", v.SagaID)
		}
	}
	now := t0.Add(100 * time.Second)
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"all, newest first, ties by id", Query{}, []string{"b3", "b2", "a4", "a3", "a2", "b1", "a1"}},
		{"type", Query{Type: "CreateOrder"}, []string{"a4", "a3", "a2", "a1"}},
		{"state", Query{State: saga.StateRunning}, []string{"b3", "a2", "b1", "a1"}},
		{"step, either direction", Query{Step: "reserve_credit"}, []string{"a3", "a1"}},
		{"type and state", Query{Type: "CancelOrder", State: saga.StateRunning}, []string{"b3", "b1"}},
		{"type, state and step", Query{Type: "CreateOrder", State: saga.StateRunning, Step: "authorize_payment"}, []string{"a2"}},
		{"min age", Query{MinAge: 70 * time.Second}, []string{"a3", "a2", "b1", "a1"}}, // started at or before 30s
		{"min age and state", Query{MinAge: 70 * time.Second, State: saga.StateRunning}, []string{"a2", "b1", "a1"}},
		{"prefix", Query{Prefix: "a"}, []string{"a4", "a3", "a2", "a1"}},
		{"prefix and filters", Query{Prefix: "b", State: saga.StateRunning, MinAge: 50 * time.Second}, []string{"b1"}},
		{"no match", Query{Type: "CreateOrder", State: saga.StateRejected}, nil},
		{"prefix, no match", Query{Prefix: "c"}, nil},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 2, 50} {
			t.Run(fmt.Sprintf("%s, limit %d", tt.name, limit), func(t *testing.T) {
				q := tt.q
				q.Limit, q.Now = limit, now
				got, total := listAll(t, x, q)
				if !slices.Equal(got, tt.want) || total != len(tt.want) {
					t.Errorf("got %v (total %d), want %v (total %d)", got, total, tt.want, len(tt.want))
				}
			})
		}
	}
}

func TestPutKeepsTheLatestAndTheEnded(t *testing.T) {
	x := NewIndex(0)
	x.now = func() time.Time { return t0.Add(time.Minute) }
	running := instance("s", "CreateOrder", saga.StateRunning, "authorize_payment", 0, 2)
	ended := instance("s", "CreateOrder", saga.StateCompleted, "", 0, 0)
	ended.History = append(ended.History, saga.SagaTransition{At: t0.Add(5 * time.Second), Event: "OrderApproved", State: saga.StateCompleted})
	s, changed := x.Put(running, 0)
	if !changed || !s.Retrying || s.Attempt != 2 || s.Step != "authorize_payment" || s.Deadline == "" {
		t.Fatalf("running: got %+v changed %v, want retrying attempt 2 on authorize_payment with a deadline", s, changed)
	}
	if _, changed := x.Put(running, 0); changed {
		t.Error("the same state again: changed, want unchanged")
	}
	if s, changed = x.Put(ended, 0); !changed || s.State != saga.StateCompleted || s.Step != "" || s.Deadline != "" || s.Retrying || s.Overdue {
		t.Errorf("ended: got %+v changed %v, want COMPLETED with no step, deadline or flags", s, changed)
	}
	// The state topic read behind the archive: the saga stays ended.
	if _, changed := x.Put(running, 0); changed {
		t.Error("a running state after the ended one: changed, want ignored")
	}
	if p := x.List(Query{State: saga.StateRunning, Limit: 10, Now: t0}); p.Total != 0 {
		t.Errorf("RUNNING after the end: total %d, want 0", p.Total)
	}
	stats := x.Stats(t0.Add(time.Minute), 2)
	want := []Minute{{At: t0, Started: 1, Completed: 1}, {At: t0.Add(time.Minute)}}
	if !reflect.DeepEqual(stats, want) {
		t.Errorf("stats: got %+v, want %+v", stats, want)
	}
	x.Remove("s")
	if p := x.List(Query{Limit: 10, Now: t0}); p.Total != 0 || len(p.Sagas) != 0 {
		t.Errorf("after Remove: got %+v, want nothing", p)
	}
	// A day later, that minute is forgotten, and a saga of then not counted.
	x.now = func() time.Time { return t0.Add(statsKept + 2*time.Minute) }
	x.Put(instance("new", "CreateOrder", saga.StateRunning, "reserve_credit", int(statsKept/time.Second)+60, 1), 0)
	x.Put(instance("old", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1), 0)
	if len(x.minutes) != 1 {
		t.Errorf("a day later: %d minutes kept, want the one of the new saga", len(x.minutes))
	}
}

// With a limit on ended sagas, the index keeps the newest ended ones and
// every running one, however old: memory bounded by the limit and what runs.
func TestTheIndexKeepsTheNewestEndedSagas(t *testing.T) {
	x := NewIndex(3)
	x.Put(instance("running-old", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1), 0)
	for i := range 6 { // started a second apart, newest last
		state := []string{saga.StateCompleted, saga.StateRejected}[i%2]
		x.Put(instance(fmt.Sprintf("ended-%d", i), "CreateOrder", state, "", 10+i, 0), 0)
	}
	// One running saga ends: the oldest ended one left goes.
	x.Put(instance("running-old", "CreateOrder", saga.StateCompleted, "", 0, 0), 0)
	ids, total := listAll(t, x, Query{Limit: 10, Now: t0})
	if want := []string{"ended-5", "ended-4", "ended-3"}; !slices.Equal(ids, want) || total != 3 || x.Len() != 3 {
		t.Errorf("got %v (total %d, %d held), want the 3 newest ended: %v", ids, total, x.Len(), want)
	}
	x.Put(instance("running-new", "CreateOrder", saga.StateRunning, "reserve_credit", 100, 1), 0)
	x.Put(instance("running-older", "CreateOrder", saga.StateRunning, "reserve_credit", 1, 1), 0)
	if got := x.List(Query{State: saga.StateRunning, Limit: 10, Now: t0}).Total; got != 2 || x.Len() != 5 {
		t.Errorf("running: got %d (%d held), want both, whatever their age", got, x.Len())
	}
}

// A start without a snapshot reads the day of ended sagas for the stats
// (8.6 million at 100 a second): each started before the list's and is let
// go at once. None is remembered as gone: every record of it was written
// before the reader listed its ends, and so read already. Remembered, they
// held about 95 bytes each until the first minute closed.
func TestTheSagasTheBackfillLetsGoAreNotRemembered(t *testing.T) {
	const listed, backfilled = 10, 5000
	x := NewIndex(listed)
	for i := range listed { // the list's part: the newest
		x.Put(instance(fmt.Sprintf("new-%d", i), "CreateOrder", saga.StateCompleted, "", 86000+i, 0), 0)
	}
	for i := range backfilled { // the day before it, as the backfill puts them
		x.put(instance(fmt.Sprintf("day-%d", i), "CreateOrder", saga.StateCompleted, "", i*86000/backfilled, 0), 0, int64(i), false, false)
	}
	if x.Len() != listed || len(x.gone) != 0 {
		t.Errorf("the index holds %d sagas and remembers %d as gone; want %d and none", x.Len(), len(x.gone), listed)
	}
}

// A saga let go past MaxEnded whose pointer to its archived copy was read,
// before its copy or after, is not remembered as gone: no running state
// of it can come after its pointer. Remembered, every saga held about 95
// bytes until its minute closed, and for good while none closed.
func TestASagaWhosePointerWasReadIsNotRememberedAsGone(t *testing.T) {
	const maxEnded, sagas = 10, 1000
	x := NewIndex(maxEnded)
	for i := range sagas {
		id := fmt.Sprint("s-", i)
		x.Put(instance(id, "CreateOrder", saga.StateRunning, "reserve_credit", i, 1), int64(2*i))
		if i%2 == 0 { // the pointer, its copy ahead
			x.Archived(id, true)
			x.Put(instance(id, "CreateOrder", saga.StateCompleted, "", i, 0), int64(i))
		} else { // the copy, then the pointer
			x.Put(instance(id, "CreateOrder", saga.StateCompleted, "", i, 0), int64(i))
			x.Archived(id, false)
		}
	}
	if x.Len() != maxEnded || len(x.gone) != 0 || len(x.awaiting) != 0 {
		t.Errorf("holds %d sagas, remembers %d as gone and %d awaiting; want %d, none, none", x.Len(), len(x.gone), len(x.awaiting), maxEnded)
	}
}

// A saga waits on a command in whatever state its version names: the
// checkpoint's oldest running record counts one in a state it does not know.
func TestTheOldestRunningCountsASagaOfAnyState(t *testing.T) {
	x := NewIndex(0)
	x.Put(instance("running", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1), 9)
	paused := instance("paused", "CreateOrder", "PAUSED", "approve_order", 1, 1)
	paused.PendingCommandID, paused.Deadline = "paused:approve_order", t0.Add(time.Hour)
	x.Put(paused, 5)
	x.Put(instance("ended", "CreateOrder", saga.StateCompleted, "", 2, 0), 3)
	if got, want := x.oldestRunning(), map[typePartition]int64{{"CreateOrder", 0}: 5}; !maps.Equal(got, want) {
		t.Errorf("oldestRunning: got %v, want %v: the PAUSED saga's record", got, want)
	}
}

// The checkpoint, once a minute under the index's read lock, reads the
// sagas not ended, not the ended ones kept beside them (CONSOLE_MAX_ENDED,
// 50,000 by default): it walked every saga held.
func TestTheOldestRunningReadsOnlyTheSagasNotEnded(t *testing.T) {
	const running, ended = 10, 10_000
	x := NewIndex(ended)
	for i := range ended {
		x.Put(instance(fmt.Sprint("ended-", i), "CreateOrder", saga.StateCompleted, "", i, 0), int64(i))
	}
	for i := range running {
		x.Put(instance(fmt.Sprint("running-", i), "CreateOrder", saga.StateRunning, "reserve_credit", ended+i, 1), int64(ended+i))
	}
	x.visits.Store(0)
	if got, want := x.oldestRunning(), map[typePartition]int64{{"CreateOrder", 0}: ended}; !maps.Equal(got, want) {
		t.Errorf("oldestRunning: got %v, want %v", got, want)
	}
	if visits := x.visits.Load(); visits > running {
		t.Errorf("oldestRunning read %d sagas, want the %d not ended", visits, running)
	}
}

func TestAPageHoldsOneSagaAtLeast(t *testing.T) {
	x := NewIndex(0)
	x.Put(instance("a", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1), 0)
	x.Put(instance("b", "CreateOrder", saga.StateRunning, "reserve_credit", 1, 1), 0)
	for _, q := range []Query{{Limit: 0}, {Limit: -1, Prefix: "a"}, {Limit: 0, Prefix: "b"}} {
		if p := x.List(q); len(p.Sagas) != 1 {
			t.Errorf("%+v: got %d sagas, want 1", q, len(p.Sagas))
		}
	}
}

func TestOverdueIsTheDeadlinePassed(t *testing.T) {
	x := NewIndex(0)
	x.Put(instance("s", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1), 0) // deadline t0+1m
	for _, tt := range []struct {
		now  time.Time
		want bool
	}{{t0.Add(59 * time.Second), false}, {t0.Add(61 * time.Second), true}} {
		if p := x.List(Query{Limit: 1, Now: tt.now}); p.Sagas[0].Overdue != tt.want {
			t.Errorf("at %s: overdue %v, want %v", tt.now, p.Sagas[0].Overdue, tt.want)
		}
	}
}

const million = 1_000_000

// sagasFilled is how many sagas fillMillion puts in: a million, or a tenth
// of that under the race detector (make test), which makes each insert ten
// times slower; the bound a page is held to grows with the log of it.
var sagasFilled = million

// spacing is the time between two sagas' starts: a million sagas, or a
// tenth of them, span the same 1,000 s.
func spacing() time.Duration { return time.Duration(million/sagasFilled) * time.Millisecond }

func init() {
	if raceEnabled {
		sagasFilled = million / 10
	}
}

var (
	filled     *Index
	fillOnce   sync.Once
	fillMemory float64 // bytes of heap per summary
)

// fillMillion returns an index of sagasFilled sagas over 2 types, 4 states
// and 4 steps, one started every spacing(), built once per test binary.
func fillMillion() *Index {
	fillOnce.Do(func() {
		types := []string{"CreateOrder", "CancelOrder"}
		states := []string{saga.StateRunning, saga.StateCompensating, saga.StateCompleted, saga.StateRejected}
		steps := []string{"reserve_credit", "authorize_payment", "approve_order", "refund_payment"}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		x := NewIndex(0)
		v := &saga.SagaInstance{Version: 1, History: make([]saga.SagaTransition, 2)}
		for i := range sagasFilled {
			v.SagaID = fmt.Sprintf("%08x-0000-4000-8000-%012x", i*2654435761%(1<<32), i)
			v.SagaType, v.State = types[i%2], states[i/2%4]
			at := t0.Add(time.Duration(i) * spacing())
			v.History[0] = saga.SagaTransition{At: at, Event: saga.EventStarted, State: saga.StateRunning, Step: steps[0]}
			v.History[1] = saga.SagaTransition{At: at.Add(time.Second), Event: "Reply", State: v.State, Step: steps[i/8%4]}
			v.PendingCommandID, v.Attempt, v.Deadline = "", 0, time.Time{}
			if v.State == saga.StateRunning || v.State == saga.StateCompensating {
				v.PendingCommandID, v.Attempt, v.Deadline = "x", 1+i%3, at.Add(time.Minute)
			}
			x.Put(v, 0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		fillMemory = float64(after.HeapAlloc-before.HeapAlloc) / float64(sagasFilled)
		filled = x
	})
	return filled
}

// TestAFilteredPageOfAMillionVisitsFewEntries lists pages of a million
// sagas (a tenth under the race detector), filtered every way the index has a tree for, and counts the
// entries each page reads: the page, the one after it, and the probes of
// the binary search for the total, never a scan.
func TestAFilteredPageOfAMillionVisitsFewEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("fills an index of a million sagas; skipped with -short")
	}
	x := fillMillion()
	if x.Len() != sagasFilled {
		t.Fatalf("index holds %d sagas, want %d", x.Len(), sagasFilled)
	}
	const limit = 50
	bound := int64(limit + 2 + 2*bits.Len(uint(sagasFilled))) // the page, the next and the cursor's own, the rank's probes
	now := t0.Add(time.Duration(sagasFilled) * spacing())
	queries := map[string]Query{
		"none":                 {},
		"type":                 {Type: "CancelOrder"},
		"state":                {State: saga.StateRunning},
		"step":                 {Step: "approve_order"},
		"type, state and step": {Type: "CreateOrder", State: saga.StateCompensating, Step: "authorize_payment"},
		"state and min age":    {State: saga.StateRunning, MinAge: 400 * time.Second},
		"type, step, min age":  {Type: "CreateOrder", Step: "reserve_credit", MinAge: 900 * time.Second},
	}
	for name, q := range queries {
		t.Run(name, func(t *testing.T) {
			q.Limit, q.Now = limit, now
			var seen []string
			for page := range 3 {
				x.visits.Store(0)
				p := x.List(q)
				if visits := x.visits.Load(); visits > bound {
					t.Errorf("page %d visited %d entries, want at most %d", page, visits, bound)
				}
				if len(p.Sagas) != limit || p.Next == nil || p.Total < 3*limit {
					t.Fatalf("page %d: got %d sagas, next %v, total %d; want %d, a next and more", page, len(p.Sagas), p.Next, p.Total, limit)
				}
				for _, s := range p.Sagas {
					if (q.Type != "" && s.Type != q.Type) || (q.State != "" && s.State != q.State) || (q.Step != "" && s.Step != q.Step) ||
						(q.MinAge > 0 && now.Sub(s.StartedAt) < q.MinAge) {
						t.Fatalf("page %d: %+v does not match %+v", page, s, q)
					}
					if n := len(seen); n > 0 && seen[n-1] == s.SagaID {
						t.Fatalf("page %d: %s twice", page, s.SagaID)
					}
					seen = append(seen, s.SagaID)
				}
				q.After = p.Next
			}
		})
	}
	// The totals are exact: a count by hand of one combination.
	q := Query{Type: "CreateOrder", State: saga.StateRunning, MinAge: 300 * time.Second, Limit: 1, Now: now}
	want := 0
	for i := range sagasFilled {
		if i%2 == 0 && i/2%4 == 0 && now.Sub(t0.Add(time.Duration(i)*spacing())) >= q.MinAge {
			want++
		}
	}
	if got := x.List(q).Total; got != want {
		t.Errorf("total of %+v: got %d, want %d", q, got, want)
	}
}

// BenchmarkListFilteredOfAMillion lists a filtered page of 50 from a
// million sagas, and reports the index's heap per saga (B/summary).
func BenchmarkListFilteredOfAMillion(b *testing.B) {
	x := fillMillion()
	q := Query{Type: "CreateOrder", State: saga.StateRunning, MinAge: 300 * time.Second, Limit: 50, Now: t0.Add(time.Duration(sagasFilled) * spacing())}
	b.ResetTimer()
	for b.Loop() {
		if p := x.List(q); len(p.Sagas) != 50 {
			b.Fatalf("got %d sagas, want 50", len(p.Sagas))
		}
	}
	b.ReportMetric(fillMemory, "B/summary")
}

// BenchmarkPutSaga: the index follows one Create Order saga through its
// transitions, as the console does for every record of the saga topics
// (each iteration: 4 Puts, the instances built included).
func BenchmarkPutSaga(b *testing.B) {
	x := NewIndex(1000)
	steps := []struct{ state, step string }{
		{saga.StateRunning, "reserve_credit"}, {saga.StateRunning, "authorize_payment"},
		{saga.StateRunning, "approve_order"}, {saga.StateCompleted, ""},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("s%d", i)
		for _, s := range steps {
			if _, changed := x.Put(instance(id, "CreateOrder", s.state, s.step, i, 1), 0); !changed {
				b.Fatalf("saga %s to %s %s: unchanged", id, s.state, s.step)
			}
		}
	}
}

// A saga moves between the trees of its filters as it changes: after each
// transition it is listed under every combination of its latest type,
// state and step, and under no other.
func TestASagaIsListedUnderItsLatestFiltersOnly(t *testing.T) {
	x := NewIndex(0)
	path := []struct{ state, step string }{
		{saga.StateRunning, "reserve_credit"}, {saga.StateRunning, "authorize_payment"},
		{saga.StateCompensating, "reserve_credit:compensate"}, {saga.StateRejected, ""},
	}
	for i, p := range path {
		v := instance("s", "CreateOrder", p.state, p.step, 0, 1)
		v.History[1].At = v.History[1].At.Add(time.Duration(i) * time.Second)
		if _, changed := x.Put(v, 0); !changed {
			t.Fatalf("%s %s: unchanged", p.state, p.step)
		}
		step, _, _ := strings.Cut(p.step, ":")
		for _, typ := range []string{"", "CreateOrder", "CancelOrder"} {
			for _, state := range []string{"", saga.StateRunning, saga.StateCompensating, saga.StateRejected} {
				for _, st := range []string{"", "reserve_credit", "authorize_payment"} {
					want := 0
					if (typ == "" || typ == "CreateOrder") && (state == "" || state == p.state) && (st == "" || st == step) {
						want = 1
					}
					if got := x.List(Query{Type: typ, State: state, Step: st, Limit: 5, Now: t0}); got.Total != want || len(got.Sagas) != want {
						t.Errorf("at %s %s, list type %q state %q step %q: got total %d and %d sagas, want %d",
							p.state, p.step, typ, state, st, got.Total, len(got.Sagas), want)
					}
				}
			}
		}
	}
}

// The index keeps a copy of a saga's id, not the decoded string: that
// shares the decoder's block (Avro's 1 KB slab) with the rest of the
// record, which it would keep alive as long as the index keeps the saga.
// Neither the saga's first record nor a later one leaves its string there.
func TestTheIndexKeepsNoDecodedString(t *testing.T) {
	x := NewIndex(0)
	decoded := func(step string, started, attempt int) *saga.SagaInstance {
		block := strings.Repeat("x", 1024) + "a1" // as a decoder's slab holds it
		return instance(block[1024:], "CreateOrder", saga.StateRunning, step, started, attempt)
	}
	first, later := decoded("reserve_credit", 10, 1), decoded("authorize_payment", 10, 1)
	for _, v := range []*saga.SagaInstance{first, later} {
		if _, changed := x.Put(v, 0); !changed {
			t.Fatalf("put %s at %s: not changed", v.SagaID, v.History[len(v.History)-1].Step)
		}
		e := x.byID["a1"]
		if e == nil || e.id != "a1" {
			t.Fatalf("after putting %s: the index holds %v, want saga a1", v.History[len(v.History)-1].Step, e)
		}
		if unsafe.StringData(e.id) == unsafe.StringData(first.SagaID) || unsafe.StringData(e.id) == unsafe.StringData(later.SagaID) {
			t.Errorf("after putting %s: the index keeps a decoded id, and the block it is part of", v.History[len(v.History)-1].Step)
		}
	}
}

// A saga with no command pending in a state other than COMPLETED or
// REJECTED (a corrupt record, a state a later version added) counts as
// ended, but no tree of ended sagas holds it: the index keeps it rather
// than look for an oldest ended saga that is not there, and goes on.
func TestAnEndedSagaOfAnotherStateDoesNotStopTheIndex(t *testing.T) {
	x := NewIndex(1)
	for i, id := range []string{"s1", "s2"} {
		v := instance(id, "CreateOrder", "STALLED", "second", i, 1) // no command pending
		if _, ok := x.Put(v, 0); !ok {
			t.Fatalf("Put(%s) changed nothing", id)
		}
	}
	if _, ok := x.Put(instance("s3", "CreateOrder", saga.StateCompleted, "second", 3, 1), 0); !ok {
		t.Fatal("Put(s3) changed nothing")
	}
	if x.Len() == 0 {
		t.Error("the index holds nothing")
	}
}

// A saga's records come in the order they were written (one partition of
// its state topic, then its archive): a transition stamped earlier than
// the one before it (a new owner whose clock is behind the old one's)
// still replaces it.
func TestALaterTransitionStampedEarlierReplacesTheOneBefore(t *testing.T) {
	x := NewIndex(10)
	x.Put(instance("s1", "CreateOrder", saga.StateRunning, "authorize_payment", 10, 1), 0)
	ended := instance("s1", "CreateOrder", saga.StateCompleted, "approve_order", 10, 1)
	ended.History[len(ended.History)-1].At = t0.Add(9 * time.Second) // before the RUNNING one's
	x.Put(ended, 0)
	if ids, _ := listAll(t, x, Query{State: saga.StateCompleted, Limit: 10}); !slices.Equal(ids, []string{"s1"}) {
		t.Errorf("COMPLETED sagas: got %v, want [s1]", ids)
	}
}

// A saga stamped past the years JSON can write (a host's clock far off, a
// record written wrong) is listed with the latest time it can: it made
// every page it was on, the first included, answer 200 with an empty body.
func TestASagaStampedPastYear9999IsListed(t *testing.T) {
	far := instance("f", "CreateOrder", saga.StateRunning, "reserve_credit", 0, 1)
	far.History[1].At = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newApplying(t, sagas{"far": far})
	if err := c.apply(&kgo.Record{Topic: "x.sagas", Key: []byte("f"), Value: []byte("far")}); err != nil {
		t.Fatal(err)
	}
	c.caughtUp.Store(true)
	rec := httptest.NewRecorder()
	handler(t, c).ServeHTTP(rec, httptest.NewRequest("GET", "/api/sagas", nil))
	var page struct {
		Sagas []struct {
			SagaID    string    `json:"sagaId"`
			UpdatedAt time.Time `json:"updatedAt"`
		} `json:"sagas"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &page); rec.Code != http.StatusOK || err != nil || len(page.Sagas) != 1 || page.Sagas[0].UpdatedAt.Year() != 9999 {
		t.Errorf("GET /api/sagas: got %d %s, want 200 with the saga, updated in 9999", rec.Code, rec.Body)
	}
}

package console

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"github.com/tidwall/btree"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Summary is a saga as the console lists it: the JSON of GET /api/sagas
// and of the stream's events.
type Summary struct {
	SagaID        string    `json:"sagaId"`
	Type          string    `json:"type"`
	Version       int       `json:"version"`
	State         string    `json:"state"`
	Step          string    `json:"step"` // with its direction, e.g. reserve_credit:compensate; "" once ended
	Attempt       int       `json:"attempt"`
	FailureReason string    `json:"failureReason"`
	StartedAt     time.Time `json:"startedAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
	Deadline      string    `json:"deadline"` // RFC 3339; "" once ended
	Overdue       bool      `json:"overdue"`  // the deadline has passed
	Retrying      bool      `json:"retrying"` // attempt > 1 and not ended
	// Revision orders a saga's summaries as its records were written,
	// whatever the clocks said, and is the same on every instance: the
	// offset of its latest record in its state topic while it runs, and
	// endedRevision once it ended, as it then never changes again. A page
	// that has a summary from one instance's stream and another's list
	// shows the one of the higher revision.
	Revision int64 `json:"revision"`
	// Cursor is what GET /api/sagas takes as before to list the sagas
	// after this one: a page that lets its last rows go lists them again
	// from there.
	Cursor string `json:"cursor"`
}

// endedRevision is the revision of an ended saga: above any offset, and
// the largest integer a page's JavaScript holds exactly.
const endedRevision = 1<<53 - 1

// entry is what the index keeps of a saga: small, with the strings that
// repeat (type, state, step, reason) interned, so a million sagas share a
// handful of them.
type entry struct {
	id                         string
	typ, state, step, reason   string
	version, attempt           int32
	started, updated, deadline int64 // Unix milliseconds; deadline 0 once ended
	revision                   int64 // Summary.Revision
	partition                  int32 // of its state topic, where it was read while it ran
	// pointed says its pointer to its archived copy was read: no running
	// state of it can come after, so it need not be remembered as gone.
	pointed bool
}

func (e *entry) ended() bool { return e.deadline == 0 }

// stepName is the step without its direction: what the step filter matches.
func (e *entry) stepName() string {
	name, _, _ := strings.Cut(e.step, ":")
	return name
}

// newEntry summarizes a stored saga instance, read at offset of a
// partition of its state topic if it runs. Its id is v's own: the index
// keeps a copy of it (put).
func newEntry(v *saga.SagaInstance, partition int32, offset int64) entry {
	e := entry{id: v.SagaID, typ: intern(v.SagaType), state: intern(v.State), reason: intern(v.FailureReason),
		version: int32(v.Version), attempt: int32(v.Attempt), revision: offset, partition: partition}
	if n := len(v.History); n > 0 {
		e.started, e.updated = jsonTime(v.History[0].At).UnixMilli(), jsonTime(v.History[n-1].At).UnixMilli()
		e.step = intern(v.History[n-1].Step) // the step after the latest transition, as GET /sagas/{id} shows it
	}
	if v.PendingCommandID != "" {
		e.deadline = max(v.Deadline.UnixMilli(), 1)
	} else {
		e.step, e.attempt, e.revision = "", 0, endedRevision
	}
	return e
}

func intern(s string) string { return unique.Make(s).Value() }

func (e *entry) summary(now time.Time) Summary {
	s := Summary{SagaID: e.id, Type: e.typ, Version: int(e.version), State: e.state, Step: e.step, Attempt: int(e.attempt),
		FailureReason: e.reason, StartedAt: time.UnixMilli(e.started).UTC(), UpdatedAt: time.UnixMilli(e.updated).UTC(),
		Revision: e.revision, Cursor: encodeCursor(Cursor{Started: e.started, ID: e.id})}
	if !e.ended() {
		deadline := time.UnixMilli(e.deadline).UTC()
		s.Deadline = deadline.Format(time.RFC3339Nano)
		s.Overdue = now.After(deadline)
		s.Retrying = e.attempt > 1
	}
	return s
}

// newestFirst orders the sagas newest first: by start time, then by id.
func newestFirst(a, b *entry) bool {
	if a.started != b.started {
		return a.started > b.started
	}
	return a.id < b.id
}

// order is newestFirst as a comparison.
func order(a, b *entry) int {
	return cmp.Or(-cmp.Compare(a.started, b.started), cmp.Compare(a.id, b.id))
}

// filter is a combination of the filters the index answers from a tree of
// its own: "" matches any value.
type filter struct{ typ, state, step string }

// filters are the 8 combinations e is listed under.
func (e *entry) filters() [8]filter {
	var fs [8]filter
	for mask := range 8 {
		if mask&1 != 0 {
			fs[mask].typ = e.typ
		}
		if mask&2 != 0 {
			fs[mask].state = e.state
		}
		if mask&4 != 0 {
			fs[mask].step = e.stepName()
		}
	}
	return fs
}

// Index holds a summary of every saga and answers a filtered page newest
// first in O(page + log² n): every saga is in one B-tree per combination
// of its type, state and step (8 trees, each ordered newest first), so a
// page of any combination is a walk from a seek, and its total the size of
// its tree, less, with a minimum age, the rank of the first saga old
// enough. A search by id prefix walks the prefix's range of an index by id
// instead: it costs the sagas whose id has the prefix.
type Index struct {
	mu sync.RWMutex
	// maxEnded is how many ended sagas it keeps, the newest; 0 keeps all.
	// Running sagas are all kept.
	maxEnded int
	ended    int // how many it holds
	byID     map[string]*entry
	trees    map[filter]*btree.BTreeG[*entry]
	ids      *btree.BTreeG[*entry] // by id, for the prefix search
	minutes  map[int64]*Minute     // by the minute's Unix time
	// awaiting holds, by id, the start (Unix ms) of each saga dropped at
	// its pointer to its archived copy while the reader had yet to read
	// that copy: its start stays counted, and the copy counts it not
	// again (were it taken back until then, a minute closed meanwhile
	// would lose it).
	awaiting map[string]int64
	// gone holds, by id, the end (Unix ms) of each ended saga let go past
	// maxEnded whose running records may still be read late (a state
	// partition read behind its archive's): they are passed over rather
	// than count its start again. Kept until its pointer is read, or its
	// end's minute is closed (by then every record written before its end
	// has been read).
	gone map[string]int64
	// closedBefore is the Unix time before which every minute is closed:
	// its counts are final (taken from the snapshot, or written to it), and
	// a saga read late counts in none of them.
	closedBefore int64
	now          func() time.Time
	// visits counts the entries the lists read (walked or probed), for the
	// test that holds a page's cost to its size.
	visits atomic.Int64
}

// Minute is what happened in one minute: the JSON of /api/stats.
type Minute struct {
	At        time.Time `json:"at"`
	Started   int       `json:"started"`
	Completed int       `json:"completed"`
	Rejected  int       `json:"rejected"`
}

// statsKept is how far back the minutes' counts go.
const statsKept = 24 * time.Hour

// NewIndex returns an empty index that keeps every running saga and the
// newest maxEnded ended ones (all of them if maxEnded is 0).
func NewIndex(maxEnded int) *Index {
	return &Index{maxEnded: maxEnded, byID: map[string]*entry{}, trees: map[filter]*btree.BTreeG[*entry]{},
		ids: newTree(func(a, b *entry) bool { return a.id < b.id }), minutes: map[int64]*Minute{}, awaiting: map[string]int64{}, gone: map[string]int64{}, now: time.Now}
}

func newTree(less func(a, b *entry) bool) *btree.BTreeG[*entry] {
	return btree.NewBTreeGOptions(less, btree.Options{NoLocks: true}) // the index's lock guards it
}

// Len returns the number of sagas held.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byID)
}

// Put records the saga's latest state, read at offset of its state topic
// if it runs, and reports whether it changed. An ended saga never changes
// again, and an older state than the one held (a state topic read behind
// its archive) is ignored.
func (x *Index) Put(v *saga.SagaInstance, offset int64) (Summary, bool) {
	return x.put(v, 0, offset, true, true)
}

// put is Put, which summarizes the saga only if asked: a console nobody
// watches has no use for the summary of every transition.
// remember says whether a saga let go past maxEnded may still have running
// states to read: not one the backfill reads, whose records were all
// written before the reader's listing, and so read before it caught up.
func (x *Index) put(v *saga.SagaInstance, partition int32, offset int64, summarize, remember bool) (Summary, bool) {
	e := newEntry(v, partition, offset)
	x.mu.Lock()
	defer x.mu.Unlock()
	old, ok := x.byID[e.id]
	switch {
	// A saga's records come in the order they were written, whatever
	// their clocks said: only its end is final.
	case ok && (*old == e || old.ended()):
		return Summary{}, false
	case ok:
		if !old.ended() && e.ended() {
			x.count(&e)
		}
		x.relist(old, e)
	case !e.ended() && x.gone[e.id] != 0:
		return Summary{}, false // a running state read after its end, let go
	default:
		// A copy of the id: a decoded string shares a block of the
		// decoder's (Avro's 1 KB slab) with the rest of the record and of
		// the records decoded before it, and would keep all of it alive
		// as long as the index keeps the saga.
		e.id = strings.Clone(e.id)
		old = &e
		x.byID[e.id] = old
		x.ids.Set(old)
		if _, ok := x.awaiting[e.id]; ok {
			delete(x.awaiting, e.id)
			old.pointed = true
		} else {
			x.minute(e.started).Started++
		}
		if e.ended() {
			x.count(&e)
		}
		x.list(old)
	}
	var summary Summary
	if summarize {
		summary = old.summary(x.now())
	}
	if old.ended() {
		x.ended++
		for x.maxEnded > 0 && x.ended > x.maxEnded {
			oldest := x.oldestEnded()
			if oldest == nil {
				break // ended in a state of no tree: kept
			}
			if remember && !oldest.pointed && oldest.updated >= x.closedBefore*1000 {
				x.gone[oldest.id] = max(oldest.updated, 1)
			}
			x.forget(oldest)
		}
	}
	return summary, true
}

// running says whether the index holds saga id as running.
func (x *Index) running(id string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.byID[id]
	return ok && !e.ended()
}

// typePartition is a partition of a saga type's state topic.
type typePartition struct {
	typ       string
	partition int32
}

// oldestRunning returns, for each partition of a saga type's state topic
// that holds a running saga, the lowest revision of its running sagas:
// the offset of the oldest record that is a running saga's latest.
func (x *Index) oldestRunning() map[typePartition]int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := map[typePartition]int64{}
	// The sagas of every state but the ended ones kept, not only RUNNING
	// and COMPENSATING: a saga waits on a command in whatever state its
	// version names (one a later version adds), and the checkpoint must
	// not pass its latest record.
	for f, t := range x.trees {
		if f.typ != "" || f.step != "" || f.state == "" || f.state == saga.StateCompleted || f.state == saga.StateRejected {
			continue
		}
		t.Scan(func(e *entry) bool {
			x.visits.Add(1)
			k := typePartition{e.typ, e.partition}
			if o, ok := out[k]; !e.ended() && (!ok || e.revision < o) {
				out[k] = e.revision
			}
			return true
		})
	}
	return out
}

// oldestEnded returns the ended saga that started first.
func (x *Index) oldestEnded() *entry {
	var oldest *entry
	for _, state := range []string{saga.StateCompleted, saga.StateRejected} {
		if t, ok := x.trees[filter{state: state}]; ok {
			if e, ok := t.Max(); ok && (oldest == nil || newestFirst(oldest, e)) { // Max: the oldest of the tree
				oldest = e
			}
		}
	}
	return oldest
}

// Remove forgets a saga: its archive's retention dropped it.
func (x *Index) Remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.byID[id]; ok {
		x.forget(e)
	}
}

// Archived says that a saga's pointer to its archived copy was read: it
// ended, as that copy says. Held as running, it is a saga whose copy the
// index read and let go (past MaxEnded) before its running states, read
// late, or one whose copy is yet to be read (ahead): not running, either
// way. In the second case its start stays counted (awaiting).
func (x *Index) Archived(id string, ahead bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.gone, id) // its records are read
	e, ok := x.byID[id]
	switch {
	case ok && e.ended():
		e.pointed = true
	case ok:
		if ahead {
			x.awaiting[id] = e.started
		}
		x.forget(e)
	}
}

func (x *Index) forget(e *entry) {
	x.unlist(e)
	x.ids.Delete(e)
	delete(x.byID, e.id)
	if e.ended() {
		x.ended--
	} else if _, ok := x.awaiting[e.id]; ok {
		return // its start stays counted
	} else if m := x.minute(e.started); m.Started > 0 {
		m.Started-- // its start counts again when it is read again
	}
}

func (x *Index) list(e *entry) {
	for _, f := range e.filters() {
		x.listIn(f, e)
	}
}

func (x *Index) unlist(e *entry) {
	for _, f := range e.filters() {
		x.unlistFrom(f, e)
	}
}

// relist changes what the index holds of a saga, old, to e. A saga keeps
// its place in a tree (by start, then id), so it moves only between the
// trees of the filters that changed: a transition changes the state or the
// step, rarely the type, so it leaves two to eight of its trees alone.
func (x *Index) relist(old *entry, e entry) {
	e.id, e.pointed = old.id, e.pointed || old.pointed // the index's copy, what was read of it
	if old.started != e.started {
		x.unlist(old)
		*old = e
		x.list(old)
		return
	}
	was, is := old.filters(), e.filters()
	for i := range was {
		if was[i] != is[i] {
			x.unlistFrom(was[i], old)
		}
	}
	*old = e
	for i := range is {
		if was[i] != is[i] {
			x.listIn(is[i], old)
		}
	}
}

func (x *Index) listIn(f filter, e *entry) {
	t, ok := x.trees[f]
	if !ok {
		t = newTree(newestFirst)
		x.trees[f] = t
	}
	t.Set(e)
}

// unlistFrom leaves an emptied tree in place: the combinations of type,
// state and step are few, and each saga would otherwise make again the
// trees of the steps no other saga is on.
func (x *Index) unlistFrom(f filter, e *entry) {
	if t, ok := x.trees[f]; ok {
		t.Delete(e)
	}
}

// count adds an ended saga to its minute's outcomes.
func (x *Index) count(e *entry) {
	switch e.state {
	case saga.StateCompleted:
		x.minute(e.updated).Completed++
	case saga.StateRejected:
		x.minute(e.updated).Rejected++
	}
}

// minute returns the counts of the minute of ms; those of a minute past
// statsKept are not kept.
func (x *Index) minute(ms int64) *Minute {
	at := time.UnixMilli(ms).UTC().Truncate(time.Minute)
	oldest := x.now().Add(-statsKept).Unix()
	if at.Unix() < oldest || at.Unix() < x.closedBefore {
		return &Minute{}
	}
	m, ok := x.minutes[at.Unix()]
	if !ok {
		m = &Minute{At: at}
		x.minutes[at.Unix()] = m
		for k := range x.minutes { // once a minute: forget the minutes past
			if k < oldest {
				delete(x.minutes, k)
			}
		}
		// A copy never read (undecodable), a pointer never read.
		maps.DeleteFunc(x.awaiting, func(_ string, started int64) bool { return started < oldest*1000 })
		maps.DeleteFunc(x.gone, func(_ string, ended int64) bool { return ended < oldest*1000 })
	}
	return m
}

// closeMinutes closes the minutes before before and returns those of
// them within statsKept that count anything, oldest first: what a
// snapshot of them holds.
func (x *Index) closeMinutes(before time.Time) []contracts.MinuteCounts {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.closedBefore = max(x.closedBefore, before.Unix())
	maps.DeleteFunc(x.gone, func(_ string, ended int64) bool { return ended < x.closedBefore*1000 })
	oldest := x.now().Add(-statsKept).Unix()
	var out []contracts.MinuteCounts
	for k, m := range x.minutes {
		if k >= oldest && k < x.closedBefore && *m != (Minute{At: m.At}) {
			out = append(out, contracts.MinuteCounts{At: m.At, Started: m.Started, Completed: m.Completed, Rejected: m.Rejected})
		}
	}
	slices.SortFunc(out, func(a, b contracts.MinuteCounts) int { return a.At.Compare(b.At) })
	return out
}

// takeClosed takes the counts of a snapshot's closed minutes as they are,
// in place of any counted, and closes them.
func (x *Index) takeClosed(s *contracts.ConsoleStats) {
	x.mu.Lock()
	defer x.mu.Unlock()
	before := s.ClosedBefore.Unix()
	for k := range x.minutes {
		if k < before {
			delete(x.minutes, k)
		}
	}
	oldest := x.now().Add(-statsKept).Unix()
	for _, m := range s.Minutes {
		at := m.At.UTC().Truncate(time.Minute)
		if k := at.Unix(); k >= oldest && k < before {
			x.minutes[k] = &Minute{At: at, Started: m.Started, Completed: m.Completed, Rejected: m.Rejected}
		}
	}
	x.closedBefore = max(x.closedBefore, before)
}

// ClosedBefore returns the time before which every minute is closed.
func (x *Index) ClosedBefore() time.Time {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return time.Unix(x.closedBefore, 0).UTC()
}

// Stats returns the last n minutes up to now's, oldest first, zeroes
// included.
func (x *Index) Stats(now time.Time, n int) []Minute {
	x.mu.RLock()
	defer x.mu.RUnlock()
	last := now.UTC().Truncate(time.Minute)
	out := make([]Minute, n)
	for i := range out {
		at := last.Add(-time.Duration(n-1-i) * time.Minute)
		out[i] = Minute{At: at}
		if m, ok := x.minutes[at.Unix()]; ok {
			out[i] = *m
		}
	}
	return out
}

// Query is a page to list.
type Query struct {
	Type, State, Step string        // "" for any
	MinAge            time.Duration // started at least this long before Now
	Prefix            string        // of the saga id
	Limit             int
	After             *Cursor // the last saga of the page before
	Now               time.Time
}

// Cursor is where a page ends: the last saga it holds.
type Cursor struct {
	Started int64 // Unix milliseconds
	ID      string
}

// Page is a page of sagas, newest first.
type Page struct {
	Sagas []Summary
	Next  *Cursor // nil on the last page
	Total int     // the sagas matching the filters, on every page
}

// List returns the page q asks for; a Limit below 1 is 1.
func (x *Index) List(q Query) Page {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var page Page
	q.Limit = max(q.Limit, 1)
	if q.Prefix != "" {
		return x.search(q)
	}
	tree, ok := x.trees[filter{q.Type, q.State, q.Step}]
	if !ok {
		return Page{Sagas: []Summary{}}
	}
	// The first saga old enough: the newest started at or before Now-MinAge.
	from := &entry{started: q.Now.Add(-q.MinAge).UnixMilli()}
	if q.MinAge <= 0 {
		from = nil
	}
	page.Total = tree.Len()
	if from != nil {
		page.Total -= x.rank(tree, from)
	}
	var after *entry
	if q.After != nil {
		after = &entry{started: q.After.Started, id: q.After.ID}
		if from == nil || newestFirst(from, after) {
			from = after
		}
	}
	page.Sagas = make([]Summary, 0, q.Limit)
	walk := func(e *entry) bool {
		x.visits.Add(1)
		if after != nil && e.started == after.started && e.id == after.id {
			return true // the cursor's own saga, on the page before
		}
		if len(page.Sagas) == q.Limit {
			last := page.Sagas[len(page.Sagas)-1]
			page.Next = &Cursor{Started: last.StartedAt.UnixMilli(), ID: last.SagaID}
			return false
		}
		page.Sagas = append(page.Sagas, e.summary(q.Now))
		return true
	}
	if from == nil {
		tree.Scan(walk)
	} else {
		tree.Ascend(from, walk)
	}
	return page
}

// rank returns how many entries of tree come before pivot, by a binary
// search of positions: O(log² n).
func (x *Index) rank(tree *btree.BTreeG[*entry], pivot *entry) int {
	lo, hi := 0, tree.Len()
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		e, _ := tree.GetAt(mid)
		x.visits.Add(1)
		if newestFirst(e, pivot) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// search lists the sagas whose id starts with q.Prefix: it reads every one
// of them, to order them newest first and count them.
func (x *Index) search(q Query) Page {
	var found []*entry
	cutoff := q.Now.Add(-q.MinAge).UnixMilli()
	x.ids.Ascend(&entry{id: q.Prefix}, func(e *entry) bool {
		x.visits.Add(1)
		if !strings.HasPrefix(e.id, q.Prefix) {
			return false
		}
		if (q.Type == "" || e.typ == q.Type) && (q.State == "" || e.state == q.State) &&
			(q.Step == "" || e.stepName() == q.Step) && (q.MinAge <= 0 || e.started <= cutoff) {
			found = append(found, e)
		}
		return true
	})
	slices.SortFunc(found, order)
	page := Page{Total: len(found), Sagas: make([]Summary, 0, min(q.Limit, len(found)))}
	if q.After != nil {
		after := &entry{started: q.After.Started, id: q.After.ID}
		i, _ := slices.BinarySearchFunc(found, after, order)
		if i < len(found) && found[i].id == after.id {
			i++
		}
		found = found[i:]
	}
	for i, e := range found {
		if i == q.Limit {
			last := page.Sagas[i-1]
			page.Next = &Cursor{Started: last.StartedAt.UnixMilli(), ID: last.SagaID}
			break
		}
		page.Sagas = append(page.Sagas, e.summary(q.Now))
	}
	return page
}

// Package console is the server side of the orchestrator's web console:
// an index of every saga of every type, a page of it newest first with
// filters, the dead letters, the counts per minute, and streams of their
// changes (Server-Sent Events), under /api/ on the orchestrator's HTTP
// port. Each orchestrator instance reads every partition of the saga
// types' state and archive topics and of the dead-letter topic, outside
// its consumer group, so whichever instance serves a page lists every
// saga.
package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/saga"
)

// SagaType is a saga type the console lists: GET /api/sagatypes shows
// Type, Version and Steps.
type SagaType struct {
	Type    string
	Version int      // the current one
	Steps   []string // of the current version, in order
	// OtherSteps are the steps of earlier versions that still run and the
	// current one lacks: a filter may name them too.
	OtherSteps []string
	StateTopic string // where its running sagas are kept
	EndedTopic string // where its ended sagas are archived
}

// Config configures New.
type Config struct {
	Types []SagaType
	// Kgo are the client options of the Kafka connection
	// (process.KgoOptions).
	Kgo []kgo.Opt
	// Sagas decodes the saga instances (the process's serde); DeadLetters
	// decodes the dead letters, whatever topic they came from (a serde of
	// every record of the contracts).
	Sagas       Decoder
	DeadLetters Decoder
	// KeepDeadLetters is how many of the newest dead letters are kept;
	// default 1000.
	KeepDeadLetters int
	// MaxEnded is how many ended sagas the index keeps, the newest; the
	// running ones are all kept. 0 keeps every ended saga of the retention.
	MaxEnded int
	// Group is the consumer group whose committed offsets of the state
	// topics say where a start reads them from (checkpoint.go); "" reads
	// them from their start.
	Group string
	// Stats encodes and decodes the snapshot of the stats' closed minutes
	// (contracts.ConsoleStats, stats.go); nil keeps none, and a start
	// reads the archives' whole last day.
	Stats  Codec
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.KeepDeadLetters == 0 {
		c.KeepDeadLetters = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every missing setting at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Types) == 0 {
		errs = append(errs, errors.New("console: Types is empty"))
	}
	if len(c.Kgo) == 0 {
		errs = append(errs, errors.New("console: Kgo client options are required"))
	}
	if c.Sagas == nil || c.DeadLetters == nil {
		errs = append(errs, errors.New("console: Sagas and DeadLetters decoders are required"))
	}
	if c.KeepDeadLetters < 1 {
		errs = append(errs, fmt.Errorf("console: KeepDeadLetters is %d, want >= 1", c.KeepDeadLetters))
	}
	return errors.Join(errs...)
}

// Console is the index and its API; Run feeds it, Register serves it.
type Console struct {
	cfg         Config
	index       *Index
	deadLetters *deadLetters
	sagaEvents  *hub
	deadEvents  *hub
	caughtUp    atomic.Bool
	records     atomic.Int64 // records read, reported while catching up
	// statsReady says the stats have read every saga of the minutes they
	// count; backfilled counts what they read of the archive once the
	// index had caught up (backfill).
	statsReady atomic.Bool
	backfilled atomic.Int64
	// readAt is when the reader was last known to have read every saga
	// record written before, in Unix milliseconds (stats.go).
	readAt atomic.Int64
	// registryAway is when the follower asks the registry again, in Unix
	// nanoseconds, once it did not answer (deadLetter).
	registryAway atomic.Int64

	states, ended map[string]bool   // the saga types' topics
	stateOf       map[string]string // each saga type's state topic
	endedOf       map[string]string // each state topic's archive

	// The checkpoint (checkpoint.go): next is, of each partition of the
	// saga types' topics, where reading it goes on (the stats' probe reads
	// it too); topicIDs are the state topics' ids, read before Run reads
	// them; misplaced, a saga of a type not kept in the topic it was read
	// from.
	mu        sync.Mutex
	next      map[topicPartition]int64
	topicIDs  map[string]string
	misplaced atomic.Bool
}

// New returns a console whose index is empty until Run reads the topics.
func New(cfg Config) (*Console, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, index: NewIndex(cfg.MaxEnded), deadLetters: &deadLetters{max: cfg.KeepDeadLetters, dec: cfg.DeadLetters},
		sagaEvents: newHub(), deadEvents: newHub(), states: map[string]bool{}, ended: map[string]bool{}, stateOf: map[string]string{}, endedOf: map[string]string{},
		next: map[topicPartition]int64{}}
	for _, t := range cfg.Types {
		c.states[t.StateTopic], c.ended[t.EndedTopic] = true, true
		c.stateOf[t.Type], c.endedOf[t.StateTopic] = t.StateTopic, t.EndedTopic
	}
	return c, nil
}

// Run reads the saga types' state topics from their checkpoint
// (checkpoint.go), of their archive topics what the list keeps
// (archiveFrom; then, in the background, what only the stats count:
// backfill), and the newest dead letters, then follows them until ctx
// ends; then it closes the streams.
func (c *Console) Run(ctx context.Context) error {
	defer c.deadEvents.close()
	defer c.sagaEvents.close()
	client, err := kgo.NewClient(c.cfg.Kgo...)
	if err != nil {
		return fmt.Errorf("console: connect: %w", err)
	}
	defer client.Close()
	admin := kadm.NewClient(client)
	var topics []string
	for _, t := range c.cfg.Types {
		topics = append(topics, t.StateTopic, t.EndedTopic)
	}
	topics = append(topics, contracts.TopicDeadLetter)
	keep := int64(c.cfg.KeepDeadLetters)
	ended := c.ended
	c.loadStats(ctx)
	archiveFrom := c.archiveFrom(ctx, admin, slices.Collect(maps.Keys(ended)))
	stateFrom := c.checkpointed(ctx, admin)
	older := map[topicPartition][2]int64{} // of an archive partition, [from, to): what only the stats read (backfill)
	from := func(topic string, partition int32, start, end int64) int64 {
		switch {
		case topic == contracts.TopicDeadLetter:
			// The newest of every partition, enough for the newest of all:
			// a letter committed alone is followed by its transaction's
			// marker, so keep letters take up to twice as many offsets.
			return max(start, end-2*keep)
		case ended[topic]:
			list, stats := archiveFrom(topic, partition, end)
			list, stats = max(start, list), max(start, stats)
			if stats < list {
				older[topicPartition{topic, partition}] = [2]int64{stats, list}
			}
			c.read(topic, partition, list)
			return list
		}
		at := max(start, stateFrom(topic, partition, end))
		c.read(topic, partition, at)
		return at
	}
	var background sync.WaitGroup
	defer background.Wait() // before the client closes
	checkpointing, stop := context.WithCancel(ctx)
	defer stop()
	caught := make(chan struct{})
	background.Go(func() { c.keepCheckpoints(checkpointing, client, caught) })
	// A saga's transitions before its archived end, when one fetch brings
	// both: read after the end, they would be no news, and a saga that ran
	// within a fetch's wait would show in the stream as ended at once.
	later := func(topic string) bool { return ended[topic] }
	listed := c.index.now() // before follow lists the ends it catches up to
	return follow(ctx, c.cfg.Kgo, slices.Compact(topics), reader{from: from, later: later, apply: c.apply, read: c.read, caughtUp: func() {
		c.readAt.Store(listed.UnixMilli())
		c.caughtUp.Store(true)
		c.statsReady.Store(len(older) == 0)
		close(caught)
		c.cfg.Logger.Info("console index caught up", "sagas", c.index.Len(), "records", c.records.Load())
		if len(older) > 0 {
			background.Go(func() { c.backfill(ctx, older) })
		}
	}, logf: c.cfg.Logger.Warn})
}

// archiveFrom returns, for a partition of an archive topic that ends at
// end, where the index reads it from (list): far enough back for at least
// twice the partition's share of the MaxEnded newest (saga ids spread over
// the partitions evenly, not exactly). And where the stats read it from
// (stats): the first saga ended within the minutes they count
// (statsKept) that are not closed (statsFrom); what lies between the two
// is read once the index has caught up (backfill). What is older is read
// by id only (GET /sagas/{id}): read at each start, an archive of a week
// at 100 sagas a second was 60 million sagas. With MaxEnded 0 (keep them
// all), or when the offsets of that time cannot be listed, both read it
// from its start.
func (c *Console) archiveFrom(ctx context.Context, admin *kadm.Client, topics []string) func(topic string, partition int32, end int64) (list, stats int64) {
	all := func(string, int32, int64) (int64, int64) { return 0, 0 }
	if c.cfg.MaxEnded == 0 {
		return all
	}
	since, err := admin.ListOffsetsAfterMilli(ctx, c.statsFrom().UnixMilli(), topics...)
	if err == nil {
		err = since.Error()
	}
	if err != nil {
		c.cfg.Logger.Warn("console: list the offsets of the archives' last day; they are read from their start", "error", err)
		return all
	}
	return func(topic string, partition int32, end int64) (int64, int64) {
		o, ok := since.Lookup(topic, partition)
		if !ok {
			return 0, 0
		}
		n := len(since[topic])
		share := int64(2 * ((c.cfg.MaxEnded + n - 1) / n))
		return end - share, o.Offset
	}
}

// backfill reads, of each archive partition, what only the stats read
// (older, [from, to)): the sagas ended within the minutes they count,
// older than those the index read to catch up, so that a start lists the
// sagas without waiting for a day of them (8.6 million at 100 sagas a
// second). Until it is done, the stats answer 503. It reads them with a
// reader of its own, and puts them in the index as the index's own reader
// would (the oldest are let go again past MaxEnded), streaming only the
// end of a saga the index still held running.
func (c *Console) backfill(ctx context.Context, older map[topicPartition][2]int64) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var topics []string
	for p := range older {
		topics = append(topics, p.topic)
	}
	slices.Sort(topics)
	from := func(topic string, partition int32, start, end int64) int64 {
		if r, ok := older[topicPartition{topic, partition}]; ok {
			return max(start, r[0])
		}
		return end
	}
	apply := func(r *kgo.Record) error {
		if rg, ok := older[topicPartition{r.Topic, r.Partition}]; !ok || r.Offset >= rg[1] || len(r.Value) == 0 {
			return nil // the index's reader has it, or nothing to read
		}
		v, err := c.decodeSaga(r)
		if v != nil {
			c.backfilled.Add(1)
			// One held running still (its pointer in a transaction the
			// state topic's listing came before) ends: the pages hear of it.
			stream := c.sagaEvents.listened() && c.index.running(v.SagaID)
			if s, changed := c.index.put(v, r.Partition, r.Offset, stream, false); changed && stream {
				c.publish(c.sagaEvents, s)
			}
		}
		return err
	}
	err := follow(ctx, c.cfg.Kgo, slices.Compact(topics), reader{from: from, apply: apply, caughtUp: func() {
		c.statsReady.Store(true)
		c.cfg.Logger.Info("console stats caught up", "records", c.backfilled.Load())
		cancel()
	}, logf: c.cfg.Logger.Warn})
	if err != nil {
		c.cfg.Logger.Error("console: read the archives' last day; the stats answer 503", "error", err)
	}
}

// registryPause is how long the follower leaves the dead letters it reads
// undecoded once the registry did not answer.
const registryPause = 30 * time.Second

// deadLetter reads a dead letter, decoded unless the registry did not
// answer within registryPause: the follower asks it once a while, not once
// a letter, since each ask may wait the client's timeout and every saga
// record behind the letters waits with it. A page decodes what it left.
func (c *Console) deadLetter(r *kgo.Record) *DeadLetter {
	now := time.Now()
	if now.UnixNano() < c.registryAway.Load() {
		d, _ := newDeadLetter(r, nil)
		return d
	}
	d, away := newDeadLetter(r, c.cfg.DeadLetters)
	if away {
		c.registryAway.Store(now.Add(registryPause).UnixNano())
	}
	return d
}

// apply adds what a record says to the index or the dead letters; an error
// means it must be read again (the registry did not answer).
func (c *Console) apply(r *kgo.Record) error {
	c.records.Add(1)
	switch {
	case r.Topic == contracts.TopicDeadLetter:
		if d := c.deadLetter(r); c.deadLetters.add(d) && c.caughtUp.Load() {
			c.publish(c.deadEvents, d)
		}
		return nil
	case slices.ContainsFunc(r.Headers, func(h kgo.RecordHeader) bool { return h.Key == contracts.HeaderArchivedAt }):
		c.index.Archived(string(r.Key), c.copyAhead(r)) // the archive holds the saga
		return nil
	case r.Value == nil && c.states[r.Topic]: // a tombstone: past its archive's retention
		c.index.Remove(string(r.Key))
		return nil
	case len(r.Value) == 0:
		return nil
	}
	v, err := c.decodeSaga(r)
	if v == nil {
		return err
	}
	if c.states[r.Topic] {
		c.placed(v, r.Topic)
	}
	stream := c.caughtUp.Load() && c.sagaEvents.listened()
	if s, changed := c.index.put(v, r.Partition, r.Offset, stream, true); changed && stream {
		c.publish(c.sagaEvents, s)
	}
	return nil
}

// copyAhead says whether the reader has yet to read the archived copy a
// pointer record points to: the same partition of its type's archive, at
// the offset its header holds.
func (c *Console) copyAhead(pointer *kgo.Record) bool {
	at, ok := store.ArchivedAt(pointer)
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next, ok := c.next[topicPartition{c.endedOf[pointer.Topic], pointer.Partition}]
	return ok && at >= next
}

func (c *Console) publish(h *hub, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		c.cfg.Logger.Error("console: encode an event", "error", err)
		return
	}
	h.publish(data)
}

// decodeSaga decodes a saga's record: nil if it must be read again (the
// registry did not answer: the error says so) or skipped (logged).
func (c *Console) decodeSaga(r *kgo.Record) (*saga.SagaInstance, error) {
	rec, err := c.cfg.Sagas.Decode(r.Value)
	if errors.Is(err, serde.ErrUndecodable) {
		c.cfg.Logger.Error("console: skip an undecodable saga", "topic", r.Topic, "key", string(r.Key), "error", err)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, ok := rec.(*saga.SagaInstance)
	if !ok {
		c.cfg.Logger.Error("console: skip a record that is no saga", "topic", r.Topic, "key", string(r.Key), "record", fmt.Sprintf("%T", rec))
		return nil, nil
	}
	return v, nil
}

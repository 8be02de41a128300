package devstack

// What Kafka's log cleaner and log retention do, for the embedded broker.
//
// What kfake (the version in go.mod) does, read from its source:
//
//   - Cluster.Compact compacts every partition of the topics whose
//     cleanup.policy contains "compact": the latest record of each key stays,
//     and a tombstone goes once its record timestamp is older than the
//     topic's delete.retention.ms (default one day, as Kafka). The
//     partition's last batch is neither compacted nor supersedes earlier
//     records, as Kafka's active segment (up to 1 GiB or 7 days) is not and
//     does not. min.compaction.lag.ms is accepted and ignored, as is
//     min.cleanable.dirty.ratio: each call reads and rewrites every
//     compacted log whole, inside the loop that serves requests, so the
//     broker stalls meanwhile (about 0.2s per 100,000 keys).
//   - The same call, and Cluster.ApplyRetention alone, then applies
//     retention.ms and retention.bytes to every topic, whatever its
//     cleanup.policy. Kafka applies them only to topics whose policy includes
//     delete: left to kfake, a compacted topic loses the keys written more
//     than 7 days ago, those of _schemas too.
//   - It compacts past the last stable offset: a record of a transaction
//     still open supersedes the earlier records of its key, which are gone
//     if the transaction then aborts, where Kafka cleans nothing past the
//     first unstable offset.
//   - kfake calls the same on its own every log.cleaner.backoff.ms (default
//     one hour), but only from when a topic has been created or altered since
//     it started: not after a restart from DataDir until then.
//   - DeleteRecords (the request, or Cluster.DeleteRecords) moves the log
//     start offset, as Kafka's does.
//   - What is stored shrinks, on disk with DataDir or in memory without:
//     compaction rewrites the partition's segment files; retention and
//     DeleteRecords remove the segments wholly before the log start offset
//     (segment.bytes, 100 MiB by default; no roll by segment.ms) and leave the
//     rest of the segment it falls in unreadable. kfake saves the log start
//     offset at Close only: after a crash those records are readable again.
//
// So the stack sets the broker's log.retention.ms to -1, which leaves kfake
// to apply only the retention.ms and retention.bytes topics set themselves,
// and applies Config.Retention, Kafka's log.retention.ms, to the delete-policy
// topics that set no retention.ms: with DeleteRecords up to the first record
// younger than it, or the last record of a partition (kfake drops every
// segment file before the log start offset, and a partition left with none
// starts again from offset 0 after a restart). A compacted topic that sets
// retention.ms itself still loses old keys. It compacts only when no
// compacted partition has a transaction open (its last stable offset short
// of its end), checked and compacted with no request taken in between
// (between), and turns kfake's own pass off (log.cleaner.backoff.ms of a
// century): under a steady load, compaction waits for a moment without one.
//
// kfake's compaction removes a partition's segment files before it writes
// their compacted copies: a crash in between lost every record not yet
// written again (Kafka's cleaner swaps its .cleaned files in). With a
// DataDir, a compaction first links every file of the partitions into
// compacting/ (made aside, then renamed: only a whole copy is kept) and
// drops it once done (renamed first: removed half, it would be put back
// half); a start that finds it puts the partitions back as they were
// before the compaction (restoreCompacting).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// compactPause spaces compactions: after one that took d, the next waits at
// least compactPause·d, so compaction stalls the broker under 2% of the time.
const compactPause = 50

// maintainer compacts and applies retention every so often.
type maintainer struct {
	cluster   *kfake.Cluster
	client    *kgo.Client  // on cluster
	admin     *kadm.Client // on client
	retention time.Duration
	logger    *slog.Logger
	dataDir   string // the broker's, or ""

	compactedAt      time.Time // the end of the last compaction
	compactTook      time.Duration
	compactedWritten int64 // the compacted topics' high watermarks, summed, before it

	rounds atomic.Int64 // maintenance rounds begun

	// beforeCompact, if set, is called once, when a compaction is due,
	// right before it (tests).
	beforeCompact atomic.Pointer[func()]
}

func newMaintainer(cluster *kfake.Cluster, cfg Config) (*maintainer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
		// kadm lists topics from metadata cached this long (default 5s):
		// each round sees the topics created since the last.
		kgo.MetadataMinAge(max(min(cfg.MaintainEvery, 5*time.Second), 10*time.Millisecond)))
	if err != nil {
		return nil, fmt.Errorf("broker maintenance client: %w", err)
	}
	return &maintainer{cluster: cluster, client: cl, admin: kadm.NewClient(cl), retention: cfg.Retention, dataDir: cfg.DataDir,
		logger: cfg.Logger.With("component", "kafka-maintenance")}, nil
}

// run maintains the broker every interval until ctx ends, then closes its
// client.
func (m *maintainer) run(ctx context.Context, every time.Duration) {
	defer m.admin.Close()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := m.maintain(ctx); err != nil && ctx.Err() == nil {
			m.logger.Warn("broker maintenance", "err", err)
		}
	}
}

// maintain compacts the compacted topics when they were written to since the
// last compaction, or when a tombstone may have outlived its
// delete.retention.ms since, and applies retention.
func (m *maintainer) maintain(ctx context.Context) error {
	topics, err := m.admin.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var (
		compacted    []string
		tombstoneAge = time.Duration(math.MaxInt64) // the shortest delete.retention.ms
		defaulted    []string                       // delete-policy topics without a retention.ms
	)
	for _, topic := range topics.Names() {
		info := m.cluster.TopicInfo(topic)
		if info == nil {
			continue // deleted since
		}
		policy := topicConfig(info, "cleanup.policy", "delete")
		if strings.Contains(policy, "compact") {
			compacted = append(compacted, topic)
			if ms, err := strconv.ParseInt(topicConfig(info, "delete.retention.ms", "86400000"), 10, 64); err == nil {
				tombstoneAge = min(tombstoneAge, time.Duration(ms)*time.Millisecond)
			}
		}
		if _, own := info.Configs["retention.ms"]; strings.Contains(policy, "delete") && !own {
			defaulted = append(defaulted, topic)
		}
	}
	m.rounds.Add(1)
	if err := m.between(ctx, func() { m.compact(compacted, tombstoneAge) }); err != nil {
		return err
	}
	return m.expire(ctx, defaulted)
}

// compact compacts (and applies retention) if no compacted partition has
// a transaction open and a compaction is due; otherwise it applies
// retention only. It runs between two requests (between), so no
// transaction opens after the check.
func (m *maintainer) compact(compacted []string, tombstoneAge time.Duration) {
	var (
		written int64
		open    bool // a compacted partition has a transaction open
	)
	for _, topic := range compacted {
		for _, p := range m.cluster.PartitionInfos(topic) {
			written += p.HighWatermark
			open = open || p.LastStableOffset < p.HighWatermark
		}
	}
	since := time.Since(m.compactedAt)
	due := !open && since >= compactPause*m.compactTook && (written != m.compactedWritten || since >= tombstoneAge)
	if due && m.dataDir != "" {
		if err := keepPartitions(m.dataDir); err != nil {
			m.logger.Warn("compaction put off: the partitions' files could not be kept while it runs", "error", err)
			due = false
		}
	}
	if !due {
		m.cluster.ApplyRetention()
		return
	}
	if hook := m.beforeCompact.Swap(nil); hook != nil {
		(*hook)()
	}
	start := time.Now()
	m.cluster.Compact() // and ApplyRetention
	m.compactedAt, m.compactTook, m.compactedWritten = time.Now(), time.Since(start), written
	m.logger.Debug("compacted", "took", m.compactTook)
	if m.dataDir != "" {
		if err := dropKept(m.dataDir); err != nil {
			m.logger.Warn("the partitions' files kept during a compaction are left on disk", "error", err)
		}
	}
}

// compacting is where, under the DataDir, a compaction keeps the
// partitions' files as they were before it, hard links; linking the name
// they are made under (whole, they are renamed compacting, in one step),
// and kept the name they take once the compaction is over, to be
// removed. Only a whole compacting/ is ever put back.
const (
	compacting = "compacting"
	linking    = "compacting.new"
	kept       = "compacting.done"
)

// keepPartitions links every file of the broker's partitions into
// compacting/: kfake removes a file it rewrites and writes a new one, so
// the links keep what was there.
func keepPartitions(dataDir string) error {
	if err := dropKept(dataDir); err != nil {
		return err
	}
	to := filepath.Join(dataDir, linking)
	size, err := linkPartitions(dataDir, to)
	if err == nil {
		err = roomFor(dataDir, size)
	}
	if err != nil {
		return errors.Join(err, os.RemoveAll(to))
	}
	return os.Rename(to, filepath.Join(dataDir, compacting))
}

// roomFor fails unless the file system of dataDir has size bytes free:
// the links hold the partitions' blocks while kfake writes their
// compacted copies, and kfake, short of room, only logs that a copy is
// cut short (its records lost once the links are dropped).
func roomFor(dataDir string, size int64) error {
	free, err := freeSpace(dataDir)
	if err != nil || free >= uint64(size) {
		return nil // unknown: as kfake alone would
	}
	return fmt.Errorf("%d bytes free in %s, and a compaction may write %d while the partitions are kept", free, dataDir, size)
}

// linkPartitions links every file of the broker's partitions into to, and
// returns their size.
func linkPartitions(dataDir, to string) (size int64, err error) {
	if err := os.RemoveAll(to); err != nil {
		return 0, err
	}
	from := filepath.Join(dataDir, "partitions")
	err = filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if info, err := d.Info(); err == nil {
			size += info.Size()
		}
		return link(path, filepath.Join(to, rel))
	})
	if errors.Is(err, fs.ErrNotExist) && !exists(from) {
		return 0, os.MkdirAll(to, 0o755) // no partition yet
	}
	return size, err
}

// link is os.Link, and freeSpace says how many bytes the file system of
// a directory has free; tests replace them.
var (
	link      = os.Link
	freeSpace = diskFree
)

// dropKept removes what a compaction kept, once it is over.
func dropKept(dataDir string) error {
	if err := os.Rename(filepath.Join(dataDir, compacting), filepath.Join(dataDir, kept)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.RemoveAll(filepath.Join(dataDir, kept))
}

// restoreCompacting puts back the partitions' files a compaction kept, if
// a crash ended it: kfake had removed files it had not written again.
// It reports whether it did.
func restoreCompacting(dataDir string) (bool, error) {
	if err := errors.Join(os.RemoveAll(filepath.Join(dataDir, kept)), os.RemoveAll(filepath.Join(dataDir, linking))); err != nil {
		return false, err
	}
	before := filepath.Join(dataDir, compacting)
	if !exists(before) {
		return false, nil
	}
	partitions := filepath.Join(dataDir, "partitions")
	if err := os.RemoveAll(partitions); err != nil {
		return false, err
	}
	return true, os.Rename(before, partitions)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// between runs fn in the broker's loop between two requests: while a
// control function runs, kfake's loop takes no request, only calls such
// as PartitionInfos and Compact. It makes a request to run fn on (a
// Metadata request; another client's may come first), and returns once
// fn has run, or, if its request failed or ctx ended first, once fn will
// not run: a control function that comes later does nothing, and one
// running is waited for (the stack closes the broker once maintenance
// stopped).
func (m *maintainer) between(ctx context.Context, fn func()) error {
	var (
		mu        sync.Mutex
		abandoned bool
		done      = make(chan struct{})
	)
	m.cluster.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		m.cluster.DropControl()
		mu.Lock()
		defer mu.Unlock()
		if !abandoned {
			fn()
			close(done)
		}
		return nil, nil, false // the request is answered as usual
	})
	abandon := func(err error) error {
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-done:
			return nil // it ran
		default:
			abandoned = true
			return err
		}
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // none
	if _, err := req.RequestWith(ctx, m.client); err != nil {
		return abandon(fmt.Errorf("metadata: %w", err))
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return abandon(ctx.Err())
	}
}

// expire deletes from the topics the records older than m.retention, up to
// the first younger one, or up to the last of a partition.
func (m *maintainer) expire(ctx context.Context, topics []string) error {
	if m.retention < 0 || len(topics) == 0 {
		return nil
	}
	starts, err := m.admin.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list start offsets: %w", err)
	}
	// Where no record is young enough, ListOffsetsAfterMilli answers the
	// end offset, which it lists after its search: a record written in
	// between is past it. Every record below the end listed before the
	// search is one the search saw, so that end bounds what expires.
	ends, err := m.admin.ListEndOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	younger, err := m.admin.ListOffsetsAfterMilli(ctx, time.Now().Add(-m.retention).UnixMilli(), topics...)
	if err != nil {
		return fmt.Errorf("list offsets by time: %w", err)
	}
	var expired kadm.Offsets
	younger.Each(func(o kadm.ListedOffset) {
		start, ok1 := starts.Lookup(o.Topic, o.Partition)
		end, ok2 := ends.Lookup(o.Topic, o.Partition)
		if !ok1 || !ok2 || o.Err != nil || start.Err != nil || end.Err != nil {
			return
		}
		// The last record stays, however old: kfake drops a partition's
		// segment files up to the log start offset, and one that has
		// none starts again from offset 0, below the offsets groups
		// committed, which then skip the records written after.
		if at := min(o.Offset, end.Offset-1); at > start.Offset {
			expired.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: at})
		}
	})
	if len(expired) == 0 {
		return nil
	}
	resp, err := m.admin.DeleteRecords(ctx, expired)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("delete expired records: %w", err)
	}
	return nil
}

// topicConfig returns the value the topic sets for key, or def.
func topicConfig(info *kfake.TopicInfo, key, def string) string {
	if v := info.Configs[key]; v != nil {
		return *v
	}
	return def
}

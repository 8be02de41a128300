package messaging

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/platform/config"
)

// SetAwaitCommit sets how long s's writes outside a handler wait for their
// commit.
func SetAwaitCommit(s *Session, d time.Duration) { s.awaitCommit = d }

// HeldBack is s's partitions_held_back.
func HeldBack(s *Session) float64 { return testutil.ToFloat64(s.metrics.heldBack) }

// SetHeldFirst sets how long s first holds back a partition whose record
// keeps failing.
func SetHeldFirst(s *Session, d time.Duration) { s.heldFirst = d }

// SetLinger sets how long s's records wait to be sent; call it before Run.
func SetLinger(s *Session, d time.Duration) { s.linger = d }

// SetOffsetsRead sets what s's commits run once they have read the
// offsets they send, before they send them; call it before Run.
func SetOffsetsRead(s *Session, f func()) { s.offsetsRead = f }

// WorkerOf returns the worker that handles the records of key in topic.
func WorkerOf(topic, key string) int { return workerOf(&kgo.Record{Topic: topic, Key: []byte(key)}) }

// WithHooks returns cfg with franz-go hooks on its session's client.
func WithHooks(cfg SessionConfig, hooks ...kgo.Hook) SessionConfig {
	cfg.Hooks = hooks
	return cfg
}

// TakesWrites reports whether s's transactions take writes: once its
// partitions are assigned, restored and its first transaction begun.
func TakesWrites(s *Session) bool { return s.open.Load() }

// Producer makes a transactional producer as a session that reads nothing
// does, and returns its client and the end the session gives its
// transactions, which reports whether one committed.
func Producer(cfg config.Kafka, txnID string) (*kgo.Client, func(context.Context, kgo.TransactionEndTry) (bool, error), error) {
	s := NewSession(SessionConfig{Kafka: cfg, Group: txnID, TransactionalID: txnID}, slog.New(slog.DiscardHandler))
	cl, err := s.connect()
	if err != nil {
		return nil, nil, err
	}
	p := cl.(producerOnly)
	return p.Client, p.End, nil
}

package messaging

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// SetAwaitCommit sets how long s's writes outside a handler wait for their
// commit.
func SetAwaitCommit(s *Session, d time.Duration) { s.awaitCommit = d }

// SetLinger sets how long s's records wait to be sent; call it before Run.
func SetLinger(s *Session, d time.Duration) { s.linger = d }

// WorkerOf returns the worker that handles the records of key in topic.
func WorkerOf(topic, key string) int { return workerOf(&kgo.Record{Topic: topic, Key: []byte(key)}) }

// WithHooks returns cfg with franz-go hooks on its session's client.
func WithHooks(cfg SessionConfig, hooks ...kgo.Hook) SessionConfig {
	cfg.hooks = hooks
	return cfg
}

// TakesWrites reports whether s's transactions take writes: once its
// partitions are assigned, restored and its first transaction begun.
func TakesWrites(s *Session) bool { return s.open.Load() }

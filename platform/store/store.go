// Package store keeps a process's state in Kafka: a keyed map whose every
// write goes first to a compacted changelog topic and whose content is
// rebuilt from that topic on start. Kafka is the database; the map is a cache
// of it that can always be thrown away.
package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"

	"github.com/IBM/sarama"
	"golang.org/x/sync/errgroup"

	"github.com/kafkasaga/kafkasaga/contracts/serde"
)

// Codec turns a state record into the bytes kept on the changelog and back.
type Codec[T any] interface {
	Encode(v *T) ([]byte, error)
	Decode(b []byte) (*T, error)
}

// Config configures New.
type Config[T any] struct {
	Topic    string
	Brokers  []string
	Sarama   *sarama.Config // from messaging.SaramaConfig
	Producer sarama.SyncProducer
	Codec    Codec[T]
}

// Validate reports every missing setting at once.
func (c Config[T]) Validate() error {
	var errs []error
	if c.Topic == "" {
		errs = append(errs, errors.New("store: Topic is required"))
	}
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("store: Brokers are required"))
	}
	if c.Sarama == nil {
		errs = append(errs, errors.New("store: Sarama config is required"))
	}
	if c.Producer == nil {
		errs = append(errs, errors.New("store: Producer is required"))
	}
	if c.Codec == nil {
		errs = append(errs, errors.New("store: Codec is required"))
	}
	return errors.Join(errs...)
}

// Store is a map of records of type T by key, persisted in a compacted topic.
// It keeps the encoded bytes, so a value handed out never aliases the stored
// one and a failed write leaves nothing half-changed.
type Store[T any] struct {
	cfg    Config[T]
	logger *slog.Logger

	mu    sync.RWMutex
	data  map[string][]byte
	locks [256]sync.Mutex // serialize Update per key (striped by hash)
}

// New returns an empty store; call Restore before serving.
func New[T any](cfg Config[T], logger *slog.Logger) (*Store[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Store[T]{cfg: cfg, logger: logger, data: map[string][]byte{}}, nil
}

// Get returns the record stored under key.
func (s *Store[T]) Get(key string) (*T, bool, error) {
	s.mu.RLock()
	b, ok := s.data[key]
	s.mu.RUnlock()
	if !ok {
		return nil, false, nil
	}
	v, err := s.cfg.Codec.Decode(b)
	if err != nil {
		return nil, false, fmt.Errorf("decode %s/%s: %w", s.cfg.Topic, key, err)
	}
	return v, true, nil
}

// Update loads the record under key (a zero T if there is none), lets fn
// change it and writes the result to the changelog before it becomes visible.
// An error from fn aborts the update and is returned as it is. Updates of one
// key run one at a time; a record that fn left unchanged is not written again.
func (s *Store[T]) Update(ctx context.Context, key string, fn func(v *T, exists bool) error) error {
	return s.UpdateAndSend(ctx, key, func(v *T, exists bool) ([]*sarama.ProducerMessage, error) {
		return nil, fn(v, exists)
	})
}

// UpdateAndSend is Update whose fn may also return messages to send with the
// record, in the same produce call, to save a round trip. The record and the
// messages are not atomic: when the call fails, any part of it may have
// landed, and the record is not visible. (Messages are sent even when the
// record is unchanged.)
//
// Only a writer that tolerates either part landing alone may use it, such as
// the saga orchestrator, which re-sends a pending command on its timeout and
// ignores replies to anything else. A participant must not: its reply could
// land without the decision it reports, and a redelivered command would then
// be decided again, perhaps differently. A reply must never precede its
// durable decision.
func (s *Store[T]) UpdateAndSend(ctx context.Context, key string, fn func(v *T, exists bool) ([]*sarama.ProducerMessage, error)) error {
	lock := &s.locks[stripe(key)]
	lock.Lock()
	defer lock.Unlock()

	s.mu.RLock()
	old, exists := s.data[key]
	s.mu.RUnlock()
	v := new(T)
	if exists {
		var err error
		if v, err = s.cfg.Codec.Decode(old); err != nil {
			return fmt.Errorf("decode %s/%s: %w", s.cfg.Topic, key, err)
		}
	}
	extra, err := fn(v, exists)
	if err != nil {
		return err
	}
	b, err := s.cfg.Codec.Encode(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", s.cfg.Topic, key, err)
	}
	changed := !exists || string(b) != string(old)
	if !changed && len(extra) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	msgs := extra
	if changed {
		msgs = append([]*sarama.ProducerMessage{{
			Topic: s.cfg.Topic, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(b),
		}}, extra...)
	}
	if err := s.cfg.Producer.SendMessages(msgs); err != nil {
		return fmt.Errorf("write %s/%s: %w", s.cfg.Topic, key, err)
	}
	if changed {
		s.mu.Lock()
		s.data[key] = b
		s.mu.Unlock()
	}
	return nil
}

// Range calls fn for every record until fn returns false. A record that can
// never be decoded (serde.ErrUndecodable) is logged and skipped; any other
// failure to decode one, such as an unreachable schema registry, stops Range
// and is returned, as a caller rebuilding what it derives from every record
// must not miss one.
func (s *Store[T]) Range(fn func(key string, v *T) bool) error {
	s.mu.RLock()
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	s.mu.RUnlock()
	for _, k := range keys {
		v, ok, err := s.Get(k)
		if errors.Is(err, serde.ErrUndecodable) {
			s.logger.Error("skip undecodable record", "topic", s.cfg.Topic, "key", k, "error", err)
			continue
		}
		if err != nil {
			return err
		}
		if ok && !fn(k, v) {
			return nil
		}
	}
	return nil
}

// Len returns the number of records.
func (s *Store[T]) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.data)
}

// Restore reads the changelog from its start to its current end, so the map
// holds the latest record of every key. A tombstone (nil value) deletes a key.
func (s *Store[T]) Restore(ctx context.Context) error {
	client, err := sarama.NewClient(s.cfg.Brokers, s.cfg.Sarama)
	if err != nil {
		return fmt.Errorf("restore %s: connect: %w", s.cfg.Topic, err)
	}
	defer client.Close()
	partitions, err := client.Partitions(s.cfg.Topic)
	if err != nil {
		return fmt.Errorf("restore %s: %w", s.cfg.Topic, err)
	}
	// Offsets are looked up one partition at a time: Sarama's first
	// requests to a broker, sent from several goroutines at once, can find
	// its connection not yet open and fail with "broker not connected".
	var spans []span
	for _, p := range partitions {
		sp, err := s.span(client, p)
		if err != nil {
			return fmt.Errorf("restore %s: %w", s.cfg.Topic, err)
		}
		if sp.start < sp.end {
			spans = append(spans, sp)
		}
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("restore %s: %w", s.cfg.Topic, err)
	}
	defer consumer.Close()

	g, ctx := errgroup.WithContext(ctx)
	for _, sp := range spans {
		g.Go(func() error { return s.restorePartition(ctx, consumer, sp) })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("restore %s: %w", s.cfg.Topic, err)
	}
	s.logger.Info("state restored", "topic", s.cfg.Topic, "records", s.Len())
	return nil
}

// span is the offsets of a partition's records at the start of a restore.
type span struct {
	partition  int32
	start, end int64
}

func (s *Store[T]) span(client sarama.Client, p int32) (span, error) {
	end, err := client.GetOffset(s.cfg.Topic, p, sarama.OffsetNewest)
	if err != nil {
		return span{}, fmt.Errorf("partition %d: end offset: %w", p, err)
	}
	start, err := client.GetOffset(s.cfg.Topic, p, sarama.OffsetOldest)
	if err != nil {
		return span{}, fmt.Errorf("partition %d: start offset: %w", p, err)
	}
	return span{p, start, end}, nil
}

func (s *Store[T]) restorePartition(ctx context.Context, consumer sarama.Consumer, sp span) error {
	pc, err := consumer.ConsumePartition(s.cfg.Topic, sp.partition, sp.start)
	if err != nil {
		return fmt.Errorf("partition %d: %w", sp.partition, err)
	}
	defer pc.Close()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-pc.Errors():
			return fmt.Errorf("partition %d: %w", sp.partition, err)
		case m := <-pc.Messages():
			s.mu.Lock()
			if m.Value == nil {
				delete(s.data, string(m.Key))
			} else {
				s.data[string(m.Key)] = m.Value
			}
			s.mu.Unlock()
			if m.Offset >= sp.end-1 {
				return nil
			}
		}
	}
}

func stripe(key string) uint8 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return uint8(h.Sum32())
}

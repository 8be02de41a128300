package messaging

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
)

// ErrPoison marks an error that retrying cannot cure: the message goes to the
// dead-letter topic and the consumer moves on. Wrap it with
// fmt.Errorf("%w: ...", ErrPoison). Undecodable messages (serde.ErrUndecodable),
// keys of another partition (ErrNotOwned) and handler panics count as
// poison too; every other error is retried.
var ErrPoison = errors.New("poison message")

// Poison returns h, with every error of it that is one of errs marked
// ErrPoison: the errors a handler's domain knows no retry can cure, such as
// invalid input.
func Poison(h message.NoPublishHandlerFunc, errs ...error) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		err := h(msg)
		if err != nil && slices.ContainsFunc(errs, func(e error) bool { return errors.Is(err, e) }) {
			return fmt.Errorf("%w: %w", ErrPoison, err)
		}
		return err
	}
}

// ErrNotOwned is the error of a read or write of a key whose partition
// this instance does not own now: another instance serves it. A handler
// meets it only for a message whose key belongs to another partition than
// the one it was consumed from (its producer partitioned it otherwise than
// by murmur2 of the key, as Kafka's Java client does): the partitions of
// the message in hand are this instance's until its handlers finish, so
// no retry would move it, and it is poison.
var ErrNotOwned = errors.New("key not owned by this instance")

func isPoison(err error) bool {
	var panicked middleware.RecoveredPanicError // Recoverer returns it by value
	return errors.Is(err, ErrPoison) || errors.Is(err, serde.ErrUndecodable) || errors.Is(err, ErrNotOwned) ||
		errors.As(err, &panicked)
}

// HandlersConfig configures NewHandlers.
type HandlersConfig struct {
	// DeadLetter publishes poison messages to contracts.TopicDeadLetter.
	DeadLetter message.Publisher
	// Metrics receives the handlers' and the dead letter's metrics.
	Metrics prometheus.Registerer
	// Subscriber names what hands the messages in, the subscriber_name
	// label of subscriber_messages_received_total: its type, as watermill's
	// router names it (messaging.Session in a process).
	Subscriber string
	// RetryInterval is the first wait before retrying a failed handler; the
	// wait doubles up to MaxRetryInterval, and retries never stop: a
	// transient failure (broker or registry down) must not lose the message.
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration
	// Traces, when set, traces the handling of every message (nil: no
	// spans, at no cost).
	Traces trace.TracerProvider
}

func (c *HandlersConfig) setDefaults() {
	if c.RetryInterval == 0 {
		c.RetryInterval = 100 * time.Millisecond
	}
	if c.MaxRetryInterval == 0 {
		c.MaxRetryInterval = 5 * time.Second
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
}

// Validate reports every missing setting at once.
func (c HandlersConfig) Validate() error {
	var errs []error
	if c.DeadLetter == nil {
		errs = append(errs, errors.New("messaging: HandlersConfig.DeadLetter is required"))
	}
	return errors.Join(errs...)
}

// Handlers wraps a process's watermill handlers in one chain of
// middleware: dead-lettering of poison messages, retries with backoff for
// everything else, and recovery from panics. A wrapped handler is called
// directly by whatever delivers the messages (a Session's workers), with
// no router and no goroutine of its own per message.
type Handlers struct {
	cfg          HandlersConfig
	logger       *slog.Logger
	wlog         watermill.LoggerAdapter
	deadLettered *prometheus.CounterVec // by topic
	metrics      handlerMetrics
}

// NewHandlers registers the handlers' metrics with cfg.Metrics.
func NewHandlers(cfg HandlersConfig, logger *slog.Logger) (*Handlers, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	deadLettered := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "messages_dead_lettered_total",
		Help: "Messages sent to the dead-letter topic, by the topic they came from.",
	}, []string{"topic"})
	if err := cfg.Metrics.Register(deadLettered); err != nil {
		return nil, fmt.Errorf("register dead-letter metric: %w", err)
	}
	handled, err := newHandlerMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Handlers{cfg: cfg, logger: logger, wlog: Logger(logger), deadLettered: deadLettered, metrics: handled}, nil
}

// Wrap returns fn, the handler named name of the messages of topic,
// behind the chain; nil from it acks the message, an error nacks it. The
// metrics' series are looked up here, once.
func (h *Handlers) Wrap(name, topic string, fn message.NoPublishHandlerFunc) func(*message.Message) error {
	chain := []message.HandlerMiddleware{
		h.metrics.middleware(name, h.cfg.Subscriber),
		// Outermost but the metrics: one span a delivery, its retries and
		// dead-lettering within.
		traceHandling(h.cfg.Traces, topic),
		deadLetter(h.cfg.DeadLetter, h.deadLettered.WithLabelValues(topic), h.logger, name, topic),
		retry(h.cfg.RetryInterval, h.cfg.MaxRetryInterval, h.wlog),
		middleware.Recoverer,
	}
	wrapped := func(msg *message.Message) ([]*message.Message, error) { return nil, fn(msg) }
	for _, m := range slices.Backward(chain) {
		wrapped = m(wrapped)
	}
	return func(msg *message.Message) error {
		_, err := wrapped(msg)
		return err
	}
}

// deadLetter publishes a poison message, headers and payload untouched, to the
// dead-letter topic with headers naming its origin and the error, then acks
// it. Other errors pass through, so the message is redelivered.
func deadLetter(pub message.Publisher, counter prometheus.Counter, logger *slog.Logger, handler, topic string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil || !isPoison(err) {
				return out, err
			}
			return nil, sendDeadLetter(pub, counter, logger, handler, topic, msg, err)
		}
	}
}

// sendDeadLetter is deadLetter's rare path, a function of its own so that
// the frame every message's call stacks stays small.
func sendDeadLetter(pub message.Publisher, counter prometheus.Counter, logger *slog.Logger, handler, topic string,
	msg *message.Message, err error,
) error {
	ctx := msg.Context()
	dead := msg.Copy()
	dead.SetContext(ctx) // written on behalf of msg, in its transaction
	dead.Metadata.Set(contracts.HeaderDeadLetterTopic, topic)
	dead.Metadata.Set(contracts.HeaderDeadLetterHandler, handler)
	dead.Metadata.Set(contracts.HeaderDeadLetterError, cut(err.Error(), maxErrorBytes))
	record, ok := RecordFromCtx(ctx)
	if ok {
		dead.Metadata.Set(contracts.HeaderDeadLetterPartition, strconv.Itoa(int(record.Partition)))
		dead.Metadata.Set(contracts.HeaderDeadLetterOffset, strconv.FormatInt(record.Offset, 10))
		if ms := record.Timestamp.UnixMilli(); ms > 0 { // none if written with none
			dead.Metadata.Set(contracts.HeaderDeadLetterTimestamp, strconv.FormatInt(ms, 10))
		}
	}
	if dead.Metadata.Get(contracts.HeaderPartitionKey) == "" {
		dead.Metadata.Set(contracts.HeaderPartitionKey, cmp.Or(string(record.Key), topic))
	}
	// Written whole, a letter too large would be refused (and the record
	// it stands for consumed again, for ever): the letter says where it
	// is. Its partition key is written twice, as a header and as the
	// record's key. The larger of the value and the key goes first.
	dropValue := func() {
		dead.Metadata.Set(contracts.HeaderDeadLetterValueBytes, strconv.Itoa(len(dead.Payload)))
		dead.Payload = nil
	}
	dropKey := func() {
		dead.Metadata.Set(contracts.HeaderDeadLetterKeyBytes, strconv.Itoa(len(dead.Metadata.Get(contracts.HeaderPartitionKey))))
		dead.Metadata.Set(contracts.HeaderPartitionKey, topic)
	}
	// Then, if need be, its own headers are cut.
	cutHeaders := func() {
		before := 0
		for k, v := range dead.Metadata {
			if k != contracts.HeaderPartitionKey && !slices.Contains(contracts.DeadLetterHeaders, k) {
				before += len(k) + len(v)
				dead.Metadata[k] = cut(v, maxErrorBytes)
			}
		}
		dead.Metadata.Set(contracts.HeaderDeadLetterHeaderBytes, strconv.Itoa(before))
	}
	drops := []func(){dropValue, dropKey, cutHeaders}
	if len(dead.Metadata.Get(contracts.HeaderPartitionKey)) > len(dead.Payload) {
		drops[0], drops[1] = dropKey, dropValue
	}
	for _, drop := range drops {
		if letterSize(dead)+len(dead.Metadata.Get(contracts.HeaderPartitionKey)) > maxDeadLetterBytes {
			drop()
		}
	}
	// Counted once written for good: a dead letter whose transaction
	// aborts is written again when its message comes again.
	count := func(committed bool) {
		if committed {
			counter.Inc()
		}
	}
	var perr error
	if p, ok := pub.(*Publisher); ok {
		perr = p.PublishThen(contracts.TopicDeadLetter, count, dead)
	} else if perr = pub.Publish(contracts.TopicDeadLetter, dead); perr == nil {
		count(true)
	}
	if perr != nil {
		// Not acked: the message comes back and is tried again.
		return fmt.Errorf("dead-letter %s: %w (after: %w)", msg.UUID, perr, err)
	}
	trace.SpanFromContext(ctx).SetStatus(codes.Error, "dead-lettered: "+err.Error())
	logger.Warn("message dead-lettered", "topic", topic, "uuid", msg.UUID, "error", err)
	return nil
}

// maxDeadLetterBytes bounds the dead letters written with their value:
// franz-go refuses a record past its batch limit (1,000,012 bytes by
// default), and Kafka one past the topic's max.message.bytes (1 MiB by
// default). A record consumed may be larger, its batch compressed, or
// written with higher limits.
const maxDeadLetterBytes = 900 << 10

// maxErrorBytes bounds a dead letter's dlq_error, and each of its own
// headers when they are too large: an error may quote the message's key
// (a store's "topic/key: ..."), which may be most of what a record holds.
const maxErrorBytes = 4 << 10

// cut is s, or its first n bytes and an ellipsis, as valid UTF-8.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// letterSize is about what a message takes in a record: its payload and
// its headers.
func letterSize(msg *message.Message) int {
	n := len(msg.Payload)
	for k, v := range msg.Metadata {
		n += len(k) + len(v)
	}
	return n
}

// maxRetries is how many times a failing handler is called again before its
// message is nacked, to come back from the subscriber.
const maxRetries = 10

// retry calls a handler that failed with anything but poison again, up to
// maxRetries times, after a wait that starts at interval and doubles up to
// maxInterval. A message handled at the first call, the common case, costs
// one check: the backoff is made at the first failure.
func retry(interval, maxInterval time.Duration, logger watermill.LoggerAdapter) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if err := msg.Context().Err(); err != nil {
				return nil, err // revoked or closing before it was handled: it comes back
			}
			out, err := h(msg)
			if err == nil || isPoison(err) {
				return out, err
			}
			return retryFailed(h, msg, err, interval, maxInterval, logger)
		}
	}
}

// retryFailed is retry's path after a first failure, a function of its own
// so that the frame every message's call stacks stays small.
func retryFailed(h message.HandlerFunc, msg *message.Message, err error, interval, maxInterval time.Duration,
	logger watermill.LoggerAdapter,
) ([]*message.Message, error) {
	ctx := msg.Context()
	waits := backoff.ExponentialBackOff{InitialInterval: interval, Multiplier: 2, MaxInterval: maxInterval}
	waits.Reset()
	var out []*message.Message
	for n := 1; n <= maxRetries; n++ {
		if ctx.Err() != nil || errors.Is(err, ErrRebalancing) {
			// Stopped by a revocation (or the process's stop): the
			// message comes again, to its partition's owner. Not an
			// error, and no use retrying here.
			return nil, err
		}
		wait := waits.NextBackOff()
		if until, ok := retryUntil(ctx); ok && time.Now().Add(wait).After(until) {
			return out, err // no time left in the transaction: it aborts (Session.deliver)
		}
		logger.Error("Error occurred, retrying", err, watermill.LogFields{
			"retry_no": n, "max_retries": maxRetries, "wait_time": wait})
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		if out, err = h(msg); err == nil || isPoison(err) {
			return out, err
		}
	}
	return out, err
}

// handlerMetrics are the metrics watermill's Prometheus builder gives a
// router, with its names, labels and buckets, taken at less cost per
// message: it builds a map of labels and looks the series up for each
// observation, and its subscriber decorator passes every message through
// one more channel and starts a goroutine for it that waits for its ack.
type handlerMetrics struct {
	seconds  *prometheus.HistogramVec // by handler_name, success
	received *prometheus.CounterVec   // by handler_name, subscriber_name, acked
}

func newHandlerMetrics(reg prometheus.Registerer) (handlerMetrics, error) {
	m := handlerMetrics{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "handler_execution_time_seconds",
			Help:    "The total time elapsed while executing the handler function in seconds",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
		}, []string{"handler_name", "success"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "subscriber_messages_received_total",
			Help: "The total number of messages received by the subscriber",
		}, []string{"handler_name", "subscriber_name", "acked"}),
	}
	for _, c := range []prometheus.Collector{m.seconds, m.received} {
		if err := reg.Register(c); err != nil {
			return m, fmt.Errorf("register handler metric: %w", err)
		}
	}
	return m, nil
}

// middleware times the handler named handler and counts its messages as
// they are acked (nil) or nacked (an error, or a panic).
func (m handlerMetrics) middleware(handler, subscriber string) message.HandlerMiddleware {
	succeeded, failed := m.seconds.WithLabelValues(handler, "true"), m.seconds.WithLabelValues(handler, "false")
	if handler == "" {
		handler = "<no handler>" // as watermill's subscriber metrics name it
	}
	acked, nacked := m.received.WithLabelValues(handler, subscriber, "acked"), m.received.WithLabelValues(handler, subscriber, "nacked")
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) (out []*message.Message, err error) {
			start := time.Now()
			panicked := true
			defer func() {
				if err != nil {
					failed.Observe(time.Since(start).Seconds())
				} else {
					succeeded.Observe(time.Since(start).Seconds())
				}
				if panicked || err != nil {
					nacked.Inc()
				} else {
					acked.Inc()
				}
			}()
			out, err = h(msg)
			panicked = false
			return out, err
		}
	}
}

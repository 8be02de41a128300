package messaging

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
)

// ErrPoison marks an error that retrying cannot cure: the message goes to the
// dead-letter topic and the consumer moves on. Wrap it with
// fmt.Errorf("%w: ...", ErrPoison). Undecodable messages (serde.ErrUndecodable)
// and handler panics count as poison too; every other error is retried.
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

func isPoison(err error) bool {
	var panicked middleware.RecoveredPanicError // Recoverer returns it by value
	return errors.Is(err, ErrPoison) || errors.Is(err, serde.ErrUndecodable) || errors.As(err, &panicked)
}

// RouterConfig configures NewRouter.
type RouterConfig struct {
	// DeadLetter publishes poison messages to contracts.TopicDeadLetter.
	DeadLetter message.Publisher
	// Metrics receives the router's and the dead letter's metrics.
	Metrics prometheus.Registerer
	// RetryInterval is the first wait before retrying a failed handler; the
	// wait doubles up to MaxRetryInterval, and retries never stop: a
	// transient failure (broker or registry down) must not lose the message.
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration
	// Traces, when set, traces the handling of every message (nil: no
	// spans, at no cost).
	Traces trace.TracerProvider
}

func (c *RouterConfig) setDefaults() {
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
func (c RouterConfig) Validate() error {
	var errs []error
	if c.DeadLetter == nil {
		errs = append(errs, errors.New("messaging: RouterConfig.DeadLetter is required"))
	}
	return errors.Join(errs...)
}

// NewRouter returns a watermill router whose handlers run behind one visible
// chain of middleware: dead-lettering of poison messages, retries with
// backoff for everything else, and recovery from panics.
func NewRouter(cfg RouterConfig, logger *slog.Logger) (*message.Router, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	wlog := Logger(logger)
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog)
	if err != nil {
		return nil, fmt.Errorf("create router: %w", err)
	}
	deadLettered := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "messages_dead_lettered_total",
		Help: "Messages sent to the dead-letter topic, by the topic they came from.",
	}, []string{"topic"})
	if err := cfg.Metrics.Register(deadLettered); err != nil {
		return nil, fmt.Errorf("register dead-letter metric: %w", err)
	}
	metrics.NewPrometheusMetricsBuilder(cfg.Metrics, "", "").AddPrometheusRouterMetrics(r)

	if cfg.Traces != nil {
		// Outermost: one span a delivery, its retries and dead-lettering within.
		r.AddMiddleware(traceHandling(cfg.Traces))
	}
	r.AddMiddleware(
		deadLetter(cfg.DeadLetter, deadLettered, logger),
		middleware.Retry{
			MaxRetries:      10,
			InitialInterval: cfg.RetryInterval,
			MaxInterval:     cfg.MaxRetryInterval,
			Multiplier:      2,
			ShouldRetry:     func(p middleware.RetryParams) bool { return !isPoison(p.Err) },
			Logger:          wlog,
		}.Middleware,
		middleware.Recoverer,
	)
	return r, nil
}

// deadLetter publishes a poison message, headers and payload untouched, to the
// dead-letter topic with headers naming its origin and the error, then acks
// it. Other errors pass through, so the message is redelivered.
func deadLetter(pub message.Publisher, counter *prometheus.CounterVec, logger *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil || !isPoison(err) {
				return out, err
			}
			ctx := msg.Context()
			topic := message.SubscribeTopicFromCtx(ctx)
			dead := msg.Copy()
			dead.SetContext(ctx) // written on behalf of msg, in its transaction
			dead.Metadata.Set(contracts.HeaderDeadLetterTopic, topic)
			dead.Metadata.Set(contracts.HeaderDeadLetterHandler, message.HandlerNameFromCtx(ctx))
			dead.Metadata.Set(contracts.HeaderDeadLetterError, err.Error())
			record, ok := RecordFromCtx(ctx)
			if ok {
				dead.Metadata.Set(contracts.HeaderDeadLetterPartition, strconv.Itoa(int(record.Partition)))
				dead.Metadata.Set(contracts.HeaderDeadLetterOffset, strconv.FormatInt(record.Offset, 10))
			}
			if dead.Metadata.Get(contracts.HeaderPartitionKey) == "" {
				dead.Metadata.Set(contracts.HeaderPartitionKey, cmp.Or(string(record.Key), topic))
			}
			if perr := pub.Publish(contracts.TopicDeadLetter, dead); perr != nil {
				// Not acked: the message comes back and is tried again.
				return nil, fmt.Errorf("dead-letter %s: %w (after: %w)", msg.UUID, perr, err)
			}
			counter.WithLabelValues(topic).Inc()
			trace.SpanFromContext(ctx).SetStatus(codes.Error, "dead-lettered: "+err.Error())
			logger.Warn("message dead-lettered", "topic", topic, "uuid", msg.UUID, "error", err)
			return nil, nil
		}
	}
}

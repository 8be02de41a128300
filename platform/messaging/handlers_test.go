package messaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kafkasaga/kafkasaga/contracts"
)

// failing is a handler that fails its first n calls with err, then succeeds.
type failing struct {
	n     int
	err   error
	calls int
}

func (f *failing) handle(*message.Message) ([]*message.Message, error) {
	f.calls++
	if f.calls <= f.n {
		return nil, f.err
	}
	return nil, nil
}

func TestRetry(t *testing.T) {
	const interval = 2 * time.Millisecond
	transient := errors.New("registry unavailable")
	cases := []struct {
		name      string
		fails     int
		err       error
		wantCalls int
		wantErr   error
		minWait   time.Duration
	}{
		{"success is not retried", 0, transient, 1, nil, 0},
		{"a transient error is retried after doubling waits", 2, transient, 3, nil, interval + 2*interval},
		{"poison is not retried", 5, fmt.Errorf("%w: bad input", ErrPoison), 1, ErrPoison, 0},
		{"retries stop after maxRetries", 100, transient, maxRetries + 1, transient, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &failing{n: c.fails, err: c.err}
			h := retry(interval, 4*interval, watermill.NopLogger{})(f.handle)
			start := time.Now()
			_, err := h(message.NewMessage(watermill.NewUUID(), nil))
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
				t.Errorf("error: got %v, want %v", err, c.wantErr)
			}
			if f.calls != c.wantCalls {
				t.Errorf("calls: got %d, want %d", f.calls, c.wantCalls)
			}
			if took := time.Since(start); took < c.minWait {
				t.Errorf("took %s, want at least the waits %s", took, c.minWait)
			}
		})
	}

	t.Run("a message whose context ended is not handled", func(t *testing.T) {
		f := &failing{}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		msg := message.NewMessage(watermill.NewUUID(), nil)
		msg.SetContext(ctx)
		if _, err := retry(interval, interval, watermill.NopLogger{})(f.handle)(msg); !errors.Is(err, context.Canceled) {
			t.Errorf("error: got %v, want context.Canceled", err)
		}
		if f.calls != 0 {
			t.Errorf("calls: got %d, want 0", f.calls)
		}
	})
}

func TestHandlerMetricsCountAcksAndNacks(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newHandlerMetrics(reg)
	if err != nil {
		t.Fatalf("newHandlerMetrics: %v", err)
	}
	results := []error{nil, nil, errors.New("transient"), nil}
	calls := 0
	h := m.middleware("", "")(middleware.Recoverer(func(*message.Message) ([]*message.Message, error) {
		calls++
		if calls == 5 {
			panic("boom")
		}
		return nil, results[calls-1]
	}))
	for range 5 {
		_, _ = h(message.NewMessage(watermill.NewUUID(), nil))
	}
	// With no handler name, the handler is named as watermill's own
	// metrics name it.
	if got := testutil.ToFloat64(m.received.WithLabelValues("<no handler>", "", "acked")); got != 3 {
		t.Errorf("acked: got %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.received.WithLabelValues("<no handler>", "", "nacked")); got != 2 {
		t.Errorf("nacked (an error, a panic): got %v, want 2", got)
	}
	if got := testutil.CollectAndCount(m.seconds, "handler_execution_time_seconds"); got != 2 {
		t.Errorf("handler_execution_time_seconds series: got %d, want 2 (success true and false)", got)
	}
}

// BenchmarkHandlerChain: the middleware every consumed message goes
// through (metrics, dead-letter, retry, recoverer), around a handler that
// succeeds.
func BenchmarkHandlerChain(b *testing.B) {
	hs, err := NewHandlers(HandlersConfig{DeadLetter: nopDeadLetter{}}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	h := hs.Wrap("bench.in", "in", func(*message.Message) error { return nil })
	msg := message.NewMessage(watermill.NewUUID(), []byte("x"))
	b.ReportAllocs()
	for b.Loop() {
		if err := h(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// recordingDeadLetter remembers what it is given to publish.
type recordingDeadLetter struct{ got []*message.Message }

func (d *recordingDeadLetter) Publish(_ string, msgs ...*message.Message) error {
	d.got = append(d.got, msgs...)
	return nil
}
func (*recordingDeadLetter) Close() error { return nil }

// A message whose handler meets a key of a partition this instance does
// not own was keyed for another partition than it came from: no retry
// moves it, and retried, it would hold its partition's every later
// message. It is dead-lettered.
func TestAMessageKeyedForAnotherPartitionIsDeadLettered(t *testing.T) {
	dead := &recordingDeadLetter{}
	hs, err := NewHandlers(HandlersConfig{DeadLetter: dead, RetryInterval: time.Millisecond, MaxRetryInterval: time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	h := hs.Wrap("misrouted.in", "in", func(*message.Message) error {
		calls++
		return fmt.Errorf("createorder.sagas/s1: %w", ErrNotOwned)
	})
	msg := message.NewMessage(watermill.NewUUID(), []byte("x"))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	msg.SetContext(ctx)
	if err := h(msg); err != nil {
		t.Fatalf("handled: %v (after %d calls), want nil: dead-lettered", err, calls)
	}
	if len(dead.got) != 1 || calls != 1 {
		t.Errorf("dead-lettered %d messages after %d calls, want 1 after 1", len(dead.got), calls)
	}
}

// deadLetterOf is the letter a handler of large.in writes for msg when it
// fails with poison, its error quoting the record's key, as a store's does.
func deadLetterOf(t *testing.T, msg *message.Message) *message.Message {
	t.Helper()
	dead := &recordingDeadLetter{}
	hs, err := NewHandlers(HandlersConfig{DeadLetter: dead}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := hs.Wrap("large.in", "in", func(m *message.Message) error {
		record, _ := RecordFromCtx(m.Context())
		return fmt.Errorf("large.in/%s: %w", record.Key, ErrPoison)
	})
	if err := h(msg); err != nil || len(dead.got) != 1 {
		t.Fatalf("handled: %v, %d letters; want nil: dead-lettered", err, len(dead.got))
	}
	return dead.got[0]
}

// A message whose key is too large to be written again, twice (the
// letter's partition key header and its record key), is dead-lettered
// under its topic, with the key's size, without its value: written with
// both, the letter was refused, and the record came back for ever.
func TestAMessageOfATooLargeKeyIsDeadLetteredWithoutIt(t *testing.T) {
	for _, c := range []struct {
		key, value int
		keyKept    bool
		valueKept  bool
	}{
		{100 << 10, 100 << 10, true, true},
		{100 << 10, 800 << 10, true, false}, // 900 KiB of key and value, but the key twice
		{600 << 10, 10, false, true},
		{950 << 10, 10, false, true}, // and 950 KiB in the error
	} {
		msg := message.NewMessage(watermill.NewUUID(), bytes.Repeat([]byte("v"), c.value))
		key := bytes.Repeat([]byte("k"), c.key)
		msg.SetContext(WithRecord(t.Context(), Record{Topic: "large.in", Key: key}))
		letter := deadLetterOf(t, msg)
		pk := letter.Metadata.Get(contracts.HeaderPartitionKey)
		if size := letterSize(letter) + len(pk); size > maxDeadLetterBytes {
			t.Errorf("key %d, value %d: a letter of %d bytes, key counted twice; want at most %d", c.key, c.value, size, maxDeadLetterBytes)
		}
		if keyKept := pk == string(key); keyKept != c.keyKept || !keyKept && (pk != letter.Metadata.Get(contracts.HeaderDeadLetterTopic) || letter.Metadata.Get(contracts.HeaderDeadLetterKeyBytes) != strconv.Itoa(c.key)) {
			t.Errorf("key %d, value %d: partition key of %d bytes, %s %q; want the key kept %t, else the topic and its size",
				c.key, c.value, len(pk), contracts.HeaderDeadLetterKeyBytes, letter.Metadata.Get(contracts.HeaderDeadLetterKeyBytes), c.keyKept)
		}
		if valueKept := len(letter.Payload) == c.value; valueKept != c.valueKept {
			t.Errorf("key %d, value %d: value of %d bytes kept; want it kept %t", c.key, c.value, len(letter.Payload), c.valueKept)
		}
	}
}

// A message whose own headers are too large (any producer may write large
// ones) is dead-lettered with each cut to 4 KiB, their size before in
// dlq_header_bytes: dropping its value and its key left the letter too
// large, refused, and the record came back for ever.
func TestAMessageOfTooLargeHeadersIsDeadLetteredWithThemCut(t *testing.T) {
	msg := message.NewMessage(watermill.NewUUID(), []byte("v"))
	msg.Metadata.Set("x-baggage", strings.Repeat("b", 950<<10))
	msg.SetContext(WithRecord(t.Context(), Record{Topic: "large.in", Key: []byte("k")}))
	letter := deadLetterOf(t, msg)
	if size := letterSize(letter) + len(letter.Metadata.Get(contracts.HeaderPartitionKey)); size > maxDeadLetterBytes {
		t.Errorf("a letter of %d bytes; want at most %d", size, maxDeadLetterBytes)
	}
	if got := letter.Metadata.Get(contracts.HeaderDeadLetterHeaderBytes); got != strconv.Itoa(len("x-baggage")+950<<10) || len(letter.Metadata.Get("x-baggage")) > 5<<10 {
		t.Errorf("%s %q, x-baggage of %d bytes; want its size before, and it cut", contracts.HeaderDeadLetterHeaderBytes, got, len(letter.Metadata.Get("x-baggage")))
	}
}

// A message too large to be written again whole (franz-go refuses a record
// past its batch limit, and the record would come back for ever) is
// dead-lettered without its value, with its size.
func TestATooLargeMessageIsDeadLetteredWithoutItsValue(t *testing.T) {
	for _, size := range []int{100, 2 << 20} {
		msg := message.NewMessage(watermill.NewUUID(), bytes.Repeat([]byte("x"), size))
		msg.SetContext(t.Context())
		letter := deadLetterOf(t, msg)
		got, bytesHeader := len(letter.Payload), letter.Metadata.Get(contracts.HeaderDeadLetterValueBytes)
		switch {
		case size < maxDeadLetterBytes && (got != size || bytesHeader != ""):
			t.Errorf("a message of %d bytes: dead-lettered with %d bytes and %s %q, want it whole", size, got, contracts.HeaderDeadLetterValueBytes, bytesHeader)
		case size > maxDeadLetterBytes && (got != 0 || bytesHeader != strconv.Itoa(size)):
			t.Errorf("a message of %d bytes: dead-lettered with %d bytes and %s %q, want none and its size", size, got, contracts.HeaderDeadLetterValueBytes, bytesHeader)
		}
	}
}

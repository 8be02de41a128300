package messaging_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/saga"
)

const handlerName = "customer.commands"

// participant is a customer service's command port behind the handler
// chain, fed by a Subscriber.
type participant struct {
	kafka   config.Kafka
	serde   *serde.Serde
	metrics *prometheus.Registry
	// flakyCalls counts calls for customer "flaky", which fail twice.
	flakyCalls atomic.Int32
}

// startParticipant runs a customer participant behind the chain until the
// test ends. Its ReserveCredit handler panics for customer "panics", returns
// no reply for "silent", fails twice for customer "flaky", and reserves the
// credit otherwise.
func startParticipant(t *testing.T) *participant {
	t.Helper()
	p := &participant{kafka: startKafka(t, contracts.Topics()...), metrics: prometheus.NewRegistry()}
	p.serde = newSerde(t, p.kafka, &contracts.ReserveCredit{}, &contracts.ReleaseCredit{}, &contracts.ApproveOrder{}, &contracts.CreditReserved{})

	pub, err := messaging.NewPublisher(p.kafka, "customer")
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { pub.Close() })
	sub, err := messaging.NewSubscriber(p.kafka, "customer", wlog())
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	handlers, err := messaging.NewHandlers(messaging.HandlersConfig{
		DeadLetter: pub, Metrics: p.metrics, Subscriber: "messaging.Subscriber",
		RetryInterval: 10 * time.Millisecond, MaxRetryInterval: 50 * time.Millisecond,
	}, quiet())
	if err != nil {
		t.Fatalf("NewHandlers: %v", err)
	}
	// A plain router feeds the wrapped handler from the Subscriber.
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog())
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}

	send := func(topic, key string, msg *message.Message) error {
		msg.Metadata.Set(contracts.HeaderPartitionKey, key)
		return pub.Publish(topic, msg)
	}
	commands := saga.NewParticipant(contracts.TopicCustomerCommands, contracts.Interactions(), contracts.Carries, p.serde, send)
	saga.Handle(commands, contracts.ReserveCreditInteraction, func(_ context.Context, cmd *contracts.ReserveCredit) (contracts.ReserveCreditReply, error) {
		switch cmd.CustomerID {
		case "panics":
			panic("boom")
		case "silent":
			return nil, nil
		case "flaky":
			if p.flakyCalls.Add(1) <= 2 {
				return nil, errors.New("registry unavailable")
			}
		}
		return &contracts.CreditReserved{CustomerID: cmd.CustomerID, OrderID: cmd.OrderID, Amount: cmd.Amount}, nil
	})
	saga.Handle(commands, contracts.ReleaseCreditInteraction, func(_ context.Context, cmd *contracts.ReleaseCredit) (contracts.ReleaseCreditReply, error) {
		return &contracts.CreditReleased{CustomerID: cmd.CustomerID, OrderID: cmd.OrderID}, nil
	})
	handler, err := commands.Handler()
	if err != nil {
		t.Fatalf("Handler: %v", err)
	}
	router.AddNoPublisherHandler(handlerName, contracts.TopicCustomerCommands, sub,
		handlers.Wrap(handlerName, contracts.TopicCustomerCommands, messaging.Poison(handler, saga.ErrUnexpectedCommand)))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("router.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("router did not stop within 15s")
		}
	})
	select {
	case <-router.Running():
	case err := <-done:
		t.Fatalf("router.Run: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatalf("router not running after 15s")
	}
	return p
}

// sagaHeaders are the headers an orchestrator sends a command with.
func sagaHeaders(sagaID, key string) map[string]string {
	return map[string]string{
		saga.HeaderSagaID:            sagaID,
		saga.HeaderSagaType:          contracts.SagaTypeCreateOrder,
		saga.HeaderStep:              "reserve_credit",
		saga.HeaderCommandID:         sagaID + ":reserve_credit",
		saga.HeaderAttempt:           "2",
		saga.HeaderReplyTo:           contracts.TopicCreateOrderReplies,
		saga.HeaderTraceparent:       "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		saga.HeaderTracestate:        "vendor=1",
		contracts.HeaderPartitionKey: key,
	}
}

func (p *participant) command(t *testing.T, key string, headers map[string]string, cmd serde.Record) *kgo.Record {
	t.Helper()
	value, err := p.serde.Encode(contracts.TopicCustomerCommands, cmd)
	if err != nil {
		t.Fatalf("encode %T: %v", cmd, err)
	}
	return raw(key, headers, value)
}

func raw(key string, headers map[string]string, value []byte) *kgo.Record {
	r := &kgo.Record{Topic: contracts.TopicCustomerCommands, Key: []byte(key), Value: value}
	for k, v := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return r
}

// noTime makes r a record written with no time (-1, as a producer that
// sets none writes it).
func noTime(r *kgo.Record) *kgo.Record {
	r.Timestamp = time.UnixMilli(-1)
	return r
}

func without(headers map[string]string, name string) map[string]string {
	out := map[string]string{}
	for k, v := range headers {
		if k != name {
			out[k] = v
		}
	}
	return out
}

// reply waits for the reply to saga sagaID and decodes it.
func (p *participant) reply(t *testing.T, sagaID string) (*kgo.Record, serde.Record) {
	t.Helper()
	var found *kgo.Record
	readUntil(t, p.kafka, contracts.TopicCreateOrderReplies, func(records []*kgo.Record) bool {
		for _, r := range records {
			if header(r, saga.HeaderSagaID) == sagaID {
				found = r
			}
		}
		return found != nil
	})
	body, err := p.serde.Decode(found.Value)
	if err != nil {
		t.Fatalf("decode reply to %s: %v", sagaID, err)
	}
	return found, body
}

func (p *participant) deadLettered(t *testing.T, topic string) float64 {
	return series(t, p.metrics, "messages_dead_lettered_total", map[string]string{"topic": topic}).GetCounter().GetValue()
}

func TestCommands(t *testing.T) {
	t.Parallel()
	p := startParticipant(t)

	t.Run("reply carries the saga headers back", func(t *testing.T) {
		headers := sagaHeaders("saga-1", "c1")
		produce(t, p.kafka, p.command(t, "c1", headers, &contracts.ReserveCredit{CustomerID: "c1", OrderID: "o1", Amount: 4200}))

		r, body := p.reply(t, "saga-1")
		if want := (&contracts.CreditReserved{CustomerID: "c1", OrderID: "o1", Amount: 4200}); !reflect.DeepEqual(body, want) {
			t.Errorf("reply body: got %#v, want %#v", body, want)
		}
		if string(r.Key) != "saga-1" {
			t.Errorf("reply key: got %q, want the saga id saga-1", r.Key)
		}
		for _, h := range []string{saga.HeaderSagaID, saga.HeaderSagaType, saga.HeaderStep,
			saga.HeaderCommandID, saga.HeaderAttempt, saga.HeaderTraceparent, saga.HeaderTracestate} {
			if got := header(r, h); got != headers[h] {
				t.Errorf("reply header %s: got %q, want %q", h, got, headers[h])
			}
		}
		if got := header(r, saga.HeaderReplyTo); got != "" {
			t.Errorf("reply header %s: got %q, want none", saga.HeaderReplyTo, got)
		}
	})

	t.Run("poison messages are dead-lettered and the next one is processed", func(t *testing.T) {
		const key = "c-poison"
		headers := sagaHeaders("saga-poison", key)
		reserve := &contracts.ReserveCredit{CustomerID: key, OrderID: "o2", Amount: 1}
		unknownID := append([]byte{0, 0, 0, 0x30, 0x39}, p.command(t, key, headers, reserve).Value[5:]...)
		cases := []struct {
			name    string
			record  *kgo.Record
			wantErr string
		}{
			{"missing header", p.command(t, key, without(headers, saga.HeaderReplyTo), reserve), "has no reply_to header"},
			{"no handler for the type", p.command(t, key, headers, &contracts.ApproveOrder{OrderID: "o2"}), "no handler for *contracts.ApproveOrder"},
			{"garbage bytes", raw(key, nil, []byte("definitely not avro")), "magic byte is 100"},
			{"written with no time", noTime(raw(key, nil, []byte("no time, no avro"))), "magic byte is 110"},
			{"unknown schema id", raw(key, headers, unknownID), "schema id 12345 is not in the registry"},
			{"handler panics", p.command(t, "panics", sagaHeaders("saga-panics", "panics"), &contracts.ReserveCredit{CustomerID: "panics"}), `panic occurred: "boom"`},
			{"handler returns no reply", p.command(t, "silent", sagaHeaders("saga-silent", "silent"), &contracts.ReserveCredit{CustomerID: "silent"}), "returned no reply"},
		}
		var records []*kgo.Record
		for _, c := range cases {
			records = append(records, c.record)
		}
		good := p.command(t, key, sagaHeaders("saga-after-poison", key), reserve)
		produce(t, p.kafka, append(records, good)...)

		if _, body := p.reply(t, "saga-after-poison"); !reflect.DeepEqual(body, &contracts.CreditReserved{CustomerID: key, OrderID: "o2", Amount: 1}) {
			t.Errorf("reply to the good command after the poison ones: got %#v", body)
		}
		dead := readUntil(t, p.kafka, contracts.TopicDeadLetter, func(r []*kgo.Record) bool { return len(r) >= len(cases) })
		if len(dead) != len(cases) {
			t.Fatalf("dead letters: got %d, want %d:%s", len(dead), len(cases), describe(dead))
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var d *kgo.Record
				for _, r := range dead {
					if header(r, contracts.HeaderDeadLetterOffset) == strconv.FormatInt(c.record.Offset, 10) &&
						header(r, contracts.HeaderDeadLetterPartition) == strconv.Itoa(int(c.record.Partition)) {
						d = r
					}
				}
				if d == nil {
					t.Fatalf("no dead letter for %s/%d@%d:%s", c.record.Topic, c.record.Partition, c.record.Offset, describe(dead))
				}
				if got := header(d, contracts.HeaderDeadLetterTopic); got != contracts.TopicCustomerCommands {
					t.Errorf("%s: got %q, want %q", contracts.HeaderDeadLetterTopic, got, contracts.TopicCustomerCommands)
				}
				want := strconv.FormatInt(c.record.Timestamp.UnixMilli(), 10)
				if c.record.Timestamp.UnixMilli() <= 0 {
					want = "" // it has none
				}
				if got := header(d, contracts.HeaderDeadLetterTimestamp); got != want {
					t.Errorf("%s: got %q, want the record's, %q", contracts.HeaderDeadLetterTimestamp, got, want)
				}
				if got := header(d, contracts.HeaderDeadLetterHandler); got != handlerName {
					t.Errorf("%s: got %q, want %q", contracts.HeaderDeadLetterHandler, got, handlerName)
				}
				if got := header(d, contracts.HeaderDeadLetterError); !strings.Contains(got, c.wantErr) {
					t.Errorf("%s: got %.300q, want it to contain %q", contracts.HeaderDeadLetterError, got, c.wantErr)
				}
				if !bytes.Equal(d.Value, c.record.Value) {
					t.Errorf("dead letter value: got %q, want the original %q", d.Value, c.record.Value)
				}
				for _, h := range c.record.Headers {
					if got := header(d, h.Key); got != string(h.Value) {
						t.Errorf("dead letter header %s: got %q, want the original %q", h.Key, got, h.Value)
					}
				}
				if !strings.HasPrefix(string(d.Key), string(c.record.Key)) {
					t.Errorf("dead letter key: got %q, want it to start with the original key %q", d.Key, c.record.Key)
				}
			})
		}
		eventually(t, "the dead-letter counter to reach the cases", func() bool {
			return p.deadLettered(t, contracts.TopicCustomerCommands) == float64(len(cases))
		})
	})

	t.Run("transient error is retried, not dead-lettered", func(t *testing.T) {
		produce(t, p.kafka, p.command(t, "flaky", sagaHeaders("saga-flaky", "flaky"), &contracts.ReserveCredit{CustomerID: "flaky", OrderID: "o3", Amount: 7}))
		if _, body := p.reply(t, "saga-flaky"); !reflect.DeepEqual(body, &contracts.CreditReserved{CustomerID: "flaky", OrderID: "o3", Amount: 7}) {
			t.Errorf("reply after retries: got %#v", body)
		}
		if got := p.flakyCalls.Load(); got != 3 {
			t.Errorf("handler calls: got %d, want 3 (two failures, one success)", got)
		}
		for _, r := range readAll(t, p.kafka, contracts.TopicDeadLetter) {
			if header(r, saga.HeaderSagaID) == "saga-flaky" {
				t.Errorf("the retried command was dead-lettered:%s", describe([]*kgo.Record{r}))
			}
		}
	})

	// The names, labels and values of watermill's router metrics.
	t.Run("handler metrics count the messages by handler and outcome", func(t *testing.T) {
		for _, c := range []struct {
			metric string
			labels map[string]string
		}{
			{"handler_execution_time_seconds", map[string]string{"handler_name": handlerName, "success": "true"}},
			{"subscriber_messages_received_total", map[string]string{"handler_name": handlerName, "subscriber_name": "messaging.Subscriber", "acked": "acked"}},
		} {
			eventually(t, fmt.Sprintf("%s%v to count", c.metric, c.labels), func() bool { return p.counted(t, c.metric, c.labels) > 0 })
		}
	})
}

// counted returns the value of a counter, or the sample count of a
// histogram, of the series of metric name with the given labels.
func (p *participant) counted(t *testing.T, name string, labels map[string]string) float64 {
	m := series(t, p.metrics, name, labels)
	return m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
}

func TestNewHandlersRequiresADeadLetterPublisher(t *testing.T) {
	_, err := messaging.NewHandlers(messaging.HandlersConfig{}, quiet())
	if err == nil || !strings.Contains(err.Error(), "DeadLetter") {
		t.Errorf("NewHandlers without DeadLetter: got %v, want an error naming DeadLetter", err)
	}
}

func TestNewHandlersRegistersItsMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := messaging.NewHandlers(messaging.HandlersConfig{DeadLetter: nopPublisher{}, Metrics: reg}, quiet()); err != nil {
		t.Fatalf("NewHandlers: %v", err)
	}
	// A second chain on the same registry would count into the same
	// series; it is refused rather than silently shared.
	if _, err := messaging.NewHandlers(messaging.HandlersConfig{DeadLetter: nopPublisher{}, Metrics: reg}, quiet()); err == nil {
		t.Errorf("second NewHandlers on one registry: got nil error, want one")
	}
}

type nopPublisher struct{}

func (nopPublisher) Publish(string, ...*message.Message) error { return nil }
func (nopPublisher) Close() error                              { return nil }

package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	orchestrator "github.com/kafkasaga/kafkasaga/orchestrator/service"
	"github.com/kafkasaga/kafkasaga/platform/config"
	payment "github.com/kafkasaga/kafkasaga/services/payment/service"
	"github.com/kafkasaga/kafkasaga/system"
)

const adminToken = "s3cret"

func withAdminToken(c *system.Config) { c.Orchestrator.AdminToken = adminToken }

// actedSaga is GET /sagas/{id} with what the operator actions show.
type actedSaga struct {
	State         string `json:"state"`
	Step          string `json:"step"`
	FailureReason string `json:"failureReason"`
	History       []struct {
		Event string `json:"event"`
		By    string `json:"by"`
	} `json:"history"`
}

// act posts an operator action as operator, retrying a 503 with
// Retry-After as the API asks, and returns the status and body.
func (r *running) act(t *testing.T, url, operator string) (int, []byte) {
	t.Helper()
	return r.postRetrying(t, url, nil, "Authorization", "Bearer "+adminToken, "X-Operator", operator)
}

// TestAnOperatorAbortsASagaWaitingOnASilentParticipant runs without the
// payment service and with two orchestrator instances, so the saga of an
// order waits on authorize_payment. An operator retries the step through
// one instance and aborts the saga through the other: one of them does
// not own the saga and forwards the request, token and operator included.
// The abort compensates: when the payment service is back, it answers the
// authorization (a late reply, ignored) and its cancellation, the credit
// is released and the order rejected ABORTED; the history says who asked.
func TestAnOperatorAbortsASagaWaitingOnASilentParticipant(t *testing.T) {
	r := startSystem(t, withAdminToken, func(c *system.Config) {
		c.Services = without("payment")
	})
	kafka := config.Kafka{Brokers: r.stack.Brokers(), SchemaRegistryURL: r.stack.RegistryURL(), AutoRegisterSchemas: true}
	second := "http://" + freeAddrs(t, 1)[0]
	p, err := orchestrator.New(orchestrator.Config{HTTPAddr: strings.TrimPrefix(second, "http://"), Kafka: kafka,
		StepTimeout: 10 * time.Second, StepMaxAttempts: 5, AdminToken: adminToken}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, p.Run)
	awaitMembers(t, strings.Join(r.stack.Brokers(), ","), "orchestrator", 2)

	const limit = 100_000
	c := r.createCustomer(t, "Ada", limit)
	id := r.createOrder(t, c, 5_000)
	eventually(t, 30*time.Second, func() error {
		var s actedSaga
		status, body, err := r.try(http.MethodGet, r.sagas+"/sagas/"+id, nil)
		if err == nil && status == http.StatusOK {
			err = json.Unmarshal(body, &s)
		}
		if err != nil || s.Step != "authorize_payment" {
			return fmt.Errorf("saga %s: %d %s %v, want it waiting on authorize_payment", id, status, body, err)
		}
		return nil
	})
	forwarded := func() float64 {
		return metric(t, r.sagas, "http_forwarded_total") + metric(t, second, "http_forwarded_total")
	}
	before := forwarded()

	if status, body := r.act(t, r.sagas+"/sagas/"+id+"/retry", "ops-bob"); status != http.StatusOK {
		t.Fatalf("retry: got %d %s, want 200", status, body)
	}
	status, body := r.act(t, second+"/sagas/"+id+"/abort", "ops-alice")
	var s actedSaga
	if err := json.Unmarshal(body, &s); err != nil || status != http.StatusOK ||
		s.State != "COMPENSATING" || s.Step != "authorize_payment:compensate" || s.FailureReason != "ABORTED" {
		t.Fatalf("abort: got %d %s, want 200 COMPENSATING authorize_payment:compensate ABORTED", status, body)
	}
	if got := forwarded() - before; got < 1 {
		t.Errorf("requests forwarded between the instances: got %v, want the one to the saga's owner", got)
	}

	// The payment service comes back: it authorizes, then cancels, in the
	// order the commands were queued.
	addr := freeAddrs(t, 1)[0]
	pay, err := payment.New(payment.Config{HTTPAddr: addr, Kafka: kafka, PaymentLimit: paymentLimit, RefundLimit: refundLimit}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, pay.Run)

	o := r.awaitOrderEnd(t, id, 60*time.Second)
	if o.State != "REJECTED" || o.RejectionReason != "ABORTED" {
		t.Errorf("order: got %s %q, want REJECTED ABORTED", o.State, o.RejectionReason)
	}
	r.awaitSagaEnd(t, id, 10*time.Second)
	r.getJSON(t, r.sagas+"/sagas/"+id, &s)
	var got []string
	for _, h := range s.History {
		if h.Event == "timeout" {
			continue // a loaded machine may time a step out once
		}
		got = append(got, h.Event+"/"+h.By)
	}
	want := []string{"started/", "CreditReserved/", "retry/ops-bob", "abort/ops-alice", "PaymentCancelled/", "CreditReleased/", "OrderRejected/"}
	if s.State != "REJECTED" || s.FailureReason != "ABORTED" || !inOrder(got, want) {
		t.Errorf("saga: got %s %s, history (event/by) %v; want REJECTED ABORTED, %v", s.State, s.FailureReason, got, want)
	}
	checkCredit(t, r, map[string]int64{c: limit})
	if stale := metric(t, r.sagas, "saga_stale_replies_total") + metric(t, second, "saga_stale_replies_total"); stale < 1 {
		t.Errorf("stale replies: got %v, want the late PaymentAuthorized counted", stale)
	}
}

// TestAReplayedDeadLetterArrivesOnItsTopic dead-letters a poison message
// and replays it through the API: it is written again to the partition
// of the topic it came from, with its key, value and headers, and is
// dead-lettered again, naming where it was replayed from.
func TestAReplayedDeadLetterArrivesOnItsTopic(t *testing.T) {
	r := startSystem(t, withAdminToken)
	brokers := r.stack.Brokers()
	dlqStart := endOffsets(t, brokers, []string{contracts.TopicDeadLetter})
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	key := "poison-" + fmt.Sprint(time.Now().UnixNano())
	poison := &kgo.Record{Topic: contracts.TopicCustomerCommands, Key: []byte(key), Value: []byte("not avro at all"),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t-1")}}}
	if err := client.ProduceSync(t.Context(), poison).FirstErr(); err != nil {
		t.Fatal(err)
	}

	first := awaitDeadLetter(t, brokers, dlqStart, key, 1)[0]
	status, body := r.act(t, fmt.Sprintf("%s/deadletters/%d/%d/replay", r.sagas, first.Partition, first.Offset), "ops-alice")
	var to struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
	}
	if err := json.Unmarshal(body, &to); err != nil || status != http.StatusOK ||
		to.Topic != poison.Topic || to.Partition != poison.Partition || to.Offset <= poison.Offset {
		t.Fatalf("replay: got %d %s, want 200 to %s partition %d after offset %d", status, body, poison.Topic, poison.Partition, poison.Offset)
	}

	// The dead letter's headers (the poison's, and the ones the consumer
	// gave every message it read) but the dlq_* ones, and where it was.
	replayed := readAt(t, brokers, to.Topic, to.Partition, to.Offset)
	var wantHeaders []string
	for _, h := range first.Headers {
		if !strings.HasPrefix(h.Key, "dlq_") {
			wantHeaders = append(wantHeaders, h.Key+"="+string(h.Value))
		}
	}
	wantHeaders = append(wantHeaders, fmt.Sprintf("%s=deadletter/%d/%d", contracts.HeaderReplayedFrom, first.Partition, first.Offset))
	var gotHeaders []string
	for _, h := range replayed.Headers {
		gotHeaders = append(gotHeaders, h.Key+"="+string(h.Value))
	}
	if string(replayed.Key) != key || string(replayed.Value) != string(poison.Value) ||
		!slices.Equal(gotHeaders, wantHeaders) || !slices.Contains(gotHeaders, "trace=t-1") {
		t.Errorf("replayed record: got key %q value %q headers %q, want %q %q %q (trace=t-1 among them)",
			replayed.Key, replayed.Value, gotHeaders, key, poison.Value, wantHeaders)
	}
	// Still poison: the customer service consumed it and dead-lettered it again.
	again := awaitDeadLetter(t, brokers, dlqStart, key, 2)[1]
	if got := headerOf(again, contracts.HeaderReplayedFrom); got != fmt.Sprintf("deadletter/%d/%d", first.Partition, first.Offset) {
		t.Errorf("dead letter of the replay: got %s %q, want where it was replayed from", contracts.HeaderReplayedFrom, got)
	}

	if status, body := r.act(t, fmt.Sprintf("%s/deadletters/%d/%d/replay", r.sagas, first.Partition, 1<<40), "ops-alice"); status != http.StatusNotFound {
		t.Errorf("replay of an offset with no dead letter: got %d %s, want 404", status, body)
	}
}

// awaitDeadLetter reads the dead-letter topic from start until it holds n
// dead letters of the given key, and returns them in order.
func awaitDeadLetter(t *testing.T, brokers []string, start map[string]map[int32]kgo.Offset, key string, n int) []*kgo.Record {
	t.Helper()
	dlq, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(start), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var found []*kgo.Record
	for len(found) < n {
		fetches := dlq.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("dead letters of key %s: got %d within 30s, want %d", key, len(found), n)
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			if string(rec.Key) == key {
				found = append(found, rec)
			}
		})
	}
	return found
}

// readAt returns the committed record at offset of a topic's partition.
func readAt(t *testing.T, brokers []string, topic string, partition int32, offset int64) *kgo.Record {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s/%d@%d: no record within 30s", topic, partition, offset)
		}
		for _, rec := range fetches.Records() {
			if rec.Offset == offset {
				return rec
			}
		}
	}
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

package system_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	orchestrator "github.com/kafkasaga/kafkasaga/orchestrator/service"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/saga"
	customer "github.com/kafkasaga/kafkasaga/services/customer/service"
	"github.com/kafkasaga/kafkasaga/services/order/app/command"
	order "github.com/kafkasaga/kafkasaga/services/order/service"
	payment "github.com/kafkasaga/kafkasaga/services/payment/service"
	"github.com/kafkasaga/kafkasaga/system"
)

// workload is a set of orders whose outcomes do not depend on timing:
// rich customers have credit for all their orders, the poor one for none,
// some customers do not exist, and some orders exceed the payment limit.
type workload struct {
	rich      []string
	poor      string
	richLimit int64
	poorLimit int64
	orders    []placedOrder
}

type placedOrder struct {
	id, customer string
	total        int64
	wantState    string
	wantReason   string
}

func newWorkload(t *testing.T, r *running, n int) *workload {
	t.Helper()
	w := &workload{richLimit: int64(n) * 50_000 * 10, poorLimit: 1}
	for i := range 3 {
		w.rich = append(w.rich, r.createCustomer(t, fmt.Sprintf("rich%d", i), w.richLimit))
	}
	w.poor = r.createCustomer(t, "poor", w.poorLimit)
	return w
}

// place posts the i-th order of the workload.
func (w *workload) place(t *testing.T, r *running, i int) {
	t.Helper()
	o := placedOrder{customer: w.rich[i%len(w.rich)], total: int64(1 + (i*7919)%50_000), wantState: "APPROVED"}
	switch i % 8 {
	case 3:
		o.customer, o.wantState, o.wantReason = w.poor, "REJECTED", "INSUFFICIENT_CREDIT"
	case 5:
		o.customer, o.wantState, o.wantReason = uuid.NewString(), "REJECTED", "UNKNOWN_CUSTOMER"
	case 7:
		o.total, o.wantState, o.wantReason = paymentLimit+1, "REJECTED", "PAYMENT_DECLINED"
	}
	o.id = r.createOrder(t, o.customer, o.total)
	w.orders = append(w.orders, o)
}

// check waits for every order to end and asserts its outcome, its saga's
// end, and every customer's credit.
func (w *workload) check(t *testing.T, r *running, within time.Duration) {
	t.Helper()
	approved := map[string]int64{}
	for _, o := range w.orders {
		got := r.awaitOrderEnd(t, o.id, within)
		if got.State != o.wantState || got.RejectionReason != o.wantReason {
			t.Errorf("order %s (%d cents for %s): got %s %q, want %s %q", o.id, o.total, o.customer, got.State, got.RejectionReason, o.wantState, o.wantReason)
		}
		if got.State == "APPROVED" {
			approved[o.customer] += o.total
		}
		r.awaitSagaEnd(t, o.id, within)
	}
	want := map[string]int64{w.poor: w.poorLimit}
	for _, c := range w.rich {
		want[c] = w.richLimit - approved[c]
	}
	checkCredit(t, r, want)
}

// sagaTopics are the topics whose records a saga's progress depends on.
var sagaTopics = []string{contracts.TopicOrderEvents, contracts.TopicOrderCommands, contracts.TopicCustomerCommands,
	contracts.TopicPaymentCommands, contracts.TopicCreateOrderReplies}

// TestDuplicateDeliveryChangesNothing has a second producer write every
// event, command and reply once more: half of them right away, the other
// half once every saga has ended, the latest a duplicate can come. The
// outcomes and the credit are those of single delivery, before and after the
// late duplicates, and the orchestrator shows it saw and ignored duplicate
// replies.
func TestDuplicateDeliveryChangesNothing(t *testing.T) {
	r := startSystem(t)
	dup := startDuplicator(t, r.stack.Brokers(), sagaTopics)
	w := newWorkload(t, r, 40)
	for i := range 40 {
		w.place(t, r, i)
	}
	w.check(t, r, 60*time.Second)
	// The duplicator runs beside the sagas and may lag behind them.
	eventually(t, 30*time.Second, func() error {
		for _, topic := range sagaTopics {
			if dup.count(topic) == 0 {
				return fmt.Errorf("no record of %s was duplicated yet, so the test would prove nothing for it", topic)
			}
		}
		return nil
	})

	dup.flushLate(t)
	awaitConsumed(t, r.stack.Brokers(), system.Names()...)
	w.check(t, r, time.Second)
	if got := metric(t, r.sagas, "saga_stale_replies_total"); got == 0 {
		t.Error("orchestrator: got no stale replies counted, want the duplicated replies counted and ignored")
	}
}

// duplicator re-produces every record of its topics once, as a producer
// retry or a consumer's redelivery after a crash would: records at even
// offsets at once, the others when flushLate is called.
type duplicator struct {
	client *kgo.Client
	mu     sync.Mutex
	counts map[string]int
	late   []*kgo.Record
}

func (d *duplicator) count(topic string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counts[topic]
}

func startDuplicator(t *testing.T, brokers []string, topics []string) *duplicator {
	t.Helper()
	// Start at the current end of every partition: on a shared broker the
	// topics hold earlier tests' records, which are not this test's business.
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(endOffsets(t, brokers, topics)))
	if err != nil {
		t.Fatal(err)
	}
	d := &duplicator{client: client, counts: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			client.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
				for _, h := range rec.Headers {
					if h.Key == "duplicate" {
						return
					}
				}
				copy := &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value,
					Headers: append(append([]kgo.RecordHeader{}, rec.Headers...), kgo.RecordHeader{Key: "duplicate", Value: []byte("1")})}
				d.mu.Lock()
				defer d.mu.Unlock()
				d.counts[rec.Topic]++
				if rec.Offset%2 == 1 {
					d.late = append(d.late, copy)
					return
				}
				if err := client.ProduceSync(ctx, copy).FirstErr(); err != nil && ctx.Err() == nil {
					t.Errorf("duplicate %s/%d@%d: %v", rec.Topic, rec.Partition, rec.Offset, err)
				}
			})
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		client.Close()
	})
	return d
}

// endOffsets returns the offset after the last record of every partition.
func endOffsets(t *testing.T, brokers []string, topics []string) map[string]map[int32]kgo.Offset {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ends, err := kadm.NewClient(client).ListEndOffsets(t.Context(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if offsets[o.Topic] == nil {
			offsets[o.Topic] = map[int32]kgo.Offset{}
		}
		offsets[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	return offsets
}

// flushLate produces the duplicates held back.
func (d *duplicator) flushLate(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	late := d.late
	d.late = nil
	d.mu.Unlock()
	if len(late) == 0 {
		t.Fatal("no duplicate was held back for late delivery")
	}
	if err := d.client.ProduceSync(t.Context(), late...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// awaitConsumed waits until every consumer group has committed the end of
// every partition it reads.
func awaitConsumed(t *testing.T, brokers []string, groups ...string) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	adm := kadm.NewClient(client)
	eventually(t, 30*time.Second, func() error {
		lags, err := adm.Lag(t.Context(), groups...)
		if err != nil {
			return err
		}
		for _, g := range groups {
			l, ok := lags[g]
			if !ok || l.Error() != nil {
				return fmt.Errorf("group %s: %v", g, l.Error())
			}
			for _, m := range l.Lag.Sorted() {
				if m.Lag > 0 && !onlyMarkers(t, brokers, m.Topic, m.Partition, m.Commit.At, m.End.Offset) {
					return fmt.Errorf("group %s: %s/%d: lag %d", g, m.Topic, m.Partition, m.Lag)
				}
			}
		}
		return nil
	})
}

// onlyMarkers says whether the records of a partition in [from, to) are all
// transaction markers, which a consumer never receives and so never
// commits past.
func onlyMarkers(t *testing.T, brokers []string, topic string, partition int32, from, to int64) bool {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.KeepControlRecords(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil || len(fetches.Errors()) > 0 {
			return false
		}
		for _, r := range fetches.Records() {
			if r.Offset >= to {
				return true
			}
			if !r.Attrs.IsControl() {
				return false
			}
			if r.Offset == to-1 {
				return true
			}
		}
	}
}

// TestPoisonMessagesAreDeadLettered writes, with a plain Kafka client, raw
// bytes, a value with an unknown schema id and a valid record of a type its
// consumer does not handle to every consumed topic, and records of the
// right type that can never succeed. Each lands in the dead-letter topic
// with headers naming its origin and the error, and the sagas around them
// complete.
func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	r := startSystem(t)
	w := newWorkload(t, r, 16)
	for i := range 8 {
		w.place(t, r, i)
	}

	// Only this test's dead letters: a shared broker may hold others.
	dlqStart := endOffsets(t, r.stack.Brokers(), []string{contracts.TopicDeadLetter})
	client, s := rawClients(t, r)
	unknownID := binary.BigEndian.AppendUint32([]byte{0}, 1<<30)
	unexpected := map[string]serde.Record{ // a type that the topic's consumer does not decode
		contracts.TopicOrderEvents:        &contracts.ApproveOrder{OrderID: "x"},
		contracts.TopicOrderCommands:      &contracts.ReserveCredit{OrderID: "x"},
		contracts.TopicCustomerCommands:   &contracts.OrderCreated{OrderID: "x"},
		contracts.TopicPaymentCommands:    &contracts.OrderCreated{OrderID: "x"},
		contracts.TopicCreateOrderReplies: &contracts.ReserveCredit{OrderID: "x"},
	}
	type origin struct {
		topic     string
		partition int32
		offset    int64
	}
	poisoned := map[origin][]byte{}
	for _, topic := range sagaTopics {
		valid, err := s.Encode(topic, unexpected[topic])
		if err != nil {
			t.Fatal(err)
		}
		for _, value := range [][]byte{[]byte("not avro at all"), append(unknownID, 2, 'x'), valid} {
			rec := &kgo.Record{Topic: topic, Key: []byte("poison"), Value: value}
			if err := client.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
			poisoned[origin{topic, rec.Partition, rec.Offset}] = value
		}
	}
	// The right types, but no order of the system could be this.
	command := func(replyTo string) []kgo.RecordHeader {
		return []kgo.RecordHeader{{Key: saga.HeaderReplyTo, Value: []byte(replyTo)},
			{Key: saga.HeaderSagaID, Value: []byte("poison")}, {Key: saga.HeaderCommandID, Value: []byte("poison:step:invoke")}}
	}
	invalid := []struct {
		topic   string
		rec     serde.Record
		headers []kgo.RecordHeader
	}{
		{contracts.TopicOrderEvents, &contracts.OrderCreated{OrderID: uuid.NewString(), OrderTotal: 5}, nil}, // no customer
		{contracts.TopicCustomerCommands, &contracts.ReserveCredit{CustomerID: uuid.NewString(), OrderID: uuid.NewString(), Amount: 5}, command(contracts.TopicCustomerState)},
	}
	for _, p := range invalid {
		value, err := s.Encode(p.topic, p.rec)
		if err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Topic: p.topic, Key: []byte("poison"), Value: value, Headers: p.headers}
		if err := client.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		poisoned[origin{p.topic, rec.Partition, rec.Offset}] = value
	}

	// Larger than a record may be written again (franz-go's and Kafka's
	// default limits, about 1 MB), compressed to fit in: dead-lettered
	// without its value.
	large, err := kgo.NewClient(kgo.SeedBrokers(r.stack.Brokers()...), kgo.ProducerBatchMaxBytes(4<<20),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer large.Close()
	huge := &kgo.Record{Topic: contracts.TopicCustomerCommands, Key: []byte("poison"), Value: bytes.Repeat([]byte("x"), 2<<20)}
	if err := large.ProduceSync(t.Context(), huge).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tooLarge := origin{huge.Topic, huge.Partition, huge.Offset}
	poisoned[tooLarge] = nil

	for i := 8; i < 16; i++ {
		w.place(t, r, i)
	}
	w.check(t, r, 60*time.Second)

	// Read the dead-letter topic until every poison is found there.
	dlq, err := kgo.NewClient(kgo.SeedBrokers(r.stack.Brokers()...), kgo.ConsumePartitions(dlqStart))
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	found := map[origin]bool{}
	for len(found) < len(poisoned) && ctx.Err() == nil {
		dlq.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			h := map[string]string{}
			for _, hd := range rec.Headers {
				h[hd.Key] = string(hd.Value)
			}
			var o origin
			o.topic = h[contracts.HeaderDeadLetterTopic]
			fmt.Sscan(h[contracts.HeaderDeadLetterPartition], &o.partition)
			fmt.Sscan(h[contracts.HeaderDeadLetterOffset], &o.offset)
			want, ok := poisoned[o]
			if !ok {
				t.Errorf("dead letter %v with headers %v: not one of the poisons written", o, h)
				return
			}
			if o == tooLarge && (len(rec.Value) != 0 || h[contracts.HeaderDeadLetterValueBytes] != strconv.Itoa(len(huge.Value))) {
				t.Errorf("dead letter %v: got %d bytes and %s %q, want no value and its size", o, len(rec.Value), contracts.HeaderDeadLetterValueBytes, h[contracts.HeaderDeadLetterValueBytes])
			}
			if string(rec.Value) != string(want) || h[contracts.HeaderDeadLetterError] == "" || h[contracts.HeaderDeadLetterHandler] == "" {
				t.Errorf("dead letter %v: got value %.40q headers %.200v, want the original value %.40q, an error and a handler", o, rec.Value, h, want)
			}
			found[o] = true
		})
	}
	for o := range poisoned {
		if !found[o] {
			t.Errorf("poison %v: not in %s", o, contracts.TopicDeadLetter)
		}
	}
	// Counted as each dead letter's transaction commits, just after its
	// records became readable.
	eventually(t, 5*time.Second, func() error {
		var counted float64
		for _, base := range []string{r.order, r.customer, r.payment, r.sagas} {
			counted += metric(t, base, "messages_dead_lettered_total")
		}
		if counted != float64(len(poisoned)) {
			return fmt.Errorf("messages_dead_lettered_total over all processes: got %v, want %d", counted, len(poisoned))
		}
		return nil
	})
}

// TestSagasSurviveBrokerFaults fails every produce and fetch for a while,
// with sagas in flight: they slow down, then all complete correctly.
func TestSagasSurviveBrokerFaults(t *testing.T) {
	r := startSystem(t)
	if r.stack.Cluster() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	w := newWorkload(t, r, 30)
	for i := range 15 {
		w.place(t, r, i)
	}
	fault := r.stack.Cluster().Fault(kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Produce, kmsg.Fetch},
		Err:   kerr.NotLeaderForPartition,
		Count: -1,
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := fault.Wait(ctx, 20); err != nil { // a while of failed requests, from every client
		t.Fatalf("faults: %v after %d hits", err, fault.Hits())
	}
	fault.Remove()
	for i := 15; i < 30; i++ {
		w.place(t, r, i)
	}
	w.check(t, r, 90*time.Second)
}

// TestAnOrderWhoseAnnouncementIsRefusedIsNotAccepted: the broker refuses
// the OrderCreated event. The order and its announcement are one
// transaction, so both are refused: a 503, and no order stored. Sent again
// with its Idempotency-Key once the broker accepts, the order is placed and
// its saga runs.
func TestAnOrderWhoseAnnouncementIsRefusedIsNotAccepted(t *testing.T) {
	r := startSystem(t)
	if r.stack.Cluster() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	c := r.createCustomer(t, "Ada", 100_000)
	refused := r.stack.Cluster().Fault(kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Produce},
		Topic: contracts.TopicOrderEvents,
		Err:   kerr.TopicAuthorizationFailed, // not retried by the producer
		Count: -1,
	})
	key := uuid.NewString()
	body, err := json.Marshal(map[string]any{"customerId": c, "orderTotal": 5_000})
	if err != nil {
		t.Fatal(err)
	}
	status, resp, err := r.try(http.MethodPost, r.order+"/orders", body, "Idempotency-Key", key)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusServiceUnavailable {
		t.Fatalf("POST /orders with its announcement refused: got %d %s, want 503", status, resp)
	}
	id := command.OrderID(c, key)
	eventually(t, 10*time.Second, func() error {
		switch status, resp := r.get(t, r.order+"/orders/"+id); status {
		case http.StatusNotFound:
			return nil
		case http.StatusServiceUnavailable: // restoring the state without the refused write
			return fmt.Errorf("order %s: %d %s", id, status, resp)
		default:
			t.Fatalf("order %s after the refusal: got %d %s, want 404 (503 while restoring)", id, status, resp)
			return nil
		}
	})

	refused.Remove()
	if status, resp := r.postRetrying(t, r.order+"/orders", body, "Idempotency-Key", key); status != http.StatusCreated {
		t.Fatalf("POST /orders again: got %d %s, want 201", status, resp)
	}
	if o := r.awaitOrderEnd(t, id, 30*time.Second); o.State != "APPROVED" {
		t.Errorf("order %s: got %s %q, want APPROVED", id, o.State, o.RejectionReason)
	}
}

// TestAParticipantThatNeverAnswersTimesOut runs without the payment service:
// authorize_payment times out, the saga compensates and rejects the order,
// and the credit reserved before is released. When the payment service
// comes back, it cancels the authorization it had queued.
func TestAParticipantThatNeverAnswersTimesOut(t *testing.T) {
	r := startSystem(t, func(c *system.Config) {
		c.Services = without("payment")
		c.Orchestrator.StepTimeout = 200 * time.Millisecond
		c.Orchestrator.StepMaxAttempts = 3
	})
	const limit = 100_000
	c := r.createCustomer(t, "Ada", limit)
	id := r.createOrder(t, c, 5_000)
	o := r.awaitOrderEnd(t, id, 30*time.Second)
	if o.State != "REJECTED" || o.RejectionReason != "TIMEOUT_AUTHORIZE_PAYMENT" {
		t.Errorf("order: got %s %q, want REJECTED TIMEOUT_AUTHORIZE_PAYMENT", o.State, o.RejectionReason)
	}
	s := r.awaitSagaEnd(t, id, 10*time.Second)
	// A timeout is of the step pending before it (the entry before names
	// it). On a loaded machine the services that do answer may answer after
	// a 200 ms deadline: their steps are then re-sent, and answered, once
	// more. Those timeouts are not the point; authorize_payment's are.
	var events []string
	timeouts := 0
	for i, h := range s.History {
		if h.Event != "timeout" {
			events = append(events, h.Event)
		} else if i > 0 && strings.HasPrefix(s.History[i-1].Step, "authorize_payment") {
			timeouts++
		}
	}
	if got := strings.Join(events, " "); !inOrder(events, []string{"started", "CreditReserved", "CreditReleased", "OrderRejected"}) ||
		strings.Contains(got, "Payment") || timeouts != 6 {
		t.Errorf("saga history: got %s with %d timeouts of authorize_payment and its compensation, want started CreditReserved CreditReleased OrderRejected with 6 (3 each), and no payment", got, timeouts)
	}
	checkCredit(t, r, map[string]int64{c: limit})

	// The payment service comes back: it authorizes, then cancels, in the
	// order the commands were queued.
	addr := freeAddrs(t, 1)[0]
	kafka := config.Kafka{Brokers: r.stack.Brokers(), SchemaRegistryURL: r.stack.RegistryURL(), AutoRegisterSchemas: true}
	p, err := payment.New(payment.Config{HTTPAddr: addr, Kafka: kafka, PaymentLimit: paymentLimit, RefundLimit: refundLimit}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, p.Run)
	eventually(t, 30*time.Second, func() error {
		status, body, err := r.try(http.MethodGet, "http://"+addr+"/payments/"+id, nil)
		if err != nil || status != http.StatusOK || !strings.Contains(string(body), `"status":"CANCELLED"`) {
			return fmt.Errorf("payment of %s: %d %s %v, want CANCELLED", id, status, body, err)
		}
		return nil
	})
}

// TestDependenciesDownAndBack stops Kafka and the registry under running
// services: they say they are not ready and refuse new orders with a 503;
// when both come back, with their data, everything recovers by itself.
func TestDependenciesDownAndBack(t *testing.T) {
	if os.Getenv("KAFKA_BROKERS") != "" {
		t.Skip("needs the embedded broker, to stop and restart it")
	}
	dataDir := t.TempDir()
	stack, err := devstack.Start(t.Context(), devstack.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", DataDir: dataDir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	kafkaAddr, registryAddr := stack.Brokers()[0], strings.TrimPrefix(stack.RegistryURL(), "http://")
	r := startSystemOn(t, stack)
	c := r.createCustomer(t, "Ada", 100_000)
	first := r.createOrder(t, c, 1_000)
	if o := r.awaitOrderEnd(t, first, 30*time.Second); o.State != "APPROVED" {
		t.Fatalf("order before the outage: got %s, want APPROVED", o.State)
	}

	if err := stack.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		status, body, err := r.try(http.MethodGet, r.order+"/readyz", nil)
		if err != nil || status != http.StatusServiceUnavailable || !strings.HasPrefix(string(body), `{"error":`) {
			return fmt.Errorf("order /readyz with kafka down: %d %s %v, want 503 with a JSON error", status, body, err)
		}
		return nil
	})
	status, body := r.do(t, http.MethodPost, r.order+"/orders", []byte(fmt.Sprintf(`{"customerId":%q,"orderTotal":5}`, c)))
	if status != http.StatusServiceUnavailable || !strings.HasPrefix(string(body), `{"error":`) {
		t.Errorf("POST /orders with kafka down: got %d %s, want 503 with a JSON error", status, body)
	}

	stack, err = devstack.Start(t.Context(), devstack.Config{KafkaAddr: kafkaAddr, RegistryAddr: registryAddr, DataDir: dataDir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.stop() // before the broker it writes to: its handlers would retry until it stops
		stack.Close()
	})
	for _, base := range []string{r.order, r.customer, r.payment, r.sagas} {
		eventually(t, 60*time.Second, func() error { return r.ready(base) })
	}
	second := r.createOrder(t, c, 2_000)
	if o := r.awaitOrderEnd(t, second, 60*time.Second); o.State != "APPROVED" {
		t.Errorf("order after the outage: got %s %q, want APPROVED", o.State, o.RejectionReason)
	}
	checkCredit(t, r, map[string]int64{c: 100_000 - 3_000})
}

// TestWithoutTheRegistryNothingIsDecidedOnPartOfTheState: a process
// restarted while the registry is unreachable restores its topics' bytes
// but cannot decode them. It must not act on part of its state: the
// customer service would hold less credit than it has promised, the order
// service would forget its pending orders, the orchestrator its pending
// sagas. The orchestrator derives its pending sagas from every running one
// at start: its start fails, and its supervisor tries again. The order and
// customer services derive what they need when they need it: they start,
// and a request for what they cannot decode gets a 503 with Retry-After.
func TestWithoutTheRegistryNothingIsDecidedOnPartOfTheState(t *testing.T) {
	// Without the payment service the saga waits on it, running: each
	// process has live state to decode (an ended saga would be archived,
	// and a restore reads its pointer only).
	r := startSystem(t, func(c *system.Config) { c.Services = without("payment") })
	c := r.createCustomer(t, "Ada", 100_000)
	id := r.createOrder(t, c, 5_000)
	eventually(t, 30*time.Second, func() error {
		var s sagaView
		status, body, err := r.try(http.MethodGet, r.sagas+"/sagas/"+id, nil)
		if err != nil || status != http.StatusOK || json.Unmarshal(body, &s) != nil || s.Step != "authorize_payment" {
			return fmt.Errorf("saga %s: %d %s %v, want waiting at authorize_payment", id, status, body, err)
		}
		return nil
	})
	r.stop() // each process starts alone, so it is assigned every partition

	// Nothing listens on port 1.
	kafka := config.Kafka{Brokers: r.stack.Brokers(), SchemaRegistryURL: "http://127.0.0.1:1", AutoRegisterSchemas: true}
	addrs := freeAddrs(t, 3)
	restarts := map[string]func() (*process.Process, error){
		"order": func() (*process.Process, error) {
			return order.New(order.Config{HTTPAddr: addrs[0], Kafka: kafka}, quietLogger())
		},
		"customer": func() (*process.Process, error) {
			return customer.New(customer.Config{HTTPAddr: addrs[1], Kafka: kafka}, quietLogger())
		},
		"orchestrator": func() (*process.Process, error) {
			return orchestrator.New(orchestrator.Config{HTTPAddr: addrs[2], Kafka: kafka, StepTimeout: 10 * time.Second, StepMaxAttempts: 5}, quietLogger())
		},
	}
	reads := map[string]string{"order": "/orders/" + id, "customer": "/customers/" + c}
	for name, restart := range restarts {
		t.Run(name, func(t *testing.T) {
			p, err := restart()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			if path, ok := reads[name]; ok {
				eventually(t, 30*time.Second, func() error {
					w := httptest.NewRecorder()
					p.HTTP.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
					body := w.Body.String()
					switch {
					case strings.Contains(body, "state not restored yet"):
						return fmt.Errorf("GET %s: still restoring", path)
					case w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "":
						t.Fatalf("GET %s without the registry: got %d %s, want 503 with Retry-After", path, w.Code, body)
					}
					return nil
				})
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
				return
			}
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "registry") {
					t.Errorf("Run: got %v, want an error saying the registry did not answer", err)
				}
			case <-time.After(30 * time.Second):
				cancel()
				<-done
				t.Errorf("%s started without the registry: Run still running after 30s", name)
			}
		})
	}
}

// The saga metrics count what committed: a transition whose transaction
// aborted (here its command refused by the broker) is made again, and
// counted then, once.
func TestSagaMetricsCountATransitionOnce(t *testing.T) {
	r := startSystem(t)
	if r.stack.Cluster() == nil {
		t.Skip("fault injection needs the embedded broker")
	}
	ada := r.createCustomer(t, "Ada", 100_000)
	fault := r.stack.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: contracts.TopicCustomerCommands,
		Err: kerr.TopicAuthorizationFailed})
	id := r.createOrder(t, ada, 1_000)
	s := r.awaitSagaEnd(t, id, 30*time.Second)
	if fault.Hits() != 1 {
		t.Fatalf("the saga's first command was refused %d times, want once", fault.Hits())
	}
	// Counted as each transaction commits, just after its records became
	// readable.
	eventually(t, 5*time.Second, func() error {
		transitions, ended := metric(t, r.sagas, "saga_transitions_total"), metric(t, r.sagas, "saga_ended_total")
		if want := float64(len(s.History)); transitions != want || ended != 1 {
			return fmt.Errorf("saga_transitions_total %v and saga_ended_total %v, want %v, the saga's transitions, and 1", transitions, ended, want)
		}
		return nil
	})
}

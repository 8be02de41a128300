package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/system"
)

// TestCreateOrderSagaBranches drives every branch of the saga over HTTP and
// checks the order, the saga's history, the payment and the credit left.
func TestCreateOrderSagaBranches(t *testing.T) {
	r := startSystem(t)
	rich := r.createCustomer(t, "Rich", 5_000_000)
	poor := r.createCustomer(t, "Poor", 1_000)

	tests := []struct {
		name        string
		customer    string
		total       int64
		wantState   string
		wantReason  string
		wantEvents  []string
		wantPayment string // status of GET /payments/{orderId}, "" for 404
	}{
		{"approved", rich, 10_000, "APPROVED", "",
			[]string{"started", "CreditReserved", "PaymentAuthorized", "OrderApproved"}, "AUTHORIZED"},
		{"insufficient credit", poor, 5_000, "REJECTED", "INSUFFICIENT_CREDIT",
			[]string{"started", "CreditLimitExceeded", "OrderRejected"}, ""},
		{"unknown customer", uuid.NewString(), 100, "REJECTED", "UNKNOWN_CUSTOMER",
			[]string{"started", "CustomerNotFound", "OrderRejected"}, ""},
		{"payment declined, credit released", rich, paymentLimit + 1, "REJECTED", "PAYMENT_DECLINED",
			[]string{"started", "CreditReserved", "PaymentDeclined", "CreditReleased", "OrderRejected"}, "DECLINED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := r.createOrder(t, tt.customer, tt.total)
			o := r.awaitOrderEnd(t, id, 30*time.Second)
			want := orderView{OrderID: id, CustomerID: tt.customer, OrderTotal: tt.total, State: tt.wantState, RejectionReason: tt.wantReason}
			if o != want {
				t.Errorf("order: got %+v, want %+v", o, want)
			}

			s := r.awaitSagaEnd(t, id, 30*time.Second)
			wantSaga := map[string]string{"APPROVED": "COMPLETED", "REJECTED": "REJECTED"}[tt.wantState]
			var events []string
			for i, h := range s.History {
				events = append(events, h.Event)
				if i > 0 && h.At.Before(s.History[i-1].At) {
					t.Errorf("history %d at %s is before the one before it (%s)", i, h.At, s.History[i-1].At)
				}
			}
			if s.Type != "CreateOrder" || s.State != wantSaga || !reflect.DeepEqual(events, tt.wantEvents) {
				t.Errorf("saga: got %s %s %v, want CreateOrder %s %v", s.Type, s.State, events, wantSaga, tt.wantEvents)
			}

			status, body := r.get(t, r.payment+"/payments/"+id)
			switch {
			case tt.wantPayment == "" && status != http.StatusNotFound:
				t.Errorf("payment: got %d %s, want 404", status, body)
			case tt.wantPayment != "" && (status != http.StatusOK || !strings.Contains(string(body), `"status":"`+tt.wantPayment+`"`)):
				t.Errorf("payment: got %d %s, want 200 with status %s", status, body, tt.wantPayment)
			}
		})
	}

	// Only the approved order holds credit.
	checkCredit(t, r, map[string]int64{rich: 5_000_000 - 10_000, poor: 1_000})
}

// The participants' decisions that hold nothing are marked ended, to be
// deleted after SAGA_RETENTION, and still answer meanwhile: a credit
// refused, one asked of no customer, one released, and a payment
// declined. What holds something is not: the approved order's credit
// and payment.
func TestADecisionThatHoldsNothingIsMarkedEnded(t *testing.T) {
	r := startSystem(t)
	rich := r.createCustomer(t, "Rich", 5_000_000)
	poor := r.createCustomer(t, "Poor", 1_000)
	nobody := uuid.NewString()
	approved := r.createOrder(t, rich, 10_000)
	refused := r.createOrder(t, poor, 5_000)
	unknown := r.createOrder(t, nobody, 100)
	declined := r.createOrder(t, rich, paymentLimit+1)
	for _, id := range []string{approved, refused, unknown, declined} {
		r.awaitSagaEnd(t, id, 30*time.Second)
	}
	awaitEnded(t, r, contracts.TopicCustomerReservations, map[string]bool{rich + "/" + approved: false,
		poor + "/" + refused: true, nobody + "/" + unknown: true, rich + "/" + declined: true})
	awaitEnded(t, r, contracts.TopicPaymentState, map[string]bool{approved: false, declined: true})
	if status, body := r.get(t, r.payment+"/payments/"+declined); status != http.StatusOK || !strings.Contains(string(body), `"status":"DECLINED"`) {
		t.Errorf("GET /payments/%s: got %d %s, want it DECLINED", declined, status, body)
	}
	checkCredit(t, r, map[string]int64{rich: 5_000_000 - 10_000, poor: 1_000})
}

// awaitEnded waits until the latest committed record of each key of want
// on topic is marked ended (contracts.HeaderEnded) as want says.
func awaitEnded(t *testing.T, r *running, topic string, want map[string]bool) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(r.stack.Brokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	got := map[string]bool{}
	eventually(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		client.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			if _, ok := want[string(rec.Key)]; ok {
				got[string(rec.Key)] = slices.ContainsFunc(rec.Headers, func(h kgo.RecordHeader) bool { return h.Key == contracts.HeaderEnded })
			}
		})
		if !maps.Equal(got, want) {
			return fmt.Errorf("%s: records marked ended by key: got %v, want %v", topic, got, want)
		}
		return nil
	})
}

// TestCancelOrderSagaBranches drives every branch of the Cancel Order saga
// over HTTP: an approved order cancelled (payment refunded, credit back), a
// cancellation refused by the refund rule (the order APPROVED again with
// the reason, its credit still held, and cancelled again as a new attempt,
// refused again), a cancellation sent twice (one saga), and the orders
// that cannot be cancelled (unknown: 404; REJECTED or CANCELLED: 409 with
// the state).
func TestCancelOrderSagaBranches(t *testing.T) {
	r := startSystem(t)
	const limit = 5_000_000
	c := r.createCustomer(t, "Ada", limit)
	// The helpers take the test they run in: a subtest's, whose failure
	// must not stop the parent's other branches.
	approved := func(t *testing.T, total int64) string {
		t.Helper()
		id := r.createOrder(t, c, total)
		if o := r.awaitOrderEnd(t, id, 30*time.Second); o.State != "APPROVED" {
			t.Fatalf("order %s: got %s %q, want APPROVED", id, o.State, o.RejectionReason)
		}
		return id
	}
	// accepted cancels id, under Idempotency-Key key (a client's retries of
	// a 503 are then the one request), and checks the 202: the order
	// CANCELLING, with the id of its saga.
	accepted := func(t *testing.T, id, key string) string {
		t.Helper()
		status, a := r.cancelOrder(t, id, httpserver.HeaderIdempotencyKey, key)
		if status != http.StatusAccepted || a.OrderID != id || a.State != "CANCELLING" || a.CancelSagaID == "" || a.CancelSagaID == id {
			t.Fatalf("cancel %s: got %d %+v, want 202 with the order CANCELLING and its cancel saga's id", id, status, a)
		}
		return a.CancelSagaID
	}
	conflict := func(t *testing.T, id, state string) {
		t.Helper()
		if status, a := r.cancelOrder(t, id); status != http.StatusConflict || a.State != state || a.Error == "" {
			t.Errorf("cancel %s: got %d %+v, want 409 with state %s and an error", id, status, a, state)
		}
	}
	events := func(s sagaView) []string {
		var events []string
		for _, h := range s.History {
			events = append(events, h.Event)
		}
		return events
	}
	payment := func(t *testing.T, id, want string) {
		t.Helper()
		status, body := r.get(t, r.payment+"/payments/"+id)
		if status != http.StatusOK || !strings.Contains(string(body), `"status":"`+want+`"`) {
			t.Errorf("payment of %s: got %d %s, want status %s", id, status, body, want)
		}
	}
	var orders []orderView

	t.Run("cancelled, payment refunded, credit released", func(t *testing.T) {
		id := approved(t, 10_000)
		sagaID := accepted(t, id, uuid.NewString())
		o := r.awaitOrderEnd(t, id, 30*time.Second)
		if o.State != "CANCELLED" || o.CancelSagaID != sagaID || o.CancelRefusalReason != "" {
			t.Errorf("order: got %+v, want CANCELLED by saga %s", o, sagaID)
		}
		s := r.awaitSagaEnd(t, sagaID, 30*time.Second)
		if want := []string{"started", "PaymentRefunded", "CreditReleased", "OrderCancelled"}; s.Type != "CancelOrder" || s.State != "COMPLETED" || !reflect.DeepEqual(events(s), want) {
			t.Errorf("saga: got %s %s %v, want CancelOrder COMPLETED %v", s.Type, s.State, events(s), want)
		}
		if s := r.awaitSagaEnd(t, id, 30*time.Second); s.Type != "CreateOrder" {
			t.Errorf("saga %s: got %s, want the order's CreateOrder saga", id, s.Type)
		}
		payment(t, id, "REFUNDED")
		conflict(t, id, "CANCELLED")
		orders = append(orders, o)
	})

	t.Run("refund refused, order approved again with the reason, credit held", func(t *testing.T) {
		id := approved(t, refundLimit+1) // within the payment limit, above the refund limit
		firstKey := uuid.NewString()
		first := accepted(t, id, firstKey)
		o := r.awaitOrderEnd(t, id, 30*time.Second)
		if o.State != "APPROVED" || o.CancelRefusalReason != "REFUND_REFUSED" || o.CancelSagaID != first {
			t.Errorf("order: got %+v, want APPROVED with cancel refusal REFUND_REFUSED by saga %s", o, first)
		}
		s := r.awaitSagaEnd(t, first, 30*time.Second)
		if want := []string{"started", "RefundRefused", "CancelRefused"}; s.Type != "CancelOrder" || s.State != "REJECTED" || !reflect.DeepEqual(events(s), want) {
			t.Errorf("saga: got %s %s %v, want CancelOrder REJECTED %v", s.Type, s.State, events(s), want)
		}
		payment(t, id, "AUTHORIZED")
		// Its request sent again (a client that did not learn the answer):
		// the refusal, not a second attempt.
		if status, a := r.cancelOrder(t, id, httpserver.HeaderIdempotencyKey, firstKey); status != http.StatusOK || a.State != "APPROVED" || a.CancelSagaID != first {
			t.Errorf("the refused cancellation sent again: got %d %+v, want 200 APPROVED by saga %s", status, a, first)
		}

		// Cancelled again: a new attempt, a new saga, refused again.
		second := accepted(t, id, uuid.NewString())
		if second == first {
			t.Errorf("the second cancellation runs saga %s again, want a new one", first)
		}
		if o = r.awaitOrderEnd(t, id, 30*time.Second); o.State != "APPROVED" || o.CancelRefusalReason != "REFUND_REFUSED" {
			t.Errorf("order after the second cancellation: got %+v, want APPROVED with REFUND_REFUSED", o)
		}
		if s := r.awaitSagaEnd(t, second, 30*time.Second); s.State != "REJECTED" {
			t.Errorf("second saga: got %s, want REJECTED", s.State)
		}
		orders = append(orders, o)
	})

	t.Run("sent twice, one saga", func(t *testing.T) {
		id := approved(t, 20_000)
		key := httpserver.HeaderIdempotencyKey
		sagaID := accepted(t, id, "cancel-"+id)
		// Sent again at once, under its key: CANCELLING still (202) or
		// CANCELLED by now (200), by the one saga.
		switch status, a := r.cancelOrder(t, id, key, "cancel-"+id); {
		case status == http.StatusAccepted && a.State == "CANCELLING" && a.CancelSagaID == sagaID:
		case status == http.StatusOK && a.State == "CANCELLED" && a.CancelSagaID == sagaID:
		default:
			t.Errorf("cancel again: got %d %+v, want 202 CANCELLING or 200 CANCELLED, by saga %s", status, a, sagaID)
		}
		o := r.awaitOrderEnd(t, id, 30*time.Second)
		if o.State != "CANCELLED" || o.CancelSagaID != sagaID {
			t.Errorf("order: got %+v, want CANCELLED by saga %s", o, sagaID)
		}
		// Sent again once it ended: the order as it ended, no conflict.
		if status, a := r.cancelOrder(t, id, key, "cancel-"+id); status != http.StatusOK || a.State != "CANCELLED" || a.CancelSagaID != sagaID {
			t.Errorf("cancel again once cancelled: got %d %+v, want 200 CANCELLED by saga %s", status, a, sagaID)
		}
		if s := r.awaitSagaEnd(t, sagaID, 30*time.Second); !reflect.DeepEqual(events(s), []string{"started", "PaymentRefunded", "CreditReleased", "OrderCancelled"}) {
			t.Errorf("saga: got %v, want it started once and completed", events(s))
		}
		orders = append(orders, o)
	})

	t.Run("unknown order", func(t *testing.T) {
		if status, a := r.cancelOrder(t, uuid.NewString()); status != http.StatusNotFound || a.Error == "" {
			t.Errorf("cancel an unknown order: got %d %+v, want 404 with an error", status, a)
		}
	})

	t.Run("rejected order", func(t *testing.T) {
		id := r.createOrder(t, uuid.NewString(), 100) // an unknown customer
		if o := r.awaitOrderEnd(t, id, 30*time.Second); o.State != "REJECTED" {
			t.Fatalf("order %s: got %s, want REJECTED", id, o.State)
		}
		conflict(t, id, "REJECTED")
	})

	checkCredit(t, r, map[string]int64{c: creditLeft(limit, orders...)})
	if got, want := creditLeft(limit, orders...), int64(limit-refundLimit-1); got != want {
		t.Errorf("credit left by the orders: got %d, want %d (only the order whose cancellation was refused holds credit)", got, want)
	}
}

// TestCancelOfAPendingOrderIsAConflict runs without the orchestrator, so an
// order stays PENDING: its cancellation is a 409 naming the state, and
// changes nothing.
func TestCancelOfAPendingOrderIsAConflict(t *testing.T) {
	r := startSystem(t, func(c *system.Config) { c.Services = without("orchestrator") })
	c := r.createCustomer(t, "Ada", 100_000)
	id := r.createOrder(t, c, 5_000)
	if status, a := r.cancelOrder(t, id); status != http.StatusConflict || a.State != "PENDING" || a.Error == "" {
		t.Errorf("cancel a PENDING order: got %d %+v, want 409 with state PENDING and an error", status, a)
	}
	var o orderView
	r.getJSON(t, r.order+"/orders/"+id, &o)
	if o.State != "PENDING" || o.CancelSagaID != "" {
		t.Errorf("order after the refused cancellation: got %+v, want PENDING, never cancelled", o)
	}
}

// TestConcurrentSagasKeepTheCreditInvariant runs many sagas at once over a few
// customers, so reservations for one customer race, cancels some approved
// orders while later ones run, so releases race them too, and checks that
// every order ends and that each customer's available credit is its limit
// less the totals of its orders approved and not cancelled.
func TestConcurrentSagasKeepTheCreditInvariant(t *testing.T) {
	r := startSystem(t)
	const customers, orders, limit = 4, 80, 2_000_000
	var ids []string
	for i := range customers {
		ids = append(ids, r.createCustomer(t, fmt.Sprintf("c%d", i), limit))
	}
	// Every tenth order goes to a customer whose credit always suffices and is
	// declined by the payment service, so that branch races too.
	big := r.createCustomer(t, "big", 100*paymentLimit)
	ids = append(ids, big)
	rng := rand.New(rand.NewPCG(1, 2))
	type placed struct{ id, customer string }
	var all []placed
	place := func(i int) {
		c, total := ids[rng.IntN(customers)], 1+rng.Int64N(400_000)
		if i%10 == 0 {
			c, total = big, paymentLimit+1
		}
		all = append(all, placed{r.createOrder(t, c, total), c})
	}
	// The first half, to its end; then the second half, while every third
	// approved order of the first is cancelled, one with every other order
	// placed, so releases race reservations.
	for i := range orders / 2 {
		place(i)
	}
	var cancel []string
	for i, p := range all {
		if o := r.awaitOrderEnd(t, p.id, 60*time.Second); o.State == "APPROVED" && i%3 == 0 {
			cancel = append(cancel, p.id)
		}
	}
	for i := orders / 2; i < orders; i++ {
		place(i)
		if len(cancel) > 0 && i%2 == 0 {
			if status, a := r.cancelOrder(t, cancel[0]); status != http.StatusAccepted {
				t.Errorf("cancel %s: got %d %+v, want 202", cancel[0], status, a)
			}
			cancel = cancel[1:]
		}
	}
	held := map[string][]orderView{}
	counts := map[string]int{}
	for _, p := range all {
		o := r.awaitOrderEnd(t, p.id, 60*time.Second)
		counts[o.State+" "+o.RejectionReason]++
		held[p.customer] = append(held[p.customer], o)
	}
	t.Logf("outcomes: %v", counts)
	if counts["APPROVED "] == 0 || counts["CANCELLED "] == 0 || counts["REJECTED INSUFFICIENT_CREDIT"] == 0 || counts["REJECTED PAYMENT_DECLINED"] == 0 {
		t.Errorf("outcomes %v: want approved, cancelled, insufficient-credit and declined orders, so every path raced", counts)
	}
	want := map[string]int64{big: 100 * paymentLimit}
	for _, c := range ids[:customers] {
		want[c] = creditLeft(limit, held[c]...)
	}
	checkCredit(t, r, want)
}

// checkCredit asserts each customer's available credit. Once every saga has
// ended, it is the customer's limit less the totals of its orders APPROVED
// and not CANCELLED (creditLeft).
func checkCredit(t *testing.T, r *running, want map[string]int64) {
	t.Helper()
	for id, available := range want {
		var c customerView
		r.getJSON(t, r.customer+"/customers/"+id, &c)
		if c.AvailableCredit != available {
			t.Errorf("customer %s (%s, limit %d): got available credit %d, want %d", id, c.Name, c.CreditLimit, c.AvailableCredit, available)
		}
	}
}

// creditLeft is the credit a customer of the given limit has left with the
// given orders: an APPROVED order holds its total; a CANCELLING one still
// does, until its Cancel Order saga releases it and ends it CANCELLED; a
// PENDING one holds what its saga reserved so far, so call it once every
// saga has ended.
func creditLeft(limit int64, orders ...orderView) int64 {
	for _, o := range orders {
		if o.State == "APPROVED" || o.State == "CANCELLING" {
			limit -= o.OrderTotal
		}
	}
	return limit
}

// TestBadRequests: malformed or invalid input gets a 4xx with a JSON error,
// unknown ids a 404, and nothing is created.
func TestBadRequests(t *testing.T) {
	r := startSystem(t)
	tests := []struct {
		name, method, url, body string
		want                    int
	}{
		{"order: malformed JSON", "POST", r.order + "/orders", `{"customerId":`, 400},
		{"order: empty body", "POST", r.order + "/orders", ``, 400},
		{"order: not an object", "POST", r.order + "/orders", `[1,2]`, 400},
		{"order: missing customer", "POST", r.order + "/orders", `{"orderTotal":100}`, 400},
		{"order: missing total", "POST", r.order + "/orders", `{"customerId":"c1"}`, 400},
		{"order: total is a string", "POST", r.order + "/orders", `{"customerId":"c1","orderTotal":"100"}`, 400},
		{"order: total is a fraction", "POST", r.order + "/orders", `{"customerId":"c1","orderTotal":1.5}`, 400},
		{"order: zero total", "POST", r.order + "/orders", `{"customerId":"c1","orderTotal":0}`, 400},
		{"order: negative total", "POST", r.order + "/orders", `{"customerId":"c1","orderTotal":-5}`, 400},
		{"order: unknown field", "POST", r.order + "/orders", `{"customerId":"c1","orderTotal":5,"x":1}`, 400},
		{"order: unknown id", "GET", r.order + "/orders/" + uuid.NewString(), ``, 404},
		{"customer: malformed JSON", "POST", r.customer + "/customers", `{`, 400},
		{"customer: missing name", "POST", r.customer + "/customers", `{"creditLimit":100}`, 400},
		{"customer: blank name", "POST", r.customer + "/customers", `{"name":" ","creditLimit":100}`, 400},
		{"customer: zero limit", "POST", r.customer + "/customers", `{"name":"a","creditLimit":0}`, 400},
		{"customer: negative limit", "POST", r.customer + "/customers", `{"name":"a","creditLimit":-1}`, 400},
		{"customer: limit is a string", "POST", r.customer + "/customers", `{"name":"a","creditLimit":"1"}`, 400},
		{"customer: unknown id", "GET", r.customer + "/customers/nope", ``, 404},
		{"payment: unknown order", "GET", r.payment + "/payments/nope", ``, 404},
		{"saga: unknown id", "GET", r.sagas + "/sagas/nope", ``, 404},
		{"unknown route", "GET", r.order + "/nope", ``, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := r.do(t, tt.method, tt.url, []byte(tt.body))
			if status != tt.want {
				t.Errorf("%s %s %s: got %d %s, want %d", tt.method, tt.url, tt.body, status, body, tt.want)
			}
			if !strings.HasPrefix(string(body), `{"error":"`) {
				t.Errorf("%s %s %s: got body %s, want a JSON error", tt.method, tt.url, tt.body, body)
			}
		})
	}
}

// TestARetriedOrderIsPlacedOnce: a client that did not learn the outcome of
// its POST /orders sends it again with the same Idempotency-Key and gets
// the same order, its credit taken once; the key with another total is a
// 409, and a key too long a 400. A POST /customers, the same way.
func TestARetriedOrderIsPlacedOnce(t *testing.T) {
	r := startSystem(t)
	c := r.createCustomer(t, "Ada", 100_000)
	post := func(total int64, key string) (int, string, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.order+"/orders",
			strings.NewReader(fmt.Sprintf(`{"customerId":%q,"orderTotal":%d}`, c, total)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Idempotency-Key", key)
		resp, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ OrderID, State, Error string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("POST /orders: %d, body not JSON: %v", resp.StatusCode, err)
		}
		return resp.StatusCode, body.OrderID, body.State + body.Error
	}

	status, first, _ := post(5_000, "checkout-1")
	if status != http.StatusCreated || first == "" {
		t.Fatalf("POST /orders: got %d %q, want 201 and an order id", status, first)
	}
	if status, again, _ := post(5_000, "checkout-1"); status != http.StatusCreated || again != first {
		t.Errorf("POST /orders again with its key: got %d order %q, want 201 order %s", status, again, first)
	}
	if o := r.awaitOrderEnd(t, first, 30*time.Second); o.State != "APPROVED" {
		t.Fatalf("order %s: got %s, want APPROVED", first, o.State)
	}
	if status, again, state := post(5_000, "checkout-1"); status != http.StatusCreated || again != first || state != "APPROVED" {
		t.Errorf("POST /orders once it ended: got %d order %q %s, want 201 order %s APPROVED", status, again, state, first)
	}
	if status, _, msg := post(6_000, "checkout-1"); status != http.StatusConflict || msg == "" {
		t.Errorf("POST /orders with the key and another total: got %d %q, want 409 with an error", status, msg)
	}
	if status, _, msg := post(5_000, strings.Repeat("k", 256)); status != http.StatusBadRequest || msg == "" {
		t.Errorf("POST /orders with a key of 256 characters: got %d %q, want 400 with an error", status, msg)
	}
	checkCredit(t, r, map[string]int64{c: 95_000})

	// A customer's key, the same way.
	create := func(limit int64) (int, string, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.customer+"/customers",
			strings.NewReader(fmt.Sprintf(`{"name":"Bo","creditLimit":%d}`, limit)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Idempotency-Key", "signup-1")
		resp, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ CustomerID, Error string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("POST /customers: %d, body not JSON: %v", resp.StatusCode, err)
		}
		return resp.StatusCode, body.CustomerID, body.Error
	}
	status, bo, _ := create(1_000)
	if status != http.StatusCreated || bo == "" {
		t.Fatalf("POST /customers: got %d %q, want 201 and a customer id", status, bo)
	}
	if status, again, _ := create(1_000); status != http.StatusCreated || again != bo {
		t.Errorf("POST /customers again with its key: got %d customer %q, want 201 customer %s", status, again, bo)
	}
	if status, _, msg := create(2_000); status != http.StatusConflict || msg == "" {
		t.Errorf("POST /customers with the key and another limit: got %d %q, want 409 with an error", status, msg)
	}
}

// Processes whose Config leaves SAGA_RETENTION out, as one made in code
// may, keep what ended for its default, a week: every archive's retention
// was set to nothing.
func TestALeftOutSagaRetentionIsAWeek(t *testing.T) {
	r := startSystem(t)
	client, err := kgo.NewClient(kgo.SeedBrokers(r.stack.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	archives := contracts.ArchiveTopics()
	configs, err := kadm.NewClient(client).DescribeTopicConfigs(t.Context(), archives...)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range archives {
		got, err := configs.On(topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		retention := ""
		for _, c := range got.Configs {
			if c.Key == "retention.ms" {
				retention = c.MaybeValue()
			}
		}
		if retention != "604800000" {
			t.Errorf("retention.ms of %s: got %q, want 604800000", topic, retention)
		}
	}
}

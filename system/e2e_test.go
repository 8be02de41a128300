package system_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
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

// TestConcurrentSagasKeepTheCreditInvariant runs many sagas at once over a few
// customers, so reservations for one customer race, and checks that every
// order ends and that each customer's available credit is its limit less the
// totals of its approved orders.
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
	for i := range orders {
		c, total := ids[rng.IntN(customers)], 1+rng.Int64N(400_000)
		if i%10 == 0 {
			c, total = big, paymentLimit+1
		}
		all = append(all, placed{r.createOrder(t, c, total), c})
	}
	approved := map[string]int64{}
	counts := map[string]int{}
	for _, p := range all {
		o := r.awaitOrderEnd(t, p.id, 60*time.Second)
		counts[o.State+" "+o.RejectionReason]++
		if o.State == "APPROVED" {
			approved[p.customer] += o.OrderTotal
		}
	}
	t.Logf("outcomes: %v", counts)
	if counts["APPROVED "] == 0 || counts["REJECTED INSUFFICIENT_CREDIT"] == 0 || counts["REJECTED PAYMENT_DECLINED"] == 0 {
		t.Errorf("outcomes %v: want approved, insufficient-credit and declined orders, so every path raced", counts)
	}
	want := map[string]int64{big: 100 * paymentLimit}
	for _, c := range ids[:customers] {
		want[c] = limit - approved[c]
	}
	checkCredit(t, r, want)
}

// checkCredit asserts each customer's available credit.
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
// 409, and a key too long a 400.
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
}

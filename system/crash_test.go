package system_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// plannedOrder is an order of the crash test and the outcome its inputs
// dictate, whatever crashes happen while it runs.
type plannedOrder struct {
	customer   string
	total      int64
	wantState  string
	wantReason string
	id         string // once posted
}

// TestCrashesLoseNothing runs every process from its binary, posts a few
// hundred orders across all branches of the saga, SIGKILLs the orchestrator
// and later the customer service while sagas are in flight (the test
// fails if none is), restarts each,
// and checks that every order ends as its inputs dictate, that no saga is
// stuck and that no customer's credit is off by a cent.
func TestCrashesLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every binary; skipped with -short")
	}
	ps := startProcs(t, buildBinaries(t))
	r := ps.r

	const orders = 300
	plan, checkPlan := newPlan(t, r, orders)
	first, second := plan[:orders/3], plan[orders/3:2*orders/3]

	// The orchestrator dies once it was seen driving the first third, and
	// restarts at once; the second third is posted while it starts.
	postOrders(t, r, first)
	awaitAnyEnded(t, r, first)
	ps.orchestrator.kill()
	inFlight(t, "orchestrator", countPending(r, first), len(first))
	ps.orchestrator.start()
	postOrders(t, r, second)
	ps.orchestrator.awaitReady(60 * time.Second)

	// The customer service, paused once the restarted orchestrator was seen
	// driving the second third, dies with the last third's sagas waiting
	// for it (killed as it ran, it had sometimes answered every saga by
	// then).
	awaitAnyEnded(t, r, second)
	ps.customer.pause()
	postOrders(t, r, plan[2*orders/3:])
	ps.customer.kill()
	inFlight(t, "customer service", countPending(r, plan), orders)
	ps.customer.start()
	ps.customer.awaitReady(60 * time.Second)

	checkPlan(120 * time.Second)

	for _, p := range ps.all() {
		if !p.running() {
			t.Errorf("%s exited by itself: %s", p.name, p.cmd.ProcessState)
		}
	}
}

// inFlight fails the test unless some orders were still PENDING when a
// process was killed: otherwise the kill interrupted no saga, and the test
// would prove nothing about recovering one.
func inFlight(t *testing.T, killed string, pending, of int) {
	t.Helper()
	t.Logf("%s killed with %d of %d orders PENDING", killed, pending, of)
	if pending == 0 {
		t.Fatalf("%s killed with no order PENDING: no saga was in flight", killed)
	}
}

// newPlan creates customers and plans n orders across every branch of the
// saga, whose outcomes do not depend on timing: rich customers can hold
// every order at once, payment-declined ones included. checkPlan waits
// for every posted order and its saga to end as planned, and checks every
// customer's credit to the cent.
func newPlan(t *testing.T, r *running, n int) (plan []plannedOrder, checkPlan func(within time.Duration)) {
	t.Helper()
	const richLimit, maxTotal = 1_000_000_000, 50_000
	rich := []string{r.createCustomer(t, "rich0", richLimit), r.createCustomer(t, "rich1", richLimit), r.createCustomer(t, "rich2", richLimit)}
	poor := r.createCustomer(t, "poor", 1)
	rng := rand.New(rand.NewPCG(7, 11))
	plan = make([]plannedOrder, n)
	for i := range plan {
		total := 2 + rng.Int64N(maxTotal-1) // more than the poor customer's credit
		switch i % 10 {
		case 0:
			plan[i] = plannedOrder{customer: uuid.NewString(), total: total, wantState: "REJECTED", wantReason: "UNKNOWN_CUSTOMER"}
		case 1:
			plan[i] = plannedOrder{customer: poor, total: total, wantState: "REJECTED", wantReason: "INSUFFICIENT_CREDIT"}
		case 2:
			plan[i] = plannedOrder{customer: rich[rng.IntN(len(rich))], total: paymentLimit + 1, wantState: "REJECTED", wantReason: "PAYMENT_DECLINED"}
		default:
			plan[i] = plannedOrder{customer: rich[rng.IntN(len(rich))], total: total, wantState: "APPROVED"}
		}
	}
	return plan, func(within time.Duration) {
		t.Helper()
		got := awaitOrdersEnd(t, r, plan, within)
		for i, p := range plan {
			want := orderView{OrderID: p.id, CustomerID: p.customer, OrderTotal: p.total, State: p.wantState, RejectionReason: p.wantReason}
			if got[i] != want {
				t.Errorf("order %d: got %+v, want %+v; saga: %s", i, got[i], want, sagaJSON(r, p.id))
			}
		}
		awaitSagasEnd(t, r, plan, 30*time.Second)
		want := map[string]int64{poor: 1}
		for _, c := range rich {
			want[c] = richLimit
		}
		for i, p := range plan {
			if got[i].State == "APPROVED" {
				want[p.customer] -= p.total
			}
		}
		checkCredit(t, r, want)
	}
}

// postOrders posts the orders from a few goroutines and records their ids.
func postOrders(t *testing.T, r *running, plan []plannedOrder) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(4)
	for i := range plan {
		g.Go(func() error {
			body, err := json.Marshal(map[string]any{"customerId": plan[i].customer, "orderTotal": plan[i].total})
			if err != nil {
				return err
			}
			// As a client should: its own idempotency key, and a retry of
			// a 503 (the key's owner is moving or down) with the same key.
			key := uuid.NewString()
			var status int
			var resp []byte
			for deadline := time.Now().Add(30 * time.Second); ; {
				status, resp, err = r.try(http.MethodPost, r.order+"/orders", body, "Idempotency-Key", key)
				if err != nil {
					return err
				}
				if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond) // as Retry-After asks, shorter
			}
			var out struct {
				OrderID string `json:"orderId"`
				State   string `json:"state"`
			}
			if status != http.StatusCreated || json.Unmarshal(resp, &out) != nil || out.State != "PENDING" {
				return fmt.Errorf("POST /orders %s: got %d %s, want 201 and a PENDING order", body, status, resp)
			}
			plan[i].id = out.OrderID
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// getOrder returns the order, or an error if it cannot be read.
func getOrder(r *running, id string) (orderView, error) {
	var o orderView
	status, body, err := r.try(http.MethodGet, r.order+"/orders/"+id, nil)
	if err != nil {
		return o, err
	}
	if status != http.StatusOK {
		return o, fmt.Errorf("GET /orders/%s: got %d %s, want 200", id, status, body)
	}
	if err := json.Unmarshal(body, &o); err != nil {
		return o, fmt.Errorf("GET /orders/%s: decode %s: %w", id, body, err)
	}
	return o, nil
}

// awaitAnyEnded waits until one of the orders is no longer PENDING: proof
// that the orchestrator and the participants are working on them.
func awaitAnyEnded(t *testing.T, r *running, plan []plannedOrder) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		for _, p := range plan {
			if o, err := getOrder(r, p.id); err == nil && o.State != "PENDING" {
				return nil
			}
		}
		return fmt.Errorf("all %d orders still PENDING", len(plan))
	})
}

// countPending counts the orders still PENDING: how much was in flight when
// a process died. Orders it cannot read count as pending.
func countPending(r *running, plan []plannedOrder) int {
	n := 0
	for _, p := range plan {
		if o, err := getOrder(r, p.id); err != nil || o.State == "PENDING" {
			n++
		}
	}
	return n
}

// awaitOrdersEnd polls every order until none is PENDING and returns them,
// in plan order. If some are still PENDING at the deadline, it fails the
// test naming them, each with its saga.
func awaitOrdersEnd(t *testing.T, r *running, plan []plannedOrder, within time.Duration) []orderView {
	t.Helper()
	got := make([]orderView, len(plan))
	left := make([]int, len(plan))
	for i := range left {
		left[i] = i
	}
	deadline := time.Now().Add(within)
	for {
		var still []int
		for _, i := range left {
			o, err := getOrder(r, plan[i].id)
			if err != nil || o.State == "PENDING" {
				still = append(still, i)
				continue
			}
			got[i] = o
		}
		left = still
		if len(left) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
	for _, i := range left[:min(len(left), 10)] {
		o, err := getOrder(r, plan[i].id)
		t.Errorf("order %d %s (customer %s, total %d) not ended within %s: %+v %v; saga: %s",
			i, plan[i].id, plan[i].customer, plan[i].total, within, o, err, sagaJSON(r, plan[i].id))
	}
	t.Fatalf("%d of %d orders not ended within %s", len(left), len(plan), within)
	return nil
}

// awaitSagasEnd waits until every saga is COMPLETED (approved orders) or
// REJECTED (the others). An order ends a moment before its saga, which
// still has to hear the order service's reply.
func awaitSagasEnd(t *testing.T, r *running, plan []plannedOrder, within time.Duration) {
	t.Helper()
	eventually(t, within, func() error {
		var errs []error
		for i, p := range plan {
			want := map[string]string{"APPROVED": "COMPLETED", "REJECTED": "REJECTED"}[p.wantState]
			status, body, err := r.try(http.MethodGet, r.sagas+"/sagas/"+p.id, nil)
			var s sagaView
			switch {
			case err != nil:
				errs = append(errs, err)
			case status != http.StatusOK || json.Unmarshal(body, &s) != nil || s.State != want:
				errs = append(errs, fmt.Errorf("saga of order %d: got %d %s, want state %s", i, status, body, want))
			}
			if len(errs) == 5 {
				break
			}
		}
		return errors.Join(errs...)
	})
}

// sagaJSON returns the saga as the orchestrator serves it, for a failure
// message.
func sagaJSON(r *running, id string) string {
	status, body, err := r.try(http.MethodGet, r.sagas+"/sagas/"+id, nil)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d %s", status, body)
}

// Package load is the system's Create Order workload, shared by the
// commands that measure the system (system/cmd/bench, system/cmd/takeover):
// the customers and orders to post and how each saga must end, an HTTP
// client of the services, the closed and open loops that post the orders,
// and the tracker that sees each saga end on the saga topic.
package load

import (
	"math/rand/v2"
	"strconv"
)

const (
	RichCustomers = 50
	PoorCustomers = 5
	// RichCredit is far above what a rich customer's orders can hold at
	// once, declined ones included, so its orders are never short of credit.
	RichCredit = 1_000_000_000_000
	PoorCredit = 1 // below every order total
)

// Outcome is how a saga must end, given its input.
type Outcome int

const (
	Approved Outcome = iota
	InsufficientCredit
	UnknownCustomer
	PaymentDeclined
	Outcomes // the number of outcomes
)

func (o Outcome) String() string {
	return [...]string{"approved", "insufficient credit", "unknown customer", "payment declined"}[o]
}

// SagaState and Reason are what the saga instance must hold at its end.
func (o Outcome) SagaState() string {
	if o == Approved {
		return "COMPLETED"
	}
	return "REJECTED"
}

func (o Outcome) Reason() string {
	return [...]string{"", "INSUFFICIENT_CREDIT", "UNKNOWN_CUSTOMER", "PAYMENT_DECLINED"}[o]
}

// OrderState is what GET /orders/{id} must show at the end.
func (o Outcome) OrderState() string {
	if o == Approved {
		return "APPROVED"
	}
	return "REJECTED"
}

// OrderPlan is one order to post and how its saga must end.
type OrderPlan struct {
	CustomerID string
	Total      int64
	Want       Outcome
}

// PlanOrders returns n orders, the same for the same customers: of every
// ten, seven approved, one over a poor customer's credit, one for a
// customer that does not exist and one above the payment limit for a rich
// customer, so its credit is reserved, then released.
func PlanOrders(n int, rich, poor []string, paymentLimit int64) []OrderPlan {
	rng := rand.New(rand.NewPCG(1, 2))
	plans := make([]OrderPlan, n)
	for i := range plans {
		switch i % 10 {
		case 7:
			plans[i] = OrderPlan{poor[rng.IntN(len(poor))], 100 + rng.Int64N(10_000), InsufficientCredit}
		case 8:
			plans[i] = OrderPlan{"no-such-customer-" + strconv.Itoa(i), 100 + rng.Int64N(10_000), UnknownCustomer}
		case 9:
			plans[i] = OrderPlan{rich[rng.IntN(len(rich))], paymentLimit + 1, PaymentDeclined}
		default:
			plans[i] = OrderPlan{rich[rng.IntN(len(rich))], 1 + rng.Int64N(min(10_000, paymentLimit)), Approved}
		}
	}
	return plans
}

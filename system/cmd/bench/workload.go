package main

import (
	"math/rand/v2"
	"strconv"
)

const (
	richCustomers = 50
	poorCustomers = 5
	// richCredit is far above what a rich customer's orders can hold at
	// once, declined ones included, so its orders are never short of credit.
	richCredit = 1_000_000_000_000
	poorCredit = 1 // below every order total
)

// outcome is how a saga must end, given its input.
type outcome int

const (
	approved outcome = iota
	insufficientCredit
	unknownCustomer
	paymentDeclined
	outcomes // the number of outcomes
)

func (o outcome) String() string {
	return [...]string{"approved", "insufficient credit", "unknown customer", "payment declined"}[o]
}

// sagaState and reason are what the saga instance must hold at its end.
func (o outcome) sagaState() string {
	if o == approved {
		return "COMPLETED"
	}
	return "REJECTED"
}

func (o outcome) reason() string {
	return [...]string{"", "INSUFFICIENT_CREDIT", "UNKNOWN_CUSTOMER", "PAYMENT_DECLINED"}[o]
}

// orderState is what GET /orders/{id} must show at the end.
func (o outcome) orderState() string {
	if o == approved {
		return "APPROVED"
	}
	return "REJECTED"
}

// orderPlan is one order to post and how its saga must end.
type orderPlan struct {
	customerID string
	total      int64
	want       outcome
}

// planOrders returns n orders, the same for the same customers: of every
// ten, seven approved, one over a poor customer's credit, one for a
// customer that does not exist and one above the payment limit for a rich
// customer, so its credit is reserved, then released.
func planOrders(n int, rich, poor []string, paymentLimit int64) []orderPlan {
	rng := rand.New(rand.NewPCG(1, 2))
	plans := make([]orderPlan, n)
	for i := range plans {
		switch i % 10 {
		case 7:
			plans[i] = orderPlan{poor[rng.IntN(len(poor))], 100 + rng.Int64N(10_000), insufficientCredit}
		case 8:
			plans[i] = orderPlan{"no-such-customer-" + strconv.Itoa(i), 100 + rng.Int64N(10_000), unknownCustomer}
		case 9:
			plans[i] = orderPlan{rich[rng.IntN(len(rich))], paymentLimit + 1, paymentDeclined}
		default:
			plans[i] = orderPlan{rich[rng.IntN(len(rich))], 1 + rng.Int64N(min(10_000, paymentLimit)), approved}
		}
	}
	return plans
}

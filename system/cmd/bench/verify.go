package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kafkasaga/kafkasaga/system/internal/load"
)

// errWrongAnswer marks a run whose sagas did not all end as their input
// dictates, or that broke the credit invariant: its figures are not worth
// reporting.
var errWrongAnswer = errors.New("wrong answer")

// ordersSampled is how many orders verify reads back over HTTP.
const ordersSampled = 200

// verification is what verify checked.
type verification struct {
	outcomes  [load.Outcomes]int // sagas per outcome
	sampled   int                // orders read back over HTTP
	customers int                // customers whose credit was checked
	timeouts  int                // commands re-sent because their reply was late
}

// verify checks every saga's end against its plan, a sample of the orders
// over HTTP, and the credit invariant of every customer:
// availableCredit == creditLimit - sum(totals of its approved orders).
func verify(ctx context.Context, a *load.API, ph *sagaPhase) (verification, error) {
	var v verification
	var problems []string
	for i, r := range ph.runs {
		p := ph.plans[i]
		v.outcomes[p.Want]++
		v.timeouts += r.End.Timeouts
		if r.End.State != p.Want.SagaState() || r.End.Reason != p.Want.Reason() {
			problems = append(problems, fmt.Sprintf("saga %s (order %d, %s): got %s %q, want %s %q",
				r.ID, i, p.Want, r.End.State, r.End.Reason, p.Want.SagaState(), p.Want.Reason()))
		}
	}

	if ph.again > 0 {
		problems = append(problems, fmt.Sprintf("%d ends read of sagas that had ended already", ph.again))
	}
	for _, id := range ph.unposted {
		problems = append(problems, fmt.Sprintf("saga %s ended, and no order of the run made it", id))
	}

	step := (len(ph.runs) + ordersSampled - 1) / ordersSampled
	for i := 0; i < len(ph.runs); i += step {
		p, id := ph.plans[i], ph.runs[i].ID
		o, err := a.Order(ctx, id)
		if err != nil {
			return v, err
		}
		want := load.OrderView{OrderID: id, CustomerID: p.CustomerID, OrderTotal: p.Total, State: p.Want.OrderState(), RejectionReason: p.Want.Reason()}
		if o != want {
			problems = append(problems, fmt.Sprintf("GET /orders/%s (%s): got %+v, want %+v", id, p.Want, o, want))
		}
		v.sampled++
	}

	approvedTotal := map[string]int64{}
	for _, p := range ph.plans {
		if p.Want == load.Approved {
			approvedTotal[p.CustomerID] += p.Total
		}
	}
	limits := map[string]int64{}
	for _, id := range ph.rich {
		limits[id] = load.RichCredit
	}
	for _, id := range ph.poor {
		limits[id] = load.PoorCredit
	}
	for id, limit := range limits {
		c, err := a.Customer(ctx, id)
		if err != nil {
			return v, err
		}
		if want := limit - approvedTotal[id]; c.CreditLimit != limit || c.AvailableCredit != want {
			problems = append(problems, fmt.Sprintf("customer %s: got credit limit %d and available credit %d, want %d and %d (limit less %d approved)",
				id, c.CreditLimit, c.AvailableCredit, limit, want, approvedTotal[id]))
		}
		v.customers++
	}

	if len(problems) > 0 {
		const shown = 20
		total, more := len(problems), ""
		if total > shown {
			more = fmt.Sprintf("\n  ... and %d more", total-shown)
			problems = problems[:shown]
		}
		return v, fmt.Errorf("%w: %d problems:\n  %s%s", errWrongAnswer, total, strings.Join(problems, "\n  "), more)
	}
	return v, nil
}

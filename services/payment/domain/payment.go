// Package domain holds the payment authorization rules, free of Kafka, HTTP
// and encodings.
package domain

import (
	"cmp"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound is returned when an order has no payment decision.
	ErrNotFound = errors.New("payment not found")
	// ErrInvalid is wrapped by every error about input that can never be valid.
	ErrInvalid = errors.New("invalid")
)

// Status is the decision on an order's payment.
type Status string

const (
	Undecided  Status = ""           // no command seen for the order yet
	Authorized Status = "AUTHORIZED" // the amount is authorized
	Declined   Status = "DECLINED"   // see Reason
	Cancelled  Status = "CANCELLED"  // compensated: nothing is authorized
	Refunded   Status = "REFUNDED"   // the order was cancelled: the authorized amount is refunded
)

// DeclinedOverLimit is the reason for declining an amount over the limit.
const DeclinedOverLimit = "AMOUNT_OVER_LIMIT"

// Reasons for refusing a refund.
const (
	RefusedOverRefundLimit = "AMOUNT_OVER_REFUND_LIMIT" // the amount is above the refund limit
	RefusedNotAuthorized   = "NOT_AUTHORIZED"           // nothing is authorized to refund
	RefusedCancelled       = "REFUND_CANCELLED"         // the attempt's refund was cancelled before it came
	RefusedSuperseded      = "SUPERSEDED"               // a later cancel attempt has been decided
)

// Refund outcomes recorded besides the refusal reasons.
const (
	RefundedOutcome = "REFUNDED"
	RefundCancelled = "CANCELLED"
)

// Payment is the payment decision for one order. The first decision sticks:
// a command delivered twice gets the same answer and changes nothing.
type Payment struct {
	orderID    string
	customerID string
	paymentID  string
	amount     int64
	status     Status
	reason     string
	decidedAt  time.Time

	refundAttempt int    // the last cancel attempt a refund was decided for
	refundOutcome string // its decision: RefundedOutcome, a refusal reason, or RefundCancelled
}

// NewPayment is the undecided payment of an order.
func NewPayment(orderID string) *Payment { return &Payment{orderID: orderID} }

// UnmarshalPayment rebuilds a payment from storage; it does not validate.
func UnmarshalPayment(orderID, customerID, paymentID string, amount int64, status Status, reason string, decidedAt time.Time,
	refundAttempt int, refundOutcome string) *Payment {
	return &Payment{orderID: orderID, customerID: customerID, paymentID: paymentID, amount: amount, status: status, reason: reason,
		decidedAt: decidedAt, refundAttempt: refundAttempt, refundOutcome: refundOutcome}
}

// RefundAttempt is the last cancel attempt a refund was decided for, and
// RefundOutcome that decision.
func (p *Payment) RefundAttempt() int    { return p.refundAttempt }
func (p *Payment) RefundOutcome() string { return p.refundOutcome }

func (p *Payment) OrderID() string      { return p.orderID }
func (p *Payment) CustomerID() string   { return p.customerID }
func (p *Payment) PaymentID() string    { return p.paymentID }
func (p *Payment) Amount() int64        { return p.amount }
func (p *Payment) Status() Status       { return p.status }
func (p *Payment) Reason() string       { return p.reason }
func (p *Payment) DecidedAt() time.Time { return p.decidedAt }

// Authorize decides the payment: declined above limit, authorized otherwise.
// An already decided payment keeps its decision; a cancelled one, whose saga
// has moved on, stays cancelled.
func (p *Payment) Authorize(customerID string, amount, limit int64, paymentID string, now time.Time) error {
	if p.status != Undecided {
		return nil
	}
	if amount <= 0 {
		return fmt.Errorf("%w payment for order %s: amount %d must be positive", ErrInvalid, p.orderID, amount)
	}
	p.customerID, p.amount, p.decidedAt = customerID, amount, now
	if amount > limit {
		p.status, p.reason = Declined, DeclinedOverLimit
		return nil
	}
	p.status, p.paymentID = Authorized, paymentID
	return nil
}

// Answer is what an AuthorizePayment gets, the first time and each time it
// is sent again: the payment id once it was authorized, whatever followed
// (a cancellation, a refund); else why it was declined, CANCELLED if it
// was cancelled before it was decided.
func (p *Payment) Answer() (paymentID, declined string) {
	switch {
	case p.paymentID != "":
		return p.paymentID, ""
	case p.status == Cancelled:
		return "", string(Cancelled)
	}
	return "", p.reason
}

// Cancel voids the authorization. It is recorded even for an undecided
// payment, so an AuthorizePayment that arrives late authorizes nothing. A
// declined payment, which authorized nothing, stays declined, and answers
// as it did. paymentID, when the caller knows it, names the authorization
// to void: it must be this payment's.
func (p *Payment) Cancel(paymentID string, now time.Time) error {
	if paymentID != "" && p.status == Authorized && paymentID != p.paymentID {
		return fmt.Errorf("%w cancellation of payment %s for order %s, authorized as %s", ErrInvalid, paymentID, p.orderID, p.paymentID)
	}
	if p.status == Declined {
		return nil
	}
	if p.status == Undecided {
		p.decidedAt = now
	}
	p.status = Cancelled
	return nil
}

// Refund decides the refund of a cancel attempt and returns "" once the
// payment is REFUNDED, or the reason it refuses, the payment left as it
// was: refused above limit, or when nothing is authorized. The decision is
// recorded with its attempt, so the attempt's command delivered again gets
// the same answer even if the limit changed meanwhile, and one that comes
// after its attempt's CancelRefund (a dead letter replayed) refunds
// nothing.
func (p *Payment) Refund(attempt int, limit int64) (refusal string) {
	switch {
	case attempt < p.refundAttempt:
		return RefusedSuperseded
	case attempt == p.refundAttempt && p.refundOutcome != "":
		switch p.refundOutcome {
		case RefundedOutcome:
			return ""
		case RefundCancelled:
			return RefusedCancelled
		}
		return p.refundOutcome
	}
	switch {
	case p.status != Authorized:
		refusal = RefusedNotAuthorized
	case p.amount > limit:
		refusal = RefusedOverRefundLimit
	default:
		p.status = Refunded
	}
	p.refundAttempt, p.refundOutcome = attempt, cmp.Or(refusal, RefundedOutcome)
	return refusal
}

// CancelRefund undoes the refund of a cancel attempt whose outcome its saga
// never learned: a payment that attempt refunded is AUTHORIZED again. It
// is recorded even when the refund has not come yet, so that it refunds
// nothing when it does.
func (p *Payment) CancelRefund(attempt int) {
	if attempt < p.refundAttempt {
		return // a later attempt has been decided since
	}
	if attempt == p.refundAttempt && p.refundOutcome == RefundedOutcome {
		p.status = Authorized
	}
	p.refundAttempt, p.refundOutcome = attempt, RefundCancelled
}

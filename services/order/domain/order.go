// Package domain holds the order's life cycle, free of Kafka, HTTP and
// encodings.
package domain

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

var (
	// ErrNotFound is returned for an unknown order id.
	ErrNotFound = errors.New("order not found")
	// ErrInvalid is wrapped by every error about input that can never be valid.
	ErrInvalid = errors.New("invalid")
	// ErrConflict is returned for a transition the order's state forbids,
	// such as approving a rejected order, and for an idempotency key sent
	// again with another order.
	ErrConflict = errors.New("conflict")
	// ErrExists is returned for adding an order whose id is taken.
	ErrExists = errors.New("order exists")
)

// State is where an order is in its life.
type State string

const (
	Pending  State = "PENDING"  // stored; its Create Order saga runs
	Approved State = "APPROVED" // the saga completed
	Rejected State = "REJECTED" // the saga was compensated; see RejectionReason

	Cancelling State = "CANCELLING" // an APPROVED order whose Cancel Order saga runs; its credit is held
	Cancelled  State = "CANCELLED"  // its payment refunded and its credit released
)

// Order is a customer's order. It is created PENDING and ends APPROVED or
// REJECTED; an APPROVED order may then be cancelled: it is CANCELLING while
// its Cancel Order saga runs, and ends CANCELLED, or APPROVED again with
// the reason the cancellation was refused. Repeating the transition it
// already made is a no-op, so a command delivered twice changes nothing.
type Order struct {
	id              string
	customerID      string
	total           int64
	state           State
	rejectionReason string
	createdAt       time.Time

	cancelAttempt       int       // cancellations accepted: the attempt of the latest Cancel Order saga
	cancelRequestedAt   time.Time // when the latest was accepted
	cancelRefusalReason string    // why the latest was refused, if it was
	// cancelKeys are the Idempotency-Keys of the requests the latest
	// attempt answered: the one that started it, then those that joined
	// it while it ran (at most maxCancelKeys in all).
	cancelKeys []string
}

// maxCancelKeys bounds the keys an order keeps of its latest cancellation:
// a request sent more often than that under other keys is a client's bug,
// and its later keys start the next attempt once this one is over.
const maxCancelKeys = 17

// NewOrder validates a new PENDING order. total is in cents.
func NewOrder(id, customerID string, total int64, now time.Time) (*Order, error) {
	var errs []error
	if id == "" {
		errs = append(errs, errors.New("order id is required"))
	}
	if customerID == "" {
		errs = append(errs, errors.New("customerId is required"))
	}
	if total <= 0 {
		errs = append(errs, errors.New("orderTotal must be a positive number of cents"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w order: %w", ErrInvalid, err)
	}
	return &Order{id: id, customerID: customerID, total: total, state: Pending, createdAt: now}, nil
}

// UnmarshalOrder rebuilds an order from storage; it does not validate.
func UnmarshalOrder(id, customerID string, total int64, state State, rejectionReason string, createdAt time.Time) *Order {
	return &Order{id: id, customerID: customerID, total: total, state: state, rejectionReason: rejectionReason, createdAt: createdAt}
}

// WithCancellation rebuilds the cancellation of an order from storage.
func (o *Order) WithCancellation(attempt int, requestedAt time.Time, refusalReason string, keys []string) *Order {
	o.cancelAttempt, o.cancelRequestedAt, o.cancelRefusalReason, o.cancelKeys = attempt, requestedAt, refusalReason, keys
	return o
}

func (o *Order) ID() string              { return o.id }
func (o *Order) CustomerID() string      { return o.customerID }
func (o *Order) Total() int64            { return o.total }
func (o *Order) State() State            { return o.state }
func (o *Order) RejectionReason() string { return o.rejectionReason }
func (o *Order) CreatedAt() time.Time    { return o.createdAt }

// CancelAttempt is the attempt of the order's latest Cancel Order saga; 0
// if it was never cancelled.
func (o *Order) CancelAttempt() int           { return o.cancelAttempt }
func (o *Order) CancelRequestedAt() time.Time { return o.cancelRequestedAt }
func (o *Order) CancelRefusalReason() string  { return o.cancelRefusalReason }

// CancelKeys are the Idempotency-Keys of the requests the latest attempt
// answered: the one that started it first.
func (o *Order) CancelKeys() []string { return o.cancelKeys }

// Approve moves a PENDING order to APPROVED. An order approved before
// (then perhaps cancelled) is left as it is.
func (o *Order) Approve() error {
	switch o.state {
	case Pending:
		o.state = Approved
		return nil
	case Approved, Cancelling, Cancelled:
		return nil
	default:
		return fmt.Errorf("%w: approve order %s in state %s", ErrConflict, o.id, o.state)
	}
}

// Reject moves a PENDING order to REJECTED for reason.
func (o *Order) Reject(reason string) error {
	if reason == "" {
		return fmt.Errorf("%w: reject order %s without a reason", ErrInvalid, o.id)
	}
	switch o.state {
	case Pending:
		o.state, o.rejectionReason = Rejected, reason
		return nil
	case Rejected:
		return nil
	default:
		return fmt.Errorf("%w: reject order %s in state %s", ErrConflict, o.id, o.state)
	}
}

// RequestCancel marks an APPROVED order CANCELLING, as its next cancel
// attempt started by the request of Idempotency-Key key, and reports that
// it did: its Cancel Order saga is to start. A request the latest attempt
// answered, sent again (its key), changes nothing whatever became of the
// attempt, CANCELLED or refused; so does any request while the order is
// CANCELLING (a request sent twice runs one saga), which the attempt then
// answers. In any other state the order cannot be cancelled.
func (o *Order) RequestCancel(now time.Time, key string) (started bool, err error) {
	if key != "" && slices.Contains(o.cancelKeys, key) {
		return false, nil
	}
	switch o.state {
	case Approved:
		o.state, o.cancelRefusalReason, o.cancelKeys = Cancelling, "", nil
		if key != "" {
			o.cancelKeys = []string{key}
		}
		o.cancelAttempt++
		o.cancelRequestedAt = now
		return true, nil
	case Cancelling:
		if key != "" && len(o.cancelKeys) < maxCancelKeys {
			o.cancelKeys = append(o.cancelKeys, key)
		}
		return false, nil
	default:
		return false, fmt.Errorf("%w: cancel order %s in state %s", ErrConflict, o.id, o.state)
	}
}

// Cancel marks the order CANCELLED: the Cancel Order saga of its cancel
// attempt has refunded its payment and released its credit.
func (o *Order) Cancel(attempt int) error {
	switch {
	case attempt != o.cancelAttempt:
		return fmt.Errorf("%w: cancel order %s as attempt %d, its attempt is %d", ErrConflict, o.id, attempt, o.cancelAttempt)
	case o.state == Cancelling:
		o.state = Cancelled
		return nil
	case o.state == Cancelled:
		return nil
	default:
		return fmt.Errorf("%w: cancel order %s in state %s", ErrConflict, o.id, o.state)
	}
}

// RefuseCancel makes a CANCELLING order APPROVED again, recording why its
// cancellation was refused. A refusal of an earlier attempt changes
// nothing: the order has moved on.
func (o *Order) RefuseCancel(attempt int, reason string) error {
	if reason == "" {
		return fmt.Errorf("%w: refuse the cancellation of order %s without a reason", ErrInvalid, o.id)
	}
	switch {
	case attempt < o.cancelAttempt:
		return nil
	case attempt > o.cancelAttempt:
		return fmt.Errorf("%w: refuse cancel attempt %d of order %s, whose attempt is %d", ErrConflict, attempt, o.id, o.cancelAttempt)
	case o.state == Cancelling:
		o.state, o.cancelRefusalReason = Approved, reason
		return nil
	case o.state == Approved:
		return nil
	default:
		return fmt.Errorf("%w: refuse the cancellation of order %s in state %s", ErrConflict, o.id, o.state)
	}
}

// Package domain holds the order's life cycle, free of Kafka, HTTP and
// encodings.
package domain

import (
	"errors"
	"fmt"
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
)

// Order is a customer's order. It is created PENDING and ends APPROVED or
// REJECTED; repeating the transition it already made is a no-op, so a
// command delivered twice changes nothing.
type Order struct {
	id              string
	customerID      string
	total           int64
	state           State
	rejectionReason string
	createdAt       time.Time
}

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

func (o *Order) ID() string              { return o.id }
func (o *Order) CustomerID() string      { return o.customerID }
func (o *Order) Total() int64            { return o.total }
func (o *Order) State() State            { return o.state }
func (o *Order) RejectionReason() string { return o.rejectionReason }
func (o *Order) CreatedAt() time.Time    { return o.createdAt }

// Approve moves a PENDING order to APPROVED.
func (o *Order) Approve() error {
	switch o.state {
	case Pending:
		o.state = Approved
		return nil
	case Approved:
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

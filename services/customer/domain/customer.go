// Package domain holds the customer's credit rules, free of Kafka, HTTP and
// encodings.
package domain

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotFound is returned for an unknown customer id.
	ErrNotFound = errors.New("customer not found")
	// ErrInvalid is wrapped by every error about input that can never be
	// valid, as opposed to failures that a retry may cure.
	ErrInvalid = errors.New("invalid")
	// ErrExists means a customer with that id is stored already.
	ErrExists = errors.New("customer exists")
	// ErrConflict is returned for a request that contradicts what is
	// stored: an idempotency key sent again with another name or limit.
	ErrConflict = errors.New("conflict")
)

// ReservationStatus is what was decided for one order's credit.
type ReservationStatus string

const (
	Reserved ReservationStatus = "RESERVED" // the order's total is held
	Rejected ReservationStatus = "REJECTED" // the total exceeded the available credit
	Released ReservationStatus = "RELEASED" // the saga was compensated: nothing is held
	// NoCustomer: the customer did not exist when asked. Recorded, so that
	// the command sent again gets the same answer even once the customer
	// exists: its saga was told, and rejected the order.
	NoCustomer ReservationStatus = "NO_CUSTOMER"
)

// Reservation is the decision for one order.
type Reservation struct {
	Amount int64
	Status ReservationStatus
}

// Customer has a credit limit and holds part of it for orders in flight or
// approved. Every decision is recorded by order id, so a command delivered
// twice gets the same answer and changes nothing. A customer value carries
// the total it holds and the decisions its caller loaded (those the next
// decision is about), not its whole history.
type Customer struct {
	id           string
	name         string
	creditLimit  int64
	held         int64                  // the total of its RESERVED decisions
	reservations map[string]Reservation // by order id
	missing      bool                   // it does not exist: only its decisions do
}

// NewCustomer validates a new customer.
func NewCustomer(id, name string, creditLimit int64) (*Customer, error) {
	var errs []error
	if id == "" {
		errs = append(errs, errors.New("customer id is required"))
	}
	if strings.TrimSpace(name) == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if creditLimit <= 0 {
		errs = append(errs, errors.New("creditLimit must be a positive number of cents"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w customer: %w", ErrInvalid, err)
	}
	return &Customer{id: id, name: name, creditLimit: creditLimit, reservations: map[string]Reservation{}}, nil
}

// UnmarshalCustomer rebuilds a customer from storage; it does not validate.
// held is the total of all its RESERVED decisions; reservations are the
// decisions loaded with it, by order id, and must include the one on any
// order it is next asked about.
func UnmarshalCustomer(id, name string, creditLimit, held int64, reservations map[string]Reservation) *Customer {
	if reservations == nil {
		reservations = map[string]Reservation{}
	}
	return &Customer{id: id, name: name, creditLimit: creditLimit, held: held, reservations: reservations}
}

// MissingCustomer is a customer that does not exist, with the decisions
// loaded on its orders: what it is asked is answered ErrNotFound, and
// recorded (NoCustomer), as a release is.
func MissingCustomer(id string, reservations map[string]Reservation) *Customer {
	c := UnmarshalCustomer(id, "", 0, 0, reservations)
	c.missing = true
	return c
}

func (c *Customer) ID() string             { return c.id }
func (c *Customer) Name() string           { return c.name }
func (c *Customer) CreditLimit() int64     { return c.creditLimit }
func (c *Customer) HeldCredit() int64      { return c.held }
func (c *Customer) AvailableCredit() int64 { return c.creditLimit - c.held }

// Reservations are the decisions loaded with the customer and those made on
// it since, by order id.
func (c *Customer) Reservations() map[string]Reservation { return c.reservations }

// ReserveCredit holds amount for the order if the available credit covers it
// and reports whether it did. A repeated call for the same order returns the
// first decision. An order whose credit was already released (the saga moved
// on) stays released and is answered as reserved: that answer is stale and
// the orchestrator ignores it.
func (c *Customer) ReserveCredit(orderID string, amount int64) (bool, error) {
	if orderID == "" {
		return false, fmt.Errorf("%w reservation: order id is required", ErrInvalid)
	}
	if amount <= 0 {
		return false, fmt.Errorf("%w reservation for order %s: amount %d must be positive", ErrInvalid, orderID, amount)
	}
	if r, ok := c.reservations[orderID]; ok {
		if r.Status == NoCustomer {
			return false, fmt.Errorf("customer %s: %w", c.id, ErrNotFound)
		}
		return r.Status != Rejected, nil
	}
	if c.missing {
		c.reservations[orderID] = Reservation{Amount: amount, Status: NoCustomer}
		return false, fmt.Errorf("customer %s: %w", c.id, ErrNotFound)
	}
	if amount > c.AvailableCredit() {
		c.reservations[orderID] = Reservation{Amount: amount, Status: Rejected}
		return false, nil
	}
	c.reservations[orderID] = Reservation{Amount: amount, Status: Reserved}
	c.held += amount
	return true, nil
}

// ReleaseCredit gives back what the order holds. It records the release even
// if nothing was decided, so a ReserveCredit that arrives late (after its
// saga timed out and compensated) cannot hold credit again. A decision
// that held nothing (rejected, or no customer) stays as it is: the command
// sent again gets the answer it got first.
func (c *Customer) ReleaseCredit(orderID string) {
	r, decided := c.reservations[orderID]
	switch {
	case r.Status == Reserved:
		c.held -= r.Amount
	case decided:
		return
	}
	r.Status = Released
	c.reservations[orderID] = r
}

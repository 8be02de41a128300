// Package adapters implements what the payment application uses: the
// repository, on a Kafka-backed store of contracts.PaymentRecord.
package adapters

import (
	"context"
	"fmt"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/platform/store"
	"github.com/kafkasaga/kafkasaga/services/payment/domain"
)

// PaymentRepository keeps each order's payment as one record of the
// compacted topic payment.state, keyed by order id.
type PaymentRepository struct {
	store *store.Store[contracts.PaymentRecord]
}

var _ domain.Repository = (*PaymentRepository)(nil)

func NewPaymentRepository(s *store.Store[contracts.PaymentRecord]) *PaymentRepository {
	return &PaymentRepository{store: s}
}

// PaymentOver reports whether a payment was never authorized and never
// will be: declined, or cancelled before it was decided (or, written by
// a build before a cancellation left a declined payment as it is, after
// it was declined). It only answers its commands sent again, so it expires
// (store.Expire) after SAGA_RETENTION. A payment authorized once
// stays, whatever followed: a refund may yet be undone.
func PaymentOver(r *contracts.PaymentRecord) bool {
	switch domain.Status(r.Status) {
	case domain.Declined, domain.Cancelled:
		return r.PaymentID == ""
	}
	return false
}

// Get returns the payment as committed: GET /payments/{orderId} shows no
// decision whose transaction may still abort.
func (r *PaymentRepository) Get(_ context.Context, orderID string) (*domain.Payment, error) {
	rec, ok, err := r.store.GetCommitted(orderID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("payment of order %s: %w", orderID, domain.ErrNotFound)
	}
	return unmarshal(rec), nil
}

func (r *PaymentRepository) Update(ctx context.Context, orderID string, fn func(p *domain.Payment) error) error {
	return r.store.Update(ctx, orderID, func(rec *contracts.PaymentRecord, exists bool) error {
		p := domain.NewPayment(orderID)
		if exists {
			p = unmarshal(rec)
		}
		if err := fn(p); err != nil {
			return err
		}
		*rec = contracts.PaymentRecord{
			OrderID: p.OrderID(), CustomerID: p.CustomerID(), PaymentID: p.PaymentID(), Amount: p.Amount(),
			Status: string(p.Status()), Reason: p.Reason(), DecidedAt: p.DecidedAt(),
			RefundAttempt: p.RefundAttempt(), RefundOutcome: p.RefundOutcome(),
		}
		return nil
	})
}

func unmarshal(rec *contracts.PaymentRecord) *domain.Payment {
	return domain.UnmarshalPayment(rec.OrderID, rec.CustomerID, rec.PaymentID, rec.Amount, domain.Status(rec.Status), rec.Reason, rec.DecidedAt,
		rec.RefundAttempt, rec.RefundOutcome)
}

package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/services/payment/domain"
)

func TestPayment(t *testing.T) {
	const limit = 1000
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		ops        []int64 // an amount to authorize, or -1 to cancel
		wantStatus domain.Status
		wantReason string
		wantID     string
	}{
		{"authorize within the limit", []int64{1000}, domain.Authorized, "", "p1"},
		{"decline above the limit", []int64{1001}, domain.Declined, domain.DeclinedOverLimit, ""},
		{"duplicate authorize keeps the first decision", []int64{10, 5000}, domain.Authorized, "", "p1"},
		{"duplicate of a decline stays declined", []int64{5000, 10}, domain.Declined, domain.DeclinedOverLimit, ""},
		{"cancel an authorization", []int64{10, -1}, domain.Cancelled, "", "p1"},
		{"cancel before authorize blocks the late authorize", []int64{-1, 10}, domain.Cancelled, "", ""},
		{"cancel twice", []int64{10, -1, -1}, domain.Cancelled, "", "p1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := domain.NewPayment("o1")
			for i, amount := range tt.ops {
				if amount < 0 {
					if err := p.Cancel("", now); err != nil {
						t.Fatalf("Cancel: %v", err)
					}
					continue
				}
				if err := p.Authorize("c1", amount, limit, "p"+string(rune('1'+i)), now); err != nil {
					t.Fatalf("Authorize(%d): %v", amount, err)
				}
			}
			if p.Status() != tt.wantStatus || p.Reason() != tt.wantReason || p.PaymentID() != tt.wantID {
				t.Fatalf("%v: got %s/%q/%q, want %s/%q/%q", tt.ops, p.Status(), p.Reason(), p.PaymentID(), tt.wantStatus, tt.wantReason, tt.wantID)
			}
		})
	}
}

func TestCancelNamingAnotherPaymentIsRefused(t *testing.T) {
	p := domain.NewPayment("o1")
	if err := p.Authorize("c1", 10, 1000, "p1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := p.Cancel("p2", time.Now()); !errors.Is(err, domain.ErrInvalid) || p.Status() != domain.Authorized {
		t.Errorf("Cancel(p2) of p1: got %v and %s, want ErrInvalid and the authorization kept", err, p.Status())
	}
	if err := p.Cancel("p1", time.Now()); err != nil || p.Status() != domain.Cancelled {
		t.Errorf("Cancel(p1) of p1: got %v and %s, want it cancelled", err, p.Status())
	}
}

func TestAuthorizeRejectsNonPositiveAmounts(t *testing.T) {
	for _, amount := range []int64{0, -5} {
		if err := domain.NewPayment("o1").Authorize("c1", amount, 1000, "p1", time.Now()); err == nil {
			t.Errorf("Authorize(%d): got nil error, want one", amount)
		}
	}
}

package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

func TestNewOrderValidates(t *testing.T) {
	tests := []struct {
		name     string
		customer string
		total    int64
		wantErr  bool
	}{
		{"valid", "c1", 1, false},
		{"no customer", "", 100, true},
		{"zero total", "c1", 0, true},
		{"negative total", "c1", -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := domain.NewOrder("o1", tt.customer, tt.total, time.Now())
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewOrder(o1, %q, %d): got err %v, want error %v", tt.customer, tt.total, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("got %v, want it to wrap ErrInvalid", err)
			}
			if err == nil && o.State() != domain.Pending {
				t.Fatalf("got state %s, want PENDING", o.State())
			}
		})
	}
}

func TestTransitions(t *testing.T) {
	tests := []struct {
		name       string
		ops        []string // "approve" or a rejection reason
		wantState  domain.State
		wantReason string
		wantErr    error
	}{
		{"approve", []string{"approve"}, domain.Approved, "", nil},
		{"approve twice", []string{"approve", "approve"}, domain.Approved, "", nil},
		{"reject", []string{"INSUFFICIENT_CREDIT"}, domain.Rejected, "INSUFFICIENT_CREDIT", nil},
		{"reject twice keeps the first reason", []string{"INSUFFICIENT_CREDIT", "PAYMENT_DECLINED"}, domain.Rejected, "INSUFFICIENT_CREDIT", nil},
		{"approve a rejected order", []string{"UNKNOWN_CUSTOMER", "approve"}, domain.Rejected, "UNKNOWN_CUSTOMER", domain.ErrConflict},
		{"reject an approved order", []string{"approve", "PAYMENT_DECLINED"}, domain.Approved, "", domain.ErrConflict},
		{"reject without reason", []string{""}, domain.Pending, "", domain.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := domain.NewOrder("o1", "c1", 100, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var last error
			for _, op := range tt.ops {
				if op == "approve" {
					last = o.Approve()
				} else {
					last = o.Reject(op)
				}
			}
			if !errors.Is(last, tt.wantErr) {
				t.Fatalf("%v: got err %v, want %v", tt.ops, last, tt.wantErr)
			}
			if o.State() != tt.wantState || o.RejectionReason() != tt.wantReason {
				t.Fatalf("%v: got %s/%q, want %s/%q", tt.ops, o.State(), o.RejectionReason(), tt.wantState, tt.wantReason)
			}
		})
	}
}

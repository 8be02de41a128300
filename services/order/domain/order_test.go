package domain_test

import (
	"errors"
	"slices"
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

// The cancellation rules: only an APPROVED order can be cancelled; a
// request while it is CANCELLING changes nothing; its saga ends it
// CANCELLED, or APPROVED again with the reason; a refused order may be
// cancelled again, as the next attempt, but not by the request (its
// Idempotency-Key) that started the refused one, sent again; a command of
// an earlier attempt changes nothing.
func TestCancellation(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	type op struct {
		kind    string // "request", "cancel" or "refuse"
		attempt int    // of cancel and refuse
		reason  string // of refuse
		key     string // of request: its Idempotency-Key
	}
	var (
		request   = op{kind: "request"}
		requestAs = func(key string) op { return op{kind: "request", key: key} }
		cancel    = func(attempt int) op { return op{kind: "cancel", attempt: attempt} }
		refuse    = func(attempt int, reason string) op { return op{kind: "refuse", attempt: attempt, reason: reason} }
	)
	tests := []struct {
		name        string
		from        string // "approve", "pending" or a rejection reason
		ops         []op
		wantStarted []bool // what each request returned
		wantErr     error  // of the last op
		wantState   domain.State
		wantAttempt int
		wantReason  string // the cancel refusal reason
	}{
		{"request", "approve", []op{request}, []bool{true}, nil, domain.Cancelling, 1, ""},
		{"request twice starts one saga", "approve", []op{request, request}, []bool{true, false}, nil, domain.Cancelling, 1, ""},
		{"cancelled", "approve", []op{request, cancel(1)}, []bool{true}, nil, domain.Cancelled, 1, ""},
		{"cancelled twice", "approve", []op{request, cancel(1), cancel(1)}, []bool{true}, nil, domain.Cancelled, 1, ""},
		{"refused", "approve", []op{request, refuse(1, "REFUND_REFUSED")}, []bool{true}, nil, domain.Approved, 1, "REFUND_REFUSED"},
		{"refused twice", "approve", []op{request, refuse(1, "REFUND_REFUSED"), refuse(1, "REFUND_REFUSED")}, []bool{true}, nil, domain.Approved, 1, "REFUND_REFUSED"},
		{"refused, then cancelled as the next attempt", "approve",
			[]op{request, refuse(1, "REFUND_REFUSED"), request, cancel(2)}, []bool{true, true}, nil, domain.Cancelled, 2, ""},
		{"a refusal of the attempt before changes nothing", "approve",
			[]op{request, refuse(1, "TIMEOUT_REFUND_PAYMENT"), request, refuse(1, "TIMEOUT_REFUND_PAYMENT")}, []bool{true, true}, nil, domain.Cancelling, 2, ""},
		{"request of a cancelled order", "approve", []op{request, cancel(1), request}, []bool{true, false}, domain.ErrConflict, domain.Cancelled, 1, ""},
		{"request of a pending order", "pending", []op{request}, []bool{false}, domain.ErrConflict, domain.Pending, 0, ""},
		{"request of a rejected order", "PAYMENT_DECLINED", []op{request}, []bool{false}, domain.ErrConflict, domain.Rejected, 0, ""},
		{"cancel of another attempt", "approve", []op{request, cancel(2)}, []bool{true}, domain.ErrConflict, domain.Cancelling, 1, ""},
		{"cancel of an order never cancelling", "approve", []op{cancel(0)}, nil, domain.ErrConflict, domain.Approved, 0, ""},
		{"refuse a cancelled order", "approve", []op{request, cancel(1), refuse(1, "REFUND_REFUSED")}, []bool{true}, domain.ErrConflict, domain.Cancelled, 1, ""},
		{"refuse without a reason", "approve", []op{request, refuse(1, "")}, []bool{true}, domain.ErrInvalid, domain.Cancelling, 1, ""},
		{"the request of a refused attempt, again, starts nothing", "approve",
			[]op{requestAs("k"), refuse(1, "REFUND_REFUSED"), requestAs("k")}, []bool{true, false}, nil, domain.Approved, 1, "REFUND_REFUSED"},
		{"the request of a cancelled attempt, again, is no conflict", "approve",
			[]op{requestAs("k"), cancel(1), requestAs("k")}, []bool{true, false}, nil, domain.Cancelled, 1, ""},
		{"another request after a refusal is the next attempt", "approve",
			[]op{requestAs("k"), refuse(1, "REFUND_REFUSED"), requestAs("k2")}, []bool{true, true}, nil, domain.Cancelling, 2, ""},
		{"a request that joined the running attempt, sent again after its refusal, starts nothing", "approve",
			[]op{requestAs("k1"), requestAs("k2"), refuse(1, "REFUND_REFUSED"), requestAs("k2")}, []bool{true, false, false}, nil, domain.Approved, 1, "REFUND_REFUSED"},
		{"the request of an earlier attempt is another request", "approve",
			[]op{requestAs("k"), refuse(1, "REFUND_REFUSED"), requestAs("k2"), refuse(2, "REFUND_REFUSED"), requestAs("k")}, []bool{true, true, true}, nil, domain.Cancelling, 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := domain.NewOrder("o1", "c1", 100, now)
			if err != nil {
				t.Fatal(err)
			}
			switch tt.from {
			case "approve":
				err = o.Approve()
			case "pending":
			default:
				err = o.Reject(tt.from)
			}
			if err != nil {
				t.Fatal(err)
			}
			var (
				last    error
				started []bool
			)
			for _, op := range tt.ops {
				switch op.kind {
				case "request":
					var s bool
					s, last = o.RequestCancel(now, op.key)
					started = append(started, s)
				case "cancel":
					last = o.Cancel(op.attempt)
				case "refuse":
					last = o.RefuseCancel(op.attempt, op.reason)
				}
			}
			if !errors.Is(last, tt.wantErr) || (tt.wantErr == nil && last != nil) {
				t.Errorf("last op: got err %v, want %v", last, tt.wantErr)
			}
			if !slices.Equal(started, tt.wantStarted) {
				t.Errorf("requests started: got %v, want %v", started, tt.wantStarted)
			}
			if o.State() != tt.wantState || o.CancelAttempt() != tt.wantAttempt || o.CancelRefusalReason() != tt.wantReason {
				t.Errorf("got %s attempt %d %q, want %s attempt %d %q", o.State(), o.CancelAttempt(), o.CancelRefusalReason(),
					tt.wantState, tt.wantAttempt, tt.wantReason)
			}
		})
	}
}

// An order approved once stays approved, whatever followed: an ApproveOrder
// delivered again after a cancellation changes nothing.
func TestApproveAgainAfterACancellation(t *testing.T) {
	o, _ := domain.NewOrder("o1", "c1", 100, time.Now())
	_ = o.Approve()
	if _, err := o.RequestCancel(time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	if err := o.Approve(); err != nil || o.State() != domain.Cancelling {
		t.Errorf("approve a CANCELLING order: got %v and %s, want nil and CANCELLING", err, o.State())
	}
}

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
		{"cancel after a decline leaves it declined", []int64{5000, -1}, domain.Declined, domain.DeclinedOverLimit, ""},
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

// The refund rule: an AUTHORIZED payment up to the refund limit is
// REFUNDED; above it, or of a payment not authorized, the refund is refused
// with a reason and the payment is left as it was. A decision is recorded
// per cancel attempt: the attempt's command again gets the same answer, and
// after its CancelRefund it refunds nothing. CancelRefund undoes its
// attempt's refund and nothing else.
func TestRefund(t *testing.T) {
	const limit, refundLimit = 1000, 500
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	authorized := func(amount int64) func() *domain.Payment {
		return func() *domain.Payment {
			p := domain.NewPayment("o1")
			if err := p.Authorize("c1", amount, limit, "p1", now); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	refund := func(p *domain.Payment) string { return p.Refund(1, refundLimit) }
	cancelRefund := func(p *domain.Payment) string { p.CancelRefund(1); return "" }
	refundAt := func(attempt int, limit int64) func(p *domain.Payment) string {
		return func(p *domain.Payment) string { return p.Refund(attempt, limit) }
	}
	cancelRefundAt := func(attempt int) func(p *domain.Payment) string {
		return func(p *domain.Payment) string { p.CancelRefund(attempt); return "" }
	}
	tests := []struct {
		name        string
		payment     func() *domain.Payment
		ops         []func(*domain.Payment) string
		wantRefused []string // what each op returns
		wantStatus  domain.Status
	}{
		{"refund within the refund limit", authorized(500), []func(*domain.Payment) string{refund},
			[]string{""}, domain.Refunded},
		{"refund above the refund limit is refused", authorized(501), []func(*domain.Payment) string{refund},
			[]string{domain.RefusedOverRefundLimit}, domain.Authorized},
		{"refund twice", authorized(10), []func(*domain.Payment) string{refund, refund},
			[]string{"", ""}, domain.Refunded},
		{"a refused refund is refused again", authorized(900), []func(*domain.Payment) string{refund, refund},
			[]string{domain.RefusedOverRefundLimit, domain.RefusedOverRefundLimit}, domain.Authorized},
		{"refund of a declined payment", authorized(5000), []func(*domain.Payment) string{refund},
			[]string{domain.RefusedNotAuthorized}, domain.Declined},
		{"refund of an undecided payment", func() *domain.Payment { return domain.NewPayment("o1") }, []func(*domain.Payment) string{refund},
			[]string{domain.RefusedNotAuthorized}, domain.Undecided},
		{"refund of a cancelled payment", func() *domain.Payment {
			p := authorized(10)()
			_ = p.Cancel("", now)
			return p
		}, []func(*domain.Payment) string{refund}, []string{domain.RefusedNotAuthorized}, domain.Cancelled},
		{"cancel a refund", authorized(10), []func(*domain.Payment) string{refund, cancelRefund},
			[]string{"", ""}, domain.Authorized},
		{"cancel a refund never made", authorized(10), []func(*domain.Payment) string{cancelRefund},
			[]string{""}, domain.Authorized},
		{"the refund of a cancelled refund's attempt, replayed, refunds nothing", authorized(10), []func(*domain.Payment) string{refund, cancelRefund, refund},
			[]string{"", "", domain.RefusedCancelled}, domain.Authorized},
		{"a refund cancelled before it came refunds nothing", authorized(10), []func(*domain.Payment) string{cancelRefund, refund},
			[]string{"", domain.RefusedCancelled}, domain.Authorized},
		{"a later attempt refunds after a cancelled one", authorized(10), []func(*domain.Payment) string{refund, cancelRefund, refundAt(2, refundLimit)},
			[]string{"", "", ""}, domain.Refunded},
		{"a refusal sticks to its attempt when the limit rises", authorized(900), []func(*domain.Payment) string{refund, refundAt(1, 1000)},
			[]string{domain.RefusedOverRefundLimit, domain.RefusedOverRefundLimit}, domain.Authorized},
		{"a later attempt is decided under the limit of its time", authorized(900), []func(*domain.Payment) string{refund, refundAt(2, 1000)},
			[]string{domain.RefusedOverRefundLimit, ""}, domain.Refunded},
		{"an earlier attempt after a later one changes nothing", authorized(10), []func(*domain.Payment) string{refundAt(2, refundLimit), refund, cancelRefundAt(1)},
			[]string{"", domain.RefusedSuperseded, ""}, domain.Refunded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.payment()
			for i, op := range tt.ops {
				if got := op(p); got != tt.wantRefused[i] {
					t.Errorf("op %d: got refusal %q, want %q", i, got, tt.wantRefused[i])
				}
			}
			if p.Status() != tt.wantStatus {
				t.Errorf("status: got %s, want %s", p.Status(), tt.wantStatus)
			}
		})
	}
}

// An AuthorizePayment sent again gets the answer it got first, whatever
// followed: authorized under the same id after a cancellation or a
// refund; declined, CANCELLED, if the cancellation came first.
func TestAnAuthorizationIsAnsweredAsDecided(t *testing.T) {
	now := time.Now()
	authorized := func() *domain.Payment {
		p := domain.NewPayment("o1")
		if err := p.Authorize("c1", 10, 1000, "p1", now); err != nil {
			t.Fatal(err)
		}
		return p
	}
	refunded := authorized()
	if refusal := refunded.Refund(1, 1000); refusal != "" {
		t.Fatalf("Refund: refused %s", refusal)
	}
	cancelled := authorized()
	if err := cancelled.Cancel("p1", now); err != nil {
		t.Fatal(err)
	}
	cancelledFirst := domain.NewPayment("o1")
	if err := cancelledFirst.Cancel("", now); err != nil {
		t.Fatal(err)
	}
	declined := domain.NewPayment("o1")
	for _, p := range []*domain.Payment{declined, declined} {
		if err := p.Authorize("c1", 5000, 1000, "p1", now); err != nil {
			t.Fatal(err)
		}
	}
	cancelledDeclined := domain.NewPayment("o1")
	if err := cancelledDeclined.Authorize("c1", 5000, 1000, "p1", now); err != nil {
		t.Fatal(err)
	}
	if err := cancelledDeclined.Cancel("", now); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		p                   *domain.Payment
		wantID, wantDecline string
	}{
		"authorized":                         {authorized(), "p1", ""},
		"refunded after it was authorized":   {refunded, "p1", ""},
		"cancelled after it was authorized":  {cancelled, "p1", ""},
		"cancelled before it was authorized": {cancelledFirst, "", string(domain.Cancelled)},
		"declined":                           {declined, "", domain.DeclinedOverLimit},
		"cancelled after it was declined":    {cancelledDeclined, "", domain.DeclinedOverLimit},
	} {
		if err := tt.p.Authorize("c1", 10, 1000, "p2", now); err != nil {
			t.Fatalf("%s: Authorize again: %v", name, err)
		}
		if id, declined := tt.p.Answer(); id != tt.wantID || declined != tt.wantDecline {
			t.Errorf("%s: answered %q, declined %q; want %q, %q", name, id, declined, tt.wantID, tt.wantDecline)
		}
	}
}

package domain_test

import (
	"errors"
	"testing"

	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

func TestNewCustomerValidates(t *testing.T) {
	tests := []struct {
		name        string
		id, cname   string
		creditLimit int64
		wantErr     bool
	}{
		{"valid", "c1", "Ada", 100, false},
		{"no id", "", "Ada", 100, true},
		{"blank name", "c1", "  ", 100, true},
		{"zero limit", "c1", "Ada", 0, true},
		{"negative limit", "c1", "Ada", -5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := domain.NewCustomer(tt.id, tt.cname, tt.creditLimit)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewCustomer(%q, %q, %d): got err %v, want error %v", tt.id, tt.cname, tt.creditLimit, err, tt.wantErr)
			}
		})
	}
}

// step is one call on a customer whose credit limit is 100.
type step struct {
	op            string // "reserve" or "release"
	order         string
	amount        int64
	wantReserved  bool
	wantAvailable int64
}

func TestCredit(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"reserve within limit", []step{{"reserve", "o1", 60, true, 40}}},
		{"reserve the whole limit", []step{{"reserve", "o1", 100, true, 0}}},
		{"reserve over the limit", []step{{"reserve", "o1", 101, false, 100}}},
		{"second order exceeds what is left", []step{
			{"reserve", "o1", 60, true, 40}, {"reserve", "o2", 50, false, 40}}},
		{"duplicate reserve changes nothing", []step{
			{"reserve", "o1", 60, true, 40}, {"reserve", "o1", 60, true, 40}}},
		{"duplicate of a rejected reserve stays rejected after credit frees up", []step{
			{"reserve", "o1", 60, true, 40}, {"reserve", "o2", 50, false, 40},
			{"release", "o1", 0, false, 100}, {"reserve", "o2", 50, false, 100}}},
		{"release gives the credit back", []step{
			{"reserve", "o1", 60, true, 40}, {"release", "o1", 0, false, 100}}},
		{"duplicate release changes nothing", []step{
			{"reserve", "o1", 60, true, 40}, {"release", "o1", 0, false, 100}, {"release", "o1", 0, false, 100}}},
		{"reserve after its release holds nothing", []step{
			{"reserve", "o1", 60, true, 40}, {"release", "o1", 0, false, 100}, {"reserve", "o1", 60, true, 100}}},
		{"release before reserve blocks the late reserve", []step{
			{"release", "o1", 0, false, 100}, {"reserve", "o1", 60, true, 100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := domain.NewCustomer("c1", "Ada", 100)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				switch s.op {
				case "reserve":
					got, err := c.ReserveCredit(s.order, s.amount)
					if err != nil {
						t.Fatalf("step %d: ReserveCredit(%s, %d): %v", i, s.order, s.amount, err)
					}
					if got != s.wantReserved {
						t.Fatalf("step %d: ReserveCredit(%s, %d): got reserved %v, want %v", i, s.order, s.amount, got, s.wantReserved)
					}
				case "release":
					c.ReleaseCredit(s.order)
				}
				if got := c.AvailableCredit(); got != s.wantAvailable {
					t.Fatalf("step %d (%s %s): got available %d, want %d", i, s.op, s.order, got, s.wantAvailable)
				}
			}
		})
	}
}

func TestReserveCreditRejectsBadInput(t *testing.T) {
	c, _ := domain.NewCustomer("c1", "Ada", 100)
	for _, amount := range []int64{0, -1} {
		if _, err := c.ReserveCredit("o1", amount); err == nil {
			t.Errorf("ReserveCredit(o1, %d): got nil error, want one", amount)
		}
	}
	if _, err := c.ReserveCredit("", 10); err == nil {
		t.Error("ReserveCredit with no order id: got nil error, want one")
	}
}

// A release does not change a decision that held nothing: the command
// sent again afterwards gets the answer it got the first time.
func TestAReleaseKeepsADecisionThatHeldNothing(t *testing.T) {
	c, _ := domain.NewCustomer("c1", "Ada", 100)
	if ok, err := c.ReserveCredit("o1", 150); ok || err != nil {
		t.Fatalf("ReserveCredit(o1, 150) of 100: got %v, %v; want false, nil", ok, err)
	}
	c.ReleaseCredit("o1")
	if ok, err := c.ReserveCredit("o1", 150); ok || err != nil {
		t.Errorf("ReserveCredit(o1) again after its release: got %v, %v; want false, nil, as the first time", ok, err)
	}
	if c.HeldCredit() != 0 {
		t.Errorf("held: got %d, want 0", c.HeldCredit())
	}

	gone := domain.MissingCustomer("c2", map[string]domain.Reservation{})
	if _, err := gone.ReserveCredit("o2", 10); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("ReserveCredit of a missing customer: got %v, want ErrNotFound", err)
	}
	gone.ReleaseCredit("o2")
	if ok, err := gone.ReserveCredit("o2", 10); ok || !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("ReserveCredit(o2) again after its release: got %v, %v; want false, ErrNotFound, as the first time", ok, err)
	}
}

package load

import (
	"reflect"
	"strings"
	"testing"
)

func TestPlanOrders(t *testing.T) {
	rich, poor := []string{"r1", "r2"}, []string{"p1"}
	plans := PlanOrders(1000, rich, poor, 500)
	var counts [Outcomes]int
	for i, p := range plans {
		counts[p.Want]++
		switch {
		case p.Want == Approved && (p.Total < 1 || p.Total > 500 || !strings.HasPrefix(p.CustomerID, "r")):
			t.Errorf("order %d approved: got %d for %s, want at most the payment limit for a rich customer", i, p.Total, p.CustomerID)
		case p.Want == InsufficientCredit && (p.CustomerID != "p1" || p.Total <= PoorCredit):
			t.Errorf("order %d insufficient credit: got %d for %s, want more than %d for a poor customer", i, p.Total, p.CustomerID, PoorCredit)
		case p.Want == PaymentDeclined && p.Total != 501:
			t.Errorf("order %d payment declined: got total %d, want the payment limit + 1", i, p.Total)
		}
	}
	if want := [Outcomes]int{700, 100, 100, 100}; counts != want {
		t.Errorf("outcomes: got %v, want %v", counts, want)
	}
	if again := PlanOrders(1000, rich, poor, 500); !reflect.DeepEqual(again, plans) {
		t.Error("two plans of the same input differ, want the same")
	}
}

package contracts_test

import (
	"testing"

	"github.com/kafkasaga/kafkasaga/contracts"
)

// A Cancel Order saga id is the same for the same order and attempt, and
// another for another attempt or order, and never the order id itself.
func TestCancelOrderSagaID(t *testing.T) {
	const order = "6a1f0c8e-3b57-4d0e-9c1a-2f5b7d9e1c3a"
	first := contracts.CancelOrderSagaID(order, 1)
	for _, tt := range []struct {
		name string
		id   string
		same bool
	}{
		{"the same attempt again", contracts.CancelOrderSagaID(order, 1), true},
		{"the next attempt", contracts.CancelOrderSagaID(order, 2), false},
		{"another order", contracts.CancelOrderSagaID("6a1f0c8e-3b57-4d0e-9c1a-2f5b7d9e1c3b", 1), false},
		{"the order id", order, false},
	} {
		if got := tt.id == first; got != tt.same {
			t.Errorf("%s: %s against %s: same %v, want %v", tt.name, tt.id, first, got, tt.same)
		}
	}
}

package contracts

import (
	"strconv"

	"github.com/google/uuid"
)

// cancelOrderSagas is the namespace of the Cancel Order saga ids (a UUID of
// its own, fixed forever).
var cancelOrderSagas = uuid.MustParse("0b6c3f52-2f0e-4d8a-9a57-6c1e4f7d2a93")

// CancelOrderSagaID is the id of the Cancel Order saga of an order's cancel
// attempt (1 for its first): a name-based UUID (version 5) of the order id
// and the attempt. It is never an order id, which is a random UUID (version
// 4) or another namespace's, so GET /sagas/{id} tells the Create Order saga
// of an order (whose id is the order id) from its Cancel Order sagas. The
// order service and the orchestrator both derive it, and the order service
// answers it in POST /orders/{id}/cancel and GET /orders/{id}.
func CancelOrderSagaID(orderID string, attempt int) string {
	return uuid.NewSHA1(cancelOrderSagas, []byte(orderID+"\x00cancel\x00"+strconv.Itoa(attempt))).String()
}

// Package cancelorder defines the Cancel Order saga: refund the payment of
// an APPROVED order the order service has marked CANCELLING, release its
// credit, mark it CANCELLED; when the refund is refused, make the order
// APPROVED again with the reason.
package cancelorder

import (
	"fmt"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Data is the saga's own data; the saga id is contracts.CancelOrderSagaID
// of the order id and the attempt.
type Data = contracts.CancelOrderSagaData

// Definition returns the Cancel Order saga. The refund is the last step that
// can fail (the pivot): once the payment is refunded, the credit is released
// and the order cancelled, re-sent until answered.
func Definition() saga.Definition[Data] {
	return saga.Definition[Data]{
		Version: 1,
		Type:    contracts.SagaTypeCancelOrder,
		Description: "Refunds the payment of an APPROVED order the order service has marked CANCELLING, releases its credit " +
			"and marks it CANCELLED; when the refund is refused, makes the order APPROVED again with the reason.",
		ReplyTopic: contracts.TopicCancelOrderReplies,
		StateTopic: contracts.TopicCancelOrderSagas,
		Steps: []saga.Step[Data]{
			{
				Name:              "request_cancel", // the order is already CANCELLING
				Compensate:        saga.Compensate(contracts.RefuseCancelInteraction, refuseCancel),
				CompensateReplies: saga.Replies{saga.On[contracts.CancelRefused](saga.Success)},
			},
			{
				Name:   "refund_payment",
				Invoke: saga.Invoke(contracts.RefundPaymentInteraction, refundPayment),
				Replies: saga.Replies{
					saga.On[contracts.PaymentRefunded](saga.Success),
					saga.On[contracts.RefundRefused](saga.Failure("REFUND_REFUSED")),
				},
				// Only a refund whose outcome is unknown is compensated: one
				// that timed out, or that an operator's abort left waiting.
				Compensate:        saga.Compensate(contracts.CancelRefundInteraction, cancelRefund),
				CompensateReplies: saga.Replies{saga.On[contracts.RefundCancelled](saga.Success)},
			},
			{
				Name:    "release_credit",
				Invoke:  saga.Invoke(contracts.ReleaseCreditInteraction, releaseCredit),
				Replies: saga.Replies{saga.On[contracts.CreditReleased](saga.Success)},
			},
			{
				Name:    "cancel_order",
				Invoke:  saga.Invoke(contracts.CancelOrderInteraction, cancelOrder),
				Replies: saga.Replies{saga.On[contracts.OrderCancelled](saga.Success)},
			},
		},
	}
}

// Previous returns the earlier versions of the Cancel Order saga that may
// still have sagas running: each runs to its end under the version it
// started under. A version leaves the list once saga_instances_running
// shows none of it.
func Previous() saga.Versions[Data] {
	return nil
}

// Start starts the Cancel Order saga of an order's cancel attempt. An error
// means the event can never start one.
func Start(e *contracts.OrderCancelRequested) (sagaID string, d Data, err error) {
	if e.OrderID == "" || e.CustomerID == "" || e.OrderTotal <= 0 || e.Attempt < 1 {
		return "", Data{}, fmt.Errorf("cancel attempt %d of order %q of customer %q for %d: a cancellation needs both ids, a positive total and an attempt from 1",
			e.Attempt, e.OrderID, e.CustomerID, e.OrderTotal)
	}
	return contracts.CancelOrderSagaID(e.OrderID, e.Attempt),
		Data{OrderID: e.OrderID, CustomerID: e.CustomerID, OrderTotal: e.OrderTotal, Attempt: e.Attempt}, nil
}

func refuseCancel(d *Data, reason string) *contracts.RefuseCancel {
	return &contracts.RefuseCancel{OrderID: d.OrderID, Attempt: d.Attempt, Reason: reason}
}

func refundPayment(d *Data) *contracts.RefundPayment {
	return &contracts.RefundPayment{OrderID: d.OrderID, Attempt: d.Attempt}
}

func cancelRefund(d *Data, _ string) *contracts.CancelRefund {
	return &contracts.CancelRefund{OrderID: d.OrderID, Attempt: d.Attempt}
}

func releaseCredit(d *Data) *contracts.ReleaseCredit {
	return &contracts.ReleaseCredit{CustomerID: d.CustomerID, OrderID: d.OrderID}
}

func cancelOrder(d *Data) *contracts.CancelOrder {
	return &contracts.CancelOrder{OrderID: d.OrderID, Attempt: d.Attempt}
}

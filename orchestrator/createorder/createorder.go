// Package createorder defines the Create Order saga: reserve the customer's
// credit, authorize the payment, approve the order; on a failure, undo what
// was done in reverse and reject the order.
package createorder

import (
	"fmt"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Data is the saga's own data; the saga id is the order id.
type Data = contracts.CreateOrderSagaData

// Definition returns the current version of the Create Order saga: new
// sagas start under it. To change its steps while sagas run, keep a copy
// of it in Previous and bump its Version (docs/adding-a-saga-step.md).
func Definition() saga.Definition[Data] {
	return saga.Definition[Data]{
		Type:    contracts.SagaTypeCreateOrder,
		Version: 1,
		Description: "Reserves the customer's credit for a new PENDING order, authorizes its payment and approves it; " +
			"when a step fails, undoes what was done in reverse and rejects the order with the reason.",
		ReplyTopic: contracts.TopicCreateOrderReplies,
		StateTopic: contracts.TopicCreateOrderSagas,
		Steps: []saga.Step[Data]{
			{
				Name:              "create_order", // the order exists already, as PENDING
				Compensate:        saga.Compensate(contracts.RejectOrderInteraction, rejectOrder),
				CompensateReplies: saga.Replies{saga.On[contracts.OrderRejected](saga.Success)},
			},
			{
				Name:   "reserve_credit",
				Invoke: saga.Invoke(contracts.ReserveCreditInteraction, reserveCredit),
				Replies: saga.Replies{
					saga.On[contracts.CreditReserved](saga.Success),
					saga.On[contracts.CreditLimitExceeded](saga.Failure("INSUFFICIENT_CREDIT")),
					saga.On[contracts.CustomerNotFound](saga.Failure("UNKNOWN_CUSTOMER")),
				},
				Compensate:        saga.Compensate(contracts.ReleaseCreditInteraction, releaseCredit),
				CompensateReplies: saga.Replies{saga.On[contracts.CreditReleased](saga.Success)},
			},
			{
				Name:   "authorize_payment",
				Invoke: saga.Invoke(contracts.AuthorizePaymentInteraction, authorizePayment),
				Replies: saga.Replies{
					saga.OnReply(saga.Success, func(d *Data, r *contracts.PaymentAuthorized) { d.PaymentID = r.PaymentID }),
					saga.On[contracts.PaymentDeclined](saga.Failure("PAYMENT_DECLINED")),
				},
				Compensate:        saga.Compensate(contracts.CancelPaymentInteraction, cancelPayment),
				CompensateReplies: saga.Replies{saga.On[contracts.PaymentCancelled](saga.Success)},
			},
			{
				Name:    "approve_order",
				Invoke:  saga.Invoke(contracts.ApproveOrderInteraction, approveOrder),
				Replies: saga.Replies{saga.On[contracts.OrderApproved](saga.Success)},
			},
		},
	}
}

// Previous returns the earlier versions of the Create Order saga that may
// still have sagas running: each runs to its end under the version it
// started under. A version leaves the list once saga_instances_running
// shows none of it.
func Previous() saga.Versions[Data] {
	return nil
}

// Start starts a Create Order saga for a created order; the saga id is the
// order id. An error means the event can never start one.
func Start(e *contracts.OrderCreated) (sagaID string, d Data, err error) {
	if e.OrderID == "" || e.CustomerID == "" || e.OrderTotal <= 0 {
		return "", Data{}, fmt.Errorf("order %q of customer %q for %d: an order needs both ids and a positive total",
			e.OrderID, e.CustomerID, e.OrderTotal)
	}
	return e.OrderID, Data{OrderID: e.OrderID, CustomerID: e.CustomerID, OrderTotal: e.OrderTotal}, nil
}

func rejectOrder(d *Data, reason string) *contracts.RejectOrder {
	return &contracts.RejectOrder{OrderID: d.OrderID, Reason: reason}
}

func reserveCredit(d *Data) *contracts.ReserveCredit {
	return &contracts.ReserveCredit{CustomerID: d.CustomerID, OrderID: d.OrderID, Amount: d.OrderTotal}
}

func releaseCredit(d *Data, _ string) *contracts.ReleaseCredit {
	return &contracts.ReleaseCredit{CustomerID: d.CustomerID, OrderID: d.OrderID}
}

func authorizePayment(d *Data) *contracts.AuthorizePayment {
	return &contracts.AuthorizePayment{OrderID: d.OrderID, CustomerID: d.CustomerID, Amount: d.OrderTotal}
}

func cancelPayment(d *Data, _ string) *contracts.CancelPayment {
	return &contracts.CancelPayment{OrderID: d.OrderID, PaymentID: d.PaymentID}
}

func approveOrder(d *Data) *contracts.ApproveOrder {
	return &contracts.ApproveOrder{OrderID: d.OrderID}
}

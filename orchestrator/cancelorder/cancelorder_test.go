package cancelorder_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/orchestrator/cancelorder"
	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/saga/sagatest"
)

const (
	orderID    = "order-1"
	customerID = "customer-7"
	total      = 1500
	attempt    = 2
)

// exchange is a command the saga must send and the reply it gets (nil: it
// times out).
func exchange(topic, key, step string, command, reply saga.Record) sagatest.Exchange {
	return sagatest.Exchange{Topic: topic, Key: key, Step: step, Command: command, Reply: reply}
}

func TestCancelOrderSaga(t *testing.T) {
	var (
		refundPayment = func(reply saga.Record) sagatest.Exchange {
			return exchange(contracts.TopicPaymentCommands, orderID, "refund_payment", &contracts.RefundPayment{OrderID: orderID, Attempt: attempt}, reply)
		}
		cancelRefund = exchange(contracts.TopicPaymentCommands, orderID, "refund_payment:compensate",
			&contracts.CancelRefund{OrderID: orderID, Attempt: attempt}, &contracts.RefundCancelled{OrderID: orderID})
		releaseCredit = exchange(contracts.TopicCustomerCommands, customerID, "release_credit",
			&contracts.ReleaseCredit{CustomerID: customerID, OrderID: orderID}, &contracts.CreditReleased{CustomerID: customerID, OrderID: orderID})
		cancelOrder = exchange(contracts.TopicOrderCommands, orderID, "cancel_order",
			&contracts.CancelOrder{OrderID: orderID, Attempt: attempt}, &contracts.OrderCancelled{OrderID: orderID})
		refuseCancel = func(reason string) sagatest.Exchange {
			return exchange(contracts.TopicOrderCommands, orderID, "request_cancel:compensate",
				&contracts.RefuseCancel{OrderID: orderID, Attempt: attempt, Reason: reason}, &contracts.CancelRefused{OrderID: orderID, Reason: reason})
		}
	)
	tests := []struct {
		name       string
		exchanges  []sagatest.Exchange
		wantState  string
		wantReason string
		wantEvents []string
	}{
		{
			name: "cancelled",
			exchanges: []sagatest.Exchange{
				refundPayment(&contracts.PaymentRefunded{OrderID: orderID, PaymentID: "p-1"}),
				releaseCredit,
				cancelOrder,
			},
			wantState:  saga.StateCompleted,
			wantEvents: []string{"started", "PaymentRefunded", "CreditReleased", "OrderCancelled"},
		},
		{
			name: "refund refused",
			exchanges: []sagatest.Exchange{
				refundPayment(&contracts.RefundRefused{OrderID: orderID, Reason: "AMOUNT_OVER_REFUND_LIMIT"}),
				refuseCancel("REFUND_REFUSED"),
			},
			wantState:  saga.StateRejected,
			wantReason: "REFUND_REFUSED",
			wantEvents: []string{"started", "RefundRefused", "CancelRefused"},
		},
		{
			name: "payment never answers",
			exchanges: []sagatest.Exchange{
				refundPayment(nil),
				cancelRefund, // the refund may have happened
				refuseCancel("TIMEOUT_REFUND_PAYMENT"),
			},
			wantState:  saga.StateRejected,
			wantReason: "TIMEOUT_REFUND_PAYMENT",
			wantEvents: []string{"started", "timeout", "RefundCancelled", "CancelRefused"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sagatest.NewHarness(t, cancelorder.Definition(), saga.EngineConfig{StepTimeout: time.Second, MaxAttempts: 1})
			sagaID := contracts.CancelOrderSagaID(orderID, attempt)
			h.Start(sagaID, cancelorder.Data{OrderID: orderID, CustomerID: customerID, OrderTotal: total, Attempt: attempt})

			h.Play(contracts.TopicCancelOrderReplies, tt.exchanges)
			v, _, _ := h.Engine.Instance(sagaID)
			if v.State != tt.wantState || v.FailureReason != tt.wantReason || v.SagaType != contracts.SagaTypeCancelOrder {
				t.Errorf("got %s state %s reason %q, want %s state %s reason %q", v.SagaType, v.State, v.FailureReason,
					contracts.SagaTypeCancelOrder, tt.wantState, tt.wantReason)
			}
			var events []string
			for _, tr := range v.History {
				events = append(events, tr.Event)
			}
			if !reflect.DeepEqual(events, tt.wantEvents) {
				t.Errorf("history events: got %v, want %v", events, tt.wantEvents)
			}
		})
	}
}

// Once the payment is refunded the saga must complete: the credit release
// and the order's cancellation are re-sent until answered, never
// compensated.
func TestAfterTheRefundTheSagaCompletes(t *testing.T) {
	h := sagatest.NewHarness(t, cancelorder.Definition(), saga.EngineConfig{StepTimeout: time.Second, MaxAttempts: 2})
	sagaID := contracts.CancelOrderSagaID(orderID, 1)
	h.Start(sagaID, cancelorder.Data{OrderID: orderID, CustomerID: customerID, OrderTotal: total, Attempt: 1})
	if err := h.Reply(h.Last(), &contracts.PaymentRefunded{OrderID: orderID, PaymentID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		h.Clock.Advance(time.Minute)
		h.Engine.ResendOverdue(t.Context())
	}
	if got, want := h.Last().Msg.Metadata.Get(saga.HeaderStep), "release_credit"; got != want {
		t.Fatalf("last command step: got %q, want %q", got, want)
	}
	if err := h.Reply(h.Last(), &contracts.CreditReleased{CustomerID: customerID, OrderID: orderID}); err != nil {
		t.Fatal(err)
	}
	if err := h.Reply(h.Last(), &contracts.OrderCancelled{OrderID: orderID}); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := h.Engine.Instance(sagaID); v.State != saga.StateCompleted {
		t.Errorf("got state %s, want %s", v.State, saga.StateCompleted)
	}
}

func TestStartNeedsIDsATotalAndAnAttempt(t *testing.T) {
	e := contracts.OrderCancelRequested{OrderID: orderID, CustomerID: customerID, OrderTotal: total, Attempt: 1}
	id, d, err := cancelorder.Start(&e)
	want := cancelorder.Data{OrderID: orderID, CustomerID: customerID, OrderTotal: total, Attempt: 1}
	if err != nil || id != contracts.CancelOrderSagaID(orderID, 1) || d != want {
		t.Errorf("got %q %+v %v, want %q %+v", id, d, err, contracts.CancelOrderSagaID(orderID, 1), want)
	}
	for _, bad := range []contracts.OrderCancelRequested{
		{CustomerID: customerID, OrderTotal: total, Attempt: 1},
		{OrderID: orderID, OrderTotal: total, Attempt: 1},
		{OrderID: orderID, CustomerID: customerID, Attempt: 1},
		{OrderID: orderID, CustomerID: customerID, OrderTotal: total},
	} {
		if _, _, err := cancelorder.Start(&bad); err == nil {
			t.Errorf("start from %+v: got no error, want one", bad)
		}
	}
}

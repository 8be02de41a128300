package createorder_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/orchestrator/createorder"
	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/saga/sagatest"
)

const (
	orderID    = "order-1"
	customerID = "customer-7"
	total      = 1500
)

// exchange is a command the saga must send and the reply it gets (nil: it
// times out).
func exchange(topic, key, step string, command, reply saga.Record) sagatest.Exchange {
	return sagatest.Exchange{Topic: topic, Key: key, Step: step, Command: command, Reply: reply}
}

func TestCreateOrderSaga(t *testing.T) {
	var (
		reserve   = &contracts.ReserveCredit{CustomerID: customerID, OrderID: orderID, Amount: total}
		authorize = &contracts.AuthorizePayment{OrderID: orderID, CustomerID: customerID, Amount: total}
		approve   = &contracts.ApproveOrder{OrderID: orderID}
		release   = &contracts.ReleaseCredit{CustomerID: customerID, OrderID: orderID}
		cancel    = &contracts.CancelPayment{OrderID: orderID}
		reject    = func(reason string) *contracts.RejectOrder {
			return &contracts.RejectOrder{OrderID: orderID, Reason: reason}
		}
		rejected = func(reason string) *contracts.OrderRejected {
			return &contracts.OrderRejected{OrderID: orderID, Reason: reason}
		}

		reserveCredit = func(reply saga.Record) sagatest.Exchange {
			return exchange(contracts.TopicCustomerCommands, customerID, "reserve_credit", reserve, reply)
		}
		authorizePayment = func(reply saga.Record) sagatest.Exchange {
			return exchange(contracts.TopicPaymentCommands, orderID, "authorize_payment", authorize, reply)
		}
		releaseCredit = exchange(contracts.TopicCustomerCommands, customerID, "reserve_credit:compensate",
			release, &contracts.CreditReleased{CustomerID: customerID, OrderID: orderID})
		cancelPayment = exchange(contracts.TopicPaymentCommands, orderID, "authorize_payment:compensate",
			cancel, &contracts.PaymentCancelled{OrderID: orderID})
		rejectOrder = func(reason string) sagatest.Exchange {
			return exchange(contracts.TopicOrderCommands, orderID, "create_order:compensate", reject(reason), rejected(reason))
		}
	)
	tests := []struct {
		name          string
		exchanges     []sagatest.Exchange
		wantState     string
		wantReason    string
		wantEvents    []string
		wantPaymentID string // what PaymentAuthorized named
	}{
		{
			name: "approved",
			exchanges: []sagatest.Exchange{
				reserveCredit(&contracts.CreditReserved{CustomerID: customerID, OrderID: orderID, Amount: total}),
				authorizePayment(&contracts.PaymentAuthorized{OrderID: orderID, PaymentID: "p-1"}),
				exchange(contracts.TopicOrderCommands, orderID, "approve_order", approve, &contracts.OrderApproved{OrderID: orderID}),
			},
			wantState:     saga.StateCompleted,
			wantEvents:    []string{"started", "CreditReserved", "PaymentAuthorized", "OrderApproved"},
			wantPaymentID: "p-1",
		},
		{
			name: "insufficient credit",
			exchanges: []sagatest.Exchange{
				reserveCredit(&contracts.CreditLimitExceeded{CustomerID: customerID, OrderID: orderID, AvailableCredit: 100}),
				rejectOrder("INSUFFICIENT_CREDIT"),
			},
			wantState:  saga.StateRejected,
			wantReason: "INSUFFICIENT_CREDIT",
			wantEvents: []string{"started", "CreditLimitExceeded", "OrderRejected"},
		},
		{
			name: "unknown customer",
			exchanges: []sagatest.Exchange{
				reserveCredit(&contracts.CustomerNotFound{CustomerID: customerID, OrderID: orderID}),
				rejectOrder("UNKNOWN_CUSTOMER"),
			},
			wantState:  saga.StateRejected,
			wantReason: "UNKNOWN_CUSTOMER",
			wantEvents: []string{"started", "CustomerNotFound", "OrderRejected"},
		},
		{
			name: "payment declined",
			exchanges: []sagatest.Exchange{
				reserveCredit(&contracts.CreditReserved{CustomerID: customerID, OrderID: orderID, Amount: total}),
				authorizePayment(&contracts.PaymentDeclined{OrderID: orderID, Reason: "over limit"}),
				releaseCredit,
				rejectOrder("PAYMENT_DECLINED"),
			},
			wantState:  saga.StateRejected,
			wantReason: "PAYMENT_DECLINED",
			wantEvents: []string{"started", "CreditReserved", "PaymentDeclined", "CreditReleased", "OrderRejected"},
		},
		{
			name: "payment never answers",
			exchanges: []sagatest.Exchange{
				reserveCredit(&contracts.CreditReserved{CustomerID: customerID, OrderID: orderID, Amount: total}),
				authorizePayment(nil),
				cancelPayment, // the authorization may have happened
				releaseCredit,
				rejectOrder("TIMEOUT_AUTHORIZE_PAYMENT"),
			},
			wantState:  saga.StateRejected,
			wantReason: "TIMEOUT_AUTHORIZE_PAYMENT",
			wantEvents: []string{"started", "CreditReserved", "timeout", "PaymentCancelled", "CreditReleased", "OrderRejected"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sagatest.NewHarness(t, createorder.Definition(), saga.EngineConfig{StepTimeout: time.Second, MaxAttempts: 1})
			h.Start(orderID, createorder.Data{OrderID: orderID, CustomerID: customerID, OrderTotal: total})

			h.Play(contracts.TopicCreateOrderReplies, tt.exchanges)

			v, _, _ := h.Engine.Instance(orderID)
			if v.State != tt.wantState || v.FailureReason != tt.wantReason {
				t.Errorf("got state %s reason %q, want %s reason %q", v.State, v.FailureReason, tt.wantState, tt.wantReason)
			}
			var events []string
			for _, tr := range v.History {
				events = append(events, tr.Event)
			}
			if !reflect.DeepEqual(events, tt.wantEvents) {
				t.Errorf("history events: got %v, want %v", events, tt.wantEvents)
			}
			if d, err := h.Engine.Data(v); err != nil || d.PaymentID != tt.wantPaymentID {
				t.Errorf("payment id kept: got %+v (%v), want %q", d, err, tt.wantPaymentID)
			}
		})
	}
}

// Once the payment is authorized the saga must complete: approve_order is
// re-sent until the order service answers, never compensated.
func TestApproveOrderIsRetriedUntilAnswered(t *testing.T) {
	h := sagatest.NewHarness(t, createorder.Definition(), saga.EngineConfig{StepTimeout: time.Second, MaxAttempts: 2})
	h.Start(orderID, createorder.Data{OrderID: orderID, CustomerID: customerID, OrderTotal: total})
	for _, reply := range []saga.Record{
		&contracts.CreditReserved{CustomerID: customerID, OrderID: orderID, Amount: total},
		&contracts.PaymentAuthorized{OrderID: orderID, PaymentID: "p-1"},
	} {
		if err := h.Reply(h.Last(), reply); err != nil {
			t.Fatalf("reply %T: %v", reply, err)
		}
	}
	for range 10 {
		h.Clock.Advance(time.Minute)
		h.Engine.ResendOverdue(t.Context())
	}
	cmd := h.Last()
	if got, want := cmd.Msg.Metadata.Get(saga.HeaderStep), "approve_order"; got != want {
		t.Fatalf("last command step: got %q, want %q", got, want)
	}
	if got, want := cmd.Msg.Metadata.Get(saga.HeaderAttempt), "11"; got != want {
		t.Errorf("last command attempt: got %s, want %s", got, want)
	}
	if err := h.Reply(cmd, &contracts.OrderApproved{OrderID: orderID}); err != nil {
		t.Fatalf("reply OrderApproved: %v", err)
	}
	if v, _, _ := h.Engine.Instance(orderID); v.State != saga.StateCompleted {
		t.Errorf("got state %s, want %s", v.State, saga.StateCompleted)
	}
}

func TestStartNeedsBothIDsAndAPositiveTotal(t *testing.T) {
	id, d, err := createorder.Start(&contracts.OrderCreated{OrderID: orderID, CustomerID: customerID, OrderTotal: total})
	if want := (createorder.Data{OrderID: orderID, CustomerID: customerID, OrderTotal: total}); err != nil || id != orderID || d != want {
		t.Errorf("got %q %+v %v, want %q %+v", id, d, err, orderID, want)
	}
	for _, e := range []contracts.OrderCreated{{CustomerID: customerID, OrderTotal: total}, {OrderID: orderID, OrderTotal: total}, {OrderID: orderID, CustomerID: customerID}} {
		if _, _, err := createorder.Start(&e); err == nil {
			t.Errorf("start from %+v: got no error, want one", e)
		}
	}
}

// The versions run side by side in one engine, and new sagas start under
// the current one: a previous version kept without the current one
// bumped past it, or with another type or topics, fails here.
func TestTheVersionsRunSideBySide(t *testing.T) {
	current := createorder.Definition()
	for _, p := range createorder.Previous() {
		if p.Version >= current.Version {
			t.Errorf("previous version %d: want it below the current one, %d", p.Version, current.Version)
		}
	}
	h := sagatest.NewHarness(t, current, saga.EngineConfig{StepTimeout: time.Second})
	h.Deploy(append(createorder.Previous(), current)...)
	h.Start(orderID, createorder.Data{OrderID: orderID, CustomerID: customerID, OrderTotal: total})
	if v, _, _ := h.Engine.Instance(orderID); v.Version != current.Version {
		t.Errorf("a new saga: got version %d, want the current one, %d", v.Version, current.Version)
	}
}

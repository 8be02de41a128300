package saga_test

import "github.com/kafkasaga/kafkasaga/saga"

// The interactions of the test saga, as contracts declares real ones.
var (
	RejectOrderInteraction = saga.Interaction[*RejectOrder, RejectOrderReply]{
		Topic:   "order",
		Key:     func(c *RejectOrder) string { return c.OrderID },
		Replies: []RejectOrderReply{&OrderRejected{}},
	}
	ReserveCreditInteraction = saga.Interaction[*ReserveCredit, ReserveCreditReply]{
		Topic:   "customer",
		Key:     func(c *ReserveCredit) string { return c.CustomerID },
		Replies: []ReserveCreditReply{&CreditReserved{}, &CreditLimitExceeded{}},
	}
	ReleaseCreditInteraction = saga.Interaction[*ReleaseCredit, ReleaseCreditReply]{
		Topic:   "customer",
		Key:     func(c *ReleaseCredit) string { return c.CustomerID },
		Replies: []ReleaseCreditReply{&CreditReleased{}},
	}
	AuthorizePaymentInteraction = saga.Interaction[*AuthorizePayment, AuthorizePaymentReply]{
		Topic:   "payment",
		Key:     func(c *AuthorizePayment) string { return c.OrderID },
		Replies: []AuthorizePaymentReply{&PaymentAuthorized{}},
	}
	ApproveOrderInteraction = saga.Interaction[*ApproveOrder, ApproveOrderReply]{
		Topic:   "order",
		Key:     func(c *ApproveOrder) string { return c.OrderID },
		Replies: []ApproveOrderReply{&OrderApproved{}},
	}
)

package contracts

import "github.com/kafkasaga/kafkasaga/saga"

// The commands of the sagas, each declared once: the topic it travels on,
// the key it is sent with (the aggregate its participant serializes on) and
// the replies it may get. The reply interfaces and Interactions() are
// generated from this file (interactions_gen.go); Topics derives the records
// of the command and reply topics from it.
var (
	ReserveCreditInteraction = saga.Interaction[*ReserveCredit, ReserveCreditReply]{
		Topic:   TopicCustomerCommands,
		Key:     func(c *ReserveCredit) string { return c.CustomerID },
		Replies: []ReserveCreditReply{&CreditReserved{}, &CreditLimitExceeded{}, &CustomerNotFound{}},
	}
	ReleaseCreditInteraction = saga.Interaction[*ReleaseCredit, ReleaseCreditReply]{
		Topic:   TopicCustomerCommands,
		Key:     func(c *ReleaseCredit) string { return c.CustomerID },
		Replies: []ReleaseCreditReply{&CreditReleased{}},
	}
	AuthorizePaymentInteraction = saga.Interaction[*AuthorizePayment, AuthorizePaymentReply]{
		Topic:   TopicPaymentCommands,
		Key:     func(c *AuthorizePayment) string { return c.OrderID },
		Replies: []AuthorizePaymentReply{&PaymentAuthorized{}, &PaymentDeclined{}},
	}
	CancelPaymentInteraction = saga.Interaction[*CancelPayment, CancelPaymentReply]{
		Topic:   TopicPaymentCommands,
		Key:     func(c *CancelPayment) string { return c.OrderID },
		Replies: []CancelPaymentReply{&PaymentCancelled{}},
	}
	ApproveOrderInteraction = saga.Interaction[*ApproveOrder, ApproveOrderReply]{
		Topic:   TopicOrderCommands,
		Key:     func(c *ApproveOrder) string { return c.OrderID },
		Replies: []ApproveOrderReply{&OrderApproved{}},
	}
	RejectOrderInteraction = saga.Interaction[*RejectOrder, RejectOrderReply]{
		Topic:   TopicOrderCommands,
		Key:     func(c *RejectOrder) string { return c.OrderID },
		Replies: []RejectOrderReply{&OrderRejected{}},
	}
	RefundPaymentInteraction = saga.Interaction[*RefundPayment, RefundPaymentReply]{
		Topic:   TopicPaymentCommands,
		Key:     func(c *RefundPayment) string { return c.OrderID },
		Replies: []RefundPaymentReply{&PaymentRefunded{}, &RefundRefused{}},
	}
	CancelRefundInteraction = saga.Interaction[*CancelRefund, CancelRefundReply]{
		Topic:   TopicPaymentCommands,
		Key:     func(c *CancelRefund) string { return c.OrderID },
		Replies: []CancelRefundReply{&RefundCancelled{}},
	}
	CancelOrderInteraction = saga.Interaction[*CancelOrder, CancelOrderReply]{
		Topic:   TopicOrderCommands,
		Key:     func(c *CancelOrder) string { return c.OrderID },
		Replies: []CancelOrderReply{&OrderCancelled{}},
	}
	RefuseCancelInteraction = saga.Interaction[*RefuseCancel, RefuseCancelReply]{
		Topic:   TopicOrderCommands,
		Key:     func(c *RefuseCancel) string { return c.OrderID },
		Replies: []RefuseCancelReply{&CancelRefused{}},
	}
	// make participant adds interactions above
)

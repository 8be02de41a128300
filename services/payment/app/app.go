// Package app is the payment service's application layer: one use case a
// file, gathered in Application.
package app

import (
	"time"

	"github.com/kafkasaga/kafkasaga/services/payment/app/command"
	"github.com/kafkasaga/kafkasaga/services/payment/app/query"
	"github.com/kafkasaga/kafkasaga/services/payment/domain"
)

// Application is every use case of the payment service.
type Application struct {
	Commands Commands
	Queries  Queries
}

type Commands struct {
	AuthorizePayment command.AuthorizePaymentHandler
	CancelPayment    command.CancelPaymentHandler
	RefundPayment    command.RefundPaymentHandler
	CancelRefund     command.CancelRefundHandler
}

type Queries struct {
	Payment query.PaymentHandler
}

// New wires the use cases. limit is the largest amount, in cents, that one
// payment may authorize; refundLimit the largest that one may refund.
func New(repo domain.Repository, limit, refundLimit int64, now func() time.Time) Application {
	return Application{
		Commands: Commands{
			AuthorizePayment: command.NewAuthorizePaymentHandler(repo, limit, now),
			CancelPayment:    command.NewCancelPaymentHandler(repo, now),
			RefundPayment:    command.NewRefundPaymentHandler(repo, refundLimit),
			CancelRefund:     command.NewCancelRefundHandler(repo),
		},
		Queries: Queries{Payment: query.NewPaymentHandler(repo)},
	}
}

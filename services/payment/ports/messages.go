package ports

import (
	"context"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/services/payment/app"
	"github.com/kafkasaga/kafkasaga/services/payment/app/command"
)

// RegisterCommands handles AuthorizePayment and CancelPayment (Create Order),
// RefundPayment and CancelRefund (Cancel Order).
func RegisterCommands(p *saga.Participant, application app.Application) {
	saga.Handle(p, contracts.AuthorizePaymentInteraction, func(ctx context.Context, cmd *contracts.AuthorizePayment) (contracts.AuthorizePaymentReply, error) {
		d, err := application.Commands.AuthorizePayment.Handle(ctx, command.AuthorizePayment{
			OrderID: cmd.OrderID, CustomerID: cmd.CustomerID, Amount: cmd.Amount,
		})
		switch {
		case err != nil:
			return nil, err
		case d.Authorized:
			return &contracts.PaymentAuthorized{OrderID: cmd.OrderID, PaymentID: d.PaymentID}, nil
		default:
			return &contracts.PaymentDeclined{OrderID: cmd.OrderID, Reason: d.Reason}, nil
		}
	})
	saga.Handle(p, contracts.CancelPaymentInteraction, func(ctx context.Context, cmd *contracts.CancelPayment) (contracts.CancelPaymentReply, error) {
		if err := application.Commands.CancelPayment.Handle(ctx, cmd.OrderID, cmd.PaymentID); err != nil {
			return nil, err
		}
		return &contracts.PaymentCancelled{OrderID: cmd.OrderID}, nil
	})
	saga.Handle(p, contracts.RefundPaymentInteraction, func(ctx context.Context, cmd *contracts.RefundPayment) (contracts.RefundPaymentReply, error) {
		d, err := application.Commands.RefundPayment.Handle(ctx, cmd.OrderID, int(cmd.Attempt))
		switch {
		case err != nil:
			return nil, err
		case d.Refused != "":
			return &contracts.RefundRefused{OrderID: cmd.OrderID, Reason: d.Refused}, nil
		default:
			return &contracts.PaymentRefunded{OrderID: cmd.OrderID, PaymentID: d.PaymentID}, nil
		}
	})
	saga.Handle(p, contracts.CancelRefundInteraction, func(ctx context.Context, cmd *contracts.CancelRefund) (contracts.CancelRefundReply, error) {
		if err := application.Commands.CancelRefund.Handle(ctx, cmd.OrderID, int(cmd.Attempt)); err != nil {
			return nil, err
		}
		return &contracts.RefundCancelled{OrderID: cmd.OrderID}, nil
	})
}

package ports

import (
	"context"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/services/payment/app"
	"github.com/kafkasaga/kafkasaga/services/payment/app/command"
)

// RegisterCommands handles AuthorizePayment and CancelPayment.
func RegisterCommands(c *messaging.Commands, application app.Application) {
	messaging.Handle(c, func(ctx context.Context, cmd *contracts.AuthorizePayment) (serde.Record, error) {
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
	messaging.Handle(c, func(ctx context.Context, cmd *contracts.CancelPayment) (serde.Record, error) {
		if err := application.Commands.CancelPayment.Handle(ctx, cmd.OrderID); err != nil {
			return nil, err
		}
		return &contracts.PaymentCancelled{OrderID: cmd.OrderID}, nil
	})
}

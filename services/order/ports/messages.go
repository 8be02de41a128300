package ports

import (
	"context"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/services/order/app"
	"github.com/kafkasaga/kafkasaga/services/order/app/command"
)

// RegisterCommands handles ApproveOrder and RejectOrder.
func RegisterCommands(c *messaging.Commands, application app.Application) {
	messaging.Handle(c, func(ctx context.Context, cmd *contracts.ApproveOrder) (serde.Record, error) {
		if err := application.Commands.ApproveOrder.Handle(ctx, cmd.OrderID); err != nil {
			return nil, err
		}
		return &contracts.OrderApproved{OrderID: cmd.OrderID}, nil
	})
	messaging.Handle(c, func(ctx context.Context, cmd *contracts.RejectOrder) (serde.Record, error) {
		if err := application.Commands.RejectOrder.Handle(ctx, command.RejectOrder{OrderID: cmd.OrderID, Reason: cmd.Reason}); err != nil {
			return nil, err
		}
		return &contracts.OrderRejected{OrderID: cmd.OrderID, Reason: cmd.Reason}, nil
	})
}

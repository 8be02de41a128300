package ports

import (
	"context"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/services/order/app"
	"github.com/kafkasaga/kafkasaga/services/order/app/command"
)

// RegisterCommands handles ApproveOrder and RejectOrder (Create Order),
// CancelOrder and RefuseCancel (Cancel Order).
func RegisterCommands(p *saga.Participant, application app.Application) {
	saga.Handle(p, contracts.ApproveOrderInteraction, func(ctx context.Context, cmd *contracts.ApproveOrder) (contracts.ApproveOrderReply, error) {
		if err := application.Commands.ApproveOrder.Handle(ctx, cmd.OrderID); err != nil {
			return nil, err
		}
		return &contracts.OrderApproved{OrderID: cmd.OrderID}, nil
	})
	saga.Handle(p, contracts.RejectOrderInteraction, func(ctx context.Context, cmd *contracts.RejectOrder) (contracts.RejectOrderReply, error) {
		if err := application.Commands.RejectOrder.Handle(ctx, command.RejectOrder{OrderID: cmd.OrderID, Reason: cmd.Reason}); err != nil {
			return nil, err
		}
		return &contracts.OrderRejected{OrderID: cmd.OrderID, Reason: cmd.Reason}, nil
	})
	saga.Handle(p, contracts.CancelOrderInteraction, func(ctx context.Context, cmd *contracts.CancelOrder) (contracts.CancelOrderReply, error) {
		if err := application.Commands.CancelOrder.Handle(ctx, command.CancelOrder{OrderID: cmd.OrderID, Attempt: cmd.Attempt}); err != nil {
			return nil, err
		}
		return &contracts.OrderCancelled{OrderID: cmd.OrderID}, nil
	})
	saga.Handle(p, contracts.RefuseCancelInteraction, func(ctx context.Context, cmd *contracts.RefuseCancel) (contracts.RefuseCancelReply, error) {
		if err := application.Commands.RefuseCancel.Handle(ctx, command.RefuseCancel{OrderID: cmd.OrderID, Attempt: cmd.Attempt, Reason: cmd.Reason}); err != nil {
			return nil, err
		}
		return &contracts.CancelRefused{OrderID: cmd.OrderID, Reason: cmd.Reason}, nil
	})
}

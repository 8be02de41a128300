package ports

import (
	"context"
	"errors"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/services/customer/app"
	"github.com/kafkasaga/kafkasaga/services/customer/app/command"
	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

// RegisterCommands handles ReserveCredit and ReleaseCredit and turns each
// outcome into its reply.
func RegisterCommands(p *saga.Participant, application app.Application) {
	saga.Handle(p, contracts.ReserveCreditInteraction, func(ctx context.Context, cmd *contracts.ReserveCredit) (contracts.ReserveCreditReply, error) {
		d, err := application.Commands.ReserveCredit.Handle(ctx, command.ReserveCredit{
			CustomerID: cmd.CustomerID, OrderID: cmd.OrderID, Amount: cmd.Amount,
		})
		switch {
		case errors.Is(err, domain.ErrNotFound):
			return &contracts.CustomerNotFound{CustomerID: cmd.CustomerID, OrderID: cmd.OrderID}, nil
		case err != nil:
			return nil, err
		case d.Reserved:
			return &contracts.CreditReserved{CustomerID: cmd.CustomerID, OrderID: cmd.OrderID, Amount: cmd.Amount}, nil
		default:
			return &contracts.CreditLimitExceeded{CustomerID: cmd.CustomerID, OrderID: cmd.OrderID, AvailableCredit: d.AvailableCredit}, nil
		}
	})
	saga.Handle(p, contracts.ReleaseCreditInteraction, func(ctx context.Context, cmd *contracts.ReleaseCredit) (contracts.ReleaseCreditReply, error) {
		err := application.Commands.ReleaseCredit.Handle(ctx, command.ReleaseCredit{CustomerID: cmd.CustomerID, OrderID: cmd.OrderID})
		if err != nil {
			return nil, err
		}
		return &contracts.CreditReleased{CustomerID: cmd.CustomerID, OrderID: cmd.OrderID}, nil
	})
}

package command

import (
	"context"

	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

type ReserveCredit struct {
	CustomerID string
	OrderID    string
	Amount     int64
}

// CreditDecision is the answer to ReserveCredit.
type CreditDecision struct {
	Reserved        bool
	AvailableCredit int64
}

type ReserveCreditHandler struct{ repo domain.Repository }

func NewReserveCreditHandler(repo domain.Repository) ReserveCreditHandler {
	return ReserveCreditHandler{repo: repo}
}

// Handle reserves the order's credit, or decides it cannot. An unknown
// customer is domain.ErrNotFound.
func (h ReserveCreditHandler) Handle(ctx context.Context, cmd ReserveCredit) (CreditDecision, error) {
	var d CreditDecision
	err := h.repo.UpdateCredit(ctx, cmd.CustomerID, cmd.OrderID, func(c *domain.Customer) error {
		reserved, err := c.ReserveCredit(cmd.OrderID, cmd.Amount)
		d = CreditDecision{Reserved: reserved, AvailableCredit: c.AvailableCredit()}
		return err
	})
	return d, err
}

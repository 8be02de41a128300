package command

import (
	"context"
	"errors"

	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

type ReleaseCredit struct {
	CustomerID string
	OrderID    string
}

type ReleaseCreditHandler struct{ repo domain.Repository }

func NewReleaseCreditHandler(repo domain.Repository) ReleaseCreditHandler {
	return ReleaseCreditHandler{repo: repo}
}

// Handle releases the order's credit. An unknown customer holds nothing, so
// there is nothing to release and it is not an error.
func (h ReleaseCreditHandler) Handle(ctx context.Context, cmd ReleaseCredit) error {
	err := h.repo.UpdateCredit(ctx, cmd.CustomerID, cmd.OrderID, func(c *domain.Customer) error {
		c.ReleaseCredit(cmd.OrderID)
		return nil
	})
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	return err
}

package command

import (
	"context"

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

// Handle releases the order's credit. An unknown customer holds nothing:
// the release is recorded all the same (domain.MissingCustomer), so that
// a late reservation of the order holds nothing once it exists.
func (h ReleaseCreditHandler) Handle(ctx context.Context, cmd ReleaseCredit) error {
	return h.repo.UpdateCredit(ctx, cmd.CustomerID, cmd.OrderID, func(c *domain.Customer) error {
		c.ReleaseCredit(cmd.OrderID)
		return nil
	})
}

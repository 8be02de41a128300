// Package app is the order service's application layer: one use case a
// file, gathered in Application.
package app

import (
	"time"

	"github.com/kafkasaga/kafkasaga/services/order/app/command"
	"github.com/kafkasaga/kafkasaga/services/order/app/query"
	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

// Application is every use case of the order service.
type Application struct {
	Commands Commands
	Queries  Queries
}

type Commands struct {
	CreateOrder      command.CreateOrderHandler
	ApproveOrder     command.ApproveOrderHandler
	RejectOrder      command.RejectOrderHandler
	RepublishPending command.RepublishPendingHandler
	RequestCancel    command.RequestCancelHandler
	CancelOrder      command.CancelOrderHandler
	RefuseCancel     command.RefuseCancelHandler
}

type Queries struct {
	Order query.OrderHandler
}

// New wires the use cases to the repository and the event publisher.
func New(repo domain.Repository, events domain.Events, now func() time.Time) Application {
	return Application{
		Commands: Commands{
			CreateOrder:      command.NewCreateOrderHandler(repo, now),
			ApproveOrder:     command.NewApproveOrderHandler(repo),
			RejectOrder:      command.NewRejectOrderHandler(repo),
			RepublishPending: command.NewRepublishPendingHandler(repo, events, now),
			RequestCancel:    command.NewRequestCancelHandler(repo, now),
			CancelOrder:      command.NewCancelOrderHandler(repo),
			RefuseCancel:     command.NewRefuseCancelHandler(repo),
		},
		Queries: Queries{Order: query.NewOrderHandler(repo)},
	}
}

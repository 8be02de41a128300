// Package app is the customer service's application layer: one use case a
// file, gathered in Application. It speaks domain types and a repository;
// the ports translate HTTP and Kafka into these calls.
package app

import (
	"github.com/kafkasaga/kafkasaga/services/customer/app/command"
	"github.com/kafkasaga/kafkasaga/services/customer/app/query"
	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

// Application is every use case of the customer service.
type Application struct {
	Commands Commands
	Queries  Queries
}

type Commands struct {
	CreateCustomer command.CreateCustomerHandler
	ReserveCredit  command.ReserveCreditHandler
	ReleaseCredit  command.ReleaseCreditHandler
}

type Queries struct {
	Customer query.CustomerHandler
}

// New wires the use cases to the repository.
func New(repo domain.Repository) Application {
	return Application{
		Commands: Commands{
			CreateCustomer: command.NewCreateCustomerHandler(repo),
			ReserveCredit:  command.NewReserveCreditHandler(repo),
			ReleaseCredit:  command.NewReleaseCreditHandler(repo),
		},
		Queries: Queries{Customer: query.NewCustomerHandler(repo)},
	}
}

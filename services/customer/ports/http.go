// Package ports drives the customer application: the HTTP API and the
// command handlers on customer.commands.
package ports

import (
	"errors"
	"net/http"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/services/customer/app"
	"github.com/kafkasaga/kafkasaga/services/customer/app/command"
	"github.com/kafkasaga/kafkasaga/services/customer/domain"
)

type createCustomerRequest struct {
	Name        string `json:"name"`
	CreditLimit int64  `json:"creditLimit"`
}

// RegisterHTTP adds POST /customers and GET /customers/{id}.
func RegisterHTTP(s *httpserver.Server, application app.Application) {
	// A new customer's id derives from the request's Idempotency-Key; the
	// instance that receives a request without one draws one, so that the
	// instance owning the id, to which it forwards the request, stores it.
	// Customers are kept for good: unlike orders (HandleCreate), they
	// spread over the partitions whichever instance gets their requests.
	s.HandleKeyed("POST /customers", func(r *http.Request) (string, error) {
		key, err := httpserver.IdempotencyKey(r)
		return command.CustomerID(key), err
	}, func(w http.ResponseWriter, r *http.Request) {
		var req createCustomerRequest
		if err := httpserver.DecodeJSON(r, &req); err != nil {
			httpserver.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		id, err := application.Commands.CreateCustomer.Handle(r.Context(), command.CreateCustomer{
			Name: req.Name, CreditLimit: req.CreditLimit, IdempotencyKey: r.Header.Get(httpserver.HeaderIdempotencyKey),
		})
		if err != nil {
			writeError(w, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusCreated, map[string]string{"customerId": id})
	})
	s.HandleKeyed("GET /customers/{id}", httpserver.PathKey("id"), func(w http.ResponseWriter, r *http.Request) {
		c, err := application.Queries.Customer.Handle(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, c)
	})
}

func writeError(w http.ResponseWriter, err error) {
	if errors.Is(err, domain.ErrConflict) {
		httpserver.WriteError(w, http.StatusConflict, err.Error())
		return
	}
	httpserver.WriteAppError(w, err, domain.ErrInvalid, domain.ErrNotFound)
}

// Package ports drives the order application: the HTTP API and the command
// handlers on order.commands.
package ports

import (
	"errors"
	"net/http"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/services/order/app"
	"github.com/kafkasaga/kafkasaga/services/order/app/command"
	"github.com/kafkasaga/kafkasaga/services/order/app/query"
	"github.com/kafkasaga/kafkasaga/services/order/domain"
)

type createOrderRequest struct {
	CustomerID string `json:"customerId"`
	OrderTotal int64  `json:"orderTotal"`
}

// RegisterHTTP adds POST /orders, GET /orders/{id} and
// POST /orders/{id}/cancel.
func RegisterHTTP(s *httpserver.Server, application app.Application) {
	// A new order's id derives from its customer and the request's
	// Idempotency-Key; one drawn for a request without one places the
	// order on the instance that received it.
	s.HandleCreate("POST /orders", func(r *http.Request) (func(string) string, error) {
		var req createOrderRequest
		if err := httpserver.PeekJSON(r, &req); err != nil {
			return nil, err
		}
		return func(key string) string { return command.OrderID(req.CustomerID, key) }, nil
	}, func(w http.ResponseWriter, r *http.Request) {
		var req createOrderRequest
		if err := httpserver.DecodeJSON(r, &req); err != nil {
			httpserver.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		// An order whose saga cannot start is not accepted.
		if err := s.Ready(r.Context()); err != nil {
			httpserver.WriteUnavailable(w, "not ready: "+err.Error())
			return
		}
		key := r.Header.Get(httpserver.HeaderIdempotencyKey)
		o, err := application.Commands.CreateOrder.Handle(r.Context(), command.CreateOrder{
			CustomerID: req.CustomerID, OrderTotal: req.OrderTotal, IdempotencyKey: key,
		})
		if err != nil {
			writeError(w, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusCreated, map[string]string{"orderId": o.ID(), "state": string(o.State())})
	})
	s.HandleKeyed("GET /orders/{id}", httpserver.PathKey("id"), func(w http.ResponseWriter, r *http.Request) {
		o, err := application.Queries.Order.Handle(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, o)
	})
	// An APPROVED order is marked CANCELLING and its Cancel Order saga
	// started: 202 with the order, whose cancelSagaId names the saga. Sent
	// again while the saga runs, it answers the same and starts nothing.
	// The request that started the latest cancellation sent again, under
	// its Idempotency-Key (drawn when the client sent none, and answered),
	// gets the order as that cancellation left it: 202 while CANCELLING,
	// 200 once CANCELLED or refused; it never starts another.
	s.HandleKeyed("POST /orders/{id}/cancel", cancelKey, func(w http.ResponseWriter, r *http.Request) {
		// A cancellation whose saga cannot start is not accepted.
		if err := s.Ready(r.Context()); err != nil {
			httpserver.WriteUnavailable(w, "not ready: "+err.Error())
			return
		}
		o, err := application.Commands.RequestCancel.Handle(r.Context(), r.PathValue("id"), r.Header.Get(httpserver.HeaderIdempotencyKey))
		switch {
		case errors.Is(err, domain.ErrConflict):
			httpserver.WriteJSON(w, http.StatusConflict, map[string]string{"error": err.Error(), "state": string(o.State())})
		case err != nil:
			writeError(w, err)
		case o.State() == domain.Cancelling:
			httpserver.WriteJSON(w, http.StatusAccepted, query.View(o))
		default:
			httpserver.WriteJSON(w, http.StatusOK, query.View(o))
		}
	})
}

// cancelKey is the key of a cancellation: its order's id. It draws the
// request's Idempotency-Key when the client sent none, before the request
// may be forwarded, so that the answer, whatever it is, names the key to
// send it again under.
func cancelKey(r *http.Request) (string, error) {
	if _, err := httpserver.IdempotencyKey(r); err != nil {
		return "", err
	}
	return r.PathValue("id"), nil
}

func writeError(w http.ResponseWriter, err error) {
	if errors.Is(err, domain.ErrConflict) {
		httpserver.WriteError(w, http.StatusConflict, err.Error())
		return
	}
	httpserver.WriteAppError(w, err, domain.ErrInvalid, domain.ErrNotFound)
}

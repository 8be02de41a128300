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
	// Idempotency-Key; the instance that receives a request without one
	// draws one, so that the instance owning the id, to which it forwards
	// the request, stores it.
	s.HandleKeyed("POST /orders", func(r *http.Request) (string, error) {
		key, err := httpserver.IdempotencyKey(r)
		if err != nil {
			return "", err
		}
		var req createOrderRequest
		if err := httpserver.PeekJSON(r, &req); err != nil {
			return "", err
		}
		return command.OrderID(req.CustomerID, key), nil
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
	s.HandleKeyed("POST /orders/{id}/cancel", httpserver.PathKey("id"), func(w http.ResponseWriter, r *http.Request) {
		// A cancellation whose saga cannot start is not accepted.
		if err := s.Ready(r.Context()); err != nil {
			httpserver.WriteUnavailable(w, "not ready: "+err.Error())
			return
		}
		o, err := application.Commands.RequestCancel.Handle(r.Context(), r.PathValue("id"))
		switch {
		case errors.Is(err, domain.ErrConflict):
			httpserver.WriteJSON(w, http.StatusConflict, map[string]string{"error": err.Error(), "state": string(o.State())})
		case err != nil:
			writeError(w, err)
		default:
			httpserver.WriteJSON(w, http.StatusAccepted, query.View(o))
		}
	})
}

func writeError(w http.ResponseWriter, err error) {
	if errors.Is(err, domain.ErrConflict) {
		httpserver.WriteError(w, http.StatusConflict, err.Error())
		return
	}
	httpserver.WriteAppError(w, err, domain.ErrInvalid, domain.ErrNotFound)
}

// Package ports drives the payment application: the HTTP API and the
// command handlers on payment.commands.
package ports

import (
	"errors"
	"net/http"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/services/payment/app"
	"github.com/kafkasaga/kafkasaga/services/payment/domain"
)

// RegisterHTTP adds GET /payments/{orderId}.
func RegisterHTTP(s *httpserver.Server, application app.Application) {
	s.Handle("GET /payments/{orderId}", func(w http.ResponseWriter, r *http.Request) {
		p, err := application.Queries.Payment.Handle(r.Context(), r.PathValue("orderId"))
		switch {
		case errors.Is(err, domain.ErrNotFound):
			httpserver.WriteError(w, http.StatusNotFound, err.Error())
		case err != nil:
			httpserver.WriteError(w, http.StatusServiceUnavailable, err.Error())
		default:
			httpserver.WriteJSON(w, http.StatusOK, p)
		}
	})
}

// Package ports drives the payment application: the HTTP API and the
// command handlers on payment.commands.
package ports

import (
	"net/http"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/services/payment/app"
	"github.com/kafkasaga/kafkasaga/services/payment/domain"
)

// RegisterHTTP adds GET /payments/{orderId}.
func RegisterHTTP(s *httpserver.Server, application app.Application) {
	s.HandleKeyed("GET /payments/{orderId}", httpserver.PathKey("orderId"), func(w http.ResponseWriter, r *http.Request) {
		p, err := application.Queries.Payment.Handle(r.Context(), r.PathValue("orderId"))
		if err != nil {
			httpserver.WriteAppError(w, err, nil, domain.ErrNotFound)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, p)
	})
}

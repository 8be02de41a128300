// Package ports drives the orchestrator: GET /sagas/{id}, and the messages
// that start sagas and answer their commands.
package ports

import (
	"net/http"
	"time"

	"github.com/kafkasaga/kafkasaga/orchestrator/createorder"
	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/saga"
)

// sagaView is the JSON of GET /sagas/{id}.
type sagaView struct {
	SagaID        string            `json:"sagaId"`
	Type          string            `json:"type"`
	State         string            `json:"state"`
	Step          string            `json:"step"`
	Attempt       int               `json:"attempt"`
	FailureReason string            `json:"failureReason"`
	Data          *createorder.Data `json:"data"`
	History       []transitionView  `json:"history"`
}

type transitionView struct {
	At    time.Time `json:"at"`
	Event string    `json:"event"`
	State string    `json:"state"`
	Step  string    `json:"step"`
}

// RegisterHTTP adds GET /sagas/{id}; the id of a Create Order saga is its order id.
func RegisterHTTP(s *httpserver.Server, engine *saga.Engine[createorder.Data]) {
	s.HandleKeyed("GET /sagas/{id}", httpserver.PathKey("id"), func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		v, ok, err := engine.Instance(id)
		if err != nil {
			httpserver.WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if !ok {
			httpserver.WriteError(w, http.StatusNotFound, "saga "+id+" not found")
			return
		}
		data, err := engine.Data(v)
		if err != nil {
			httpserver.WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		view := sagaView{SagaID: v.SagaID, Type: v.SagaType, State: v.State, Step: engine.StepName(v),
			Attempt: v.Attempt, FailureReason: v.FailureReason, Data: data, History: make([]transitionView, len(v.History))}
		for i, t := range v.History {
			view.History[i] = transitionView{At: t.At, Event: t.Event, State: t.State, Step: t.Step}
		}
		httpserver.WriteJSON(w, http.StatusOK, view)
	})
}

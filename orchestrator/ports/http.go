// Package ports drives the orchestrator: GET /sagas/{id}, and the messages
// that start sagas and answer their commands.
package ports

import (
	"net/http"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/saga"
)

// sagaView is the JSON of GET /sagas/{id}.
type sagaView struct {
	SagaID        string           `json:"sagaId"`
	Type          string           `json:"type"`
	Version       int              `json:"version"` // of the saga definition it runs under
	State         string           `json:"state"`
	Step          string           `json:"step"`
	Attempt       int              `json:"attempt"`
	FailureReason string           `json:"failureReason"`
	Data          any              `json:"data"`
	History       []transitionView `json:"history"`
}

type transitionView struct {
	At    time.Time `json:"at"`
	Event string    `json:"event"`
	State string    `json:"state"`
	Step  string    `json:"step"`
	By    string    `json:"by"` // who asked for an operator action; "" for the engine's own transitions
}

// Lookup finds the saga with the given id among the sagas of one type.
type Lookup func(id string) (view *sagaView, ok bool, err error)

// Look finds sagas in engine.
func Look[D any](engine *saga.Engine[D]) Lookup {
	return func(id string) (*sagaView, bool, error) {
		v, ok, err := engine.Instance(id)
		if err != nil || !ok {
			return nil, false, err
		}
		data, err := engine.Data(v)
		if err != nil {
			return nil, false, err
		}
		view := &sagaView{SagaID: v.SagaID, Type: v.SagaType, Version: v.Version, State: v.State, Step: engine.StepName(v),
			Attempt: v.Attempt, FailureReason: v.FailureReason, Data: data, History: make([]transitionView, len(v.History))}
		for i, t := range v.History {
			view.History[i] = transitionView{At: t.At, Event: t.Event, State: t.State, Step: t.Step, By: t.By}
		}
		return view, true, nil
	}
}

// RegisterHTTP adds GET /sagas/{id}, answered by the first saga type that
// has the id; the id of a Create Order saga is its order id, that of a
// Cancel Order saga contracts.CancelOrderSagaID of the order id and the
// cancel attempt (the order's cancelSagaId), so no id names two sagas. Every saga
// type's instances are keyed, and so partitioned, by saga id.
func RegisterHTTP(s *httpserver.Server, sagas []Lookup) {
	s.HandleKeyed("GET /sagas/{id}", httpserver.PathKey("id"), func(w http.ResponseWriter, r *http.Request) {
		writeSaga(w, sagas, r.PathValue("id"))
	})
}

// writeSaga answers the saga with the given id, found by the first saga
// type that has it: 200 with its view, or 404.
func writeSaga(w http.ResponseWriter, sagas []Lookup, id string) {
	for _, look := range sagas {
		view, ok, err := look(id)
		if err != nil {
			httpserver.WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if ok {
			httpserver.WriteJSON(w, http.StatusOK, view)
			return
		}
	}
	httpserver.WriteError(w, http.StatusNotFound, "saga "+id+" not found")
}

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
	StartedAt     time.Time        `json:"startedAt"`
	UpdatedAt     time.Time        `json:"updatedAt"`
	Deadline      string           `json:"deadline"`   // RFC 3339; "" once ended
	WaitingFor    string           `json:"waitingFor"` // the record name of the pending command; "" once ended
	Overdue       bool             `json:"overdue"`    // the deadline has passed
	Data          any              `json:"data"`
	History       []transitionView `json:"history"`
}

type transitionView struct {
	At    time.Time `json:"at"`
	Event string    `json:"event"`
	State string    `json:"state"`
	Step  string    `json:"step"`
	// Attempt is the send of the step's command the transition made, 1
	// for the first; 0 once ended, and omitted where the history kept
	// too little to tell.
	Attempt int    `json:"attempt,omitempty"`
	By      string `json:"by"` // who asked for an operator action; "" for the engine's own transitions
}

// Lookup finds the saga with the given id among the sagas of one type.
type Lookup func(id string) (view *sagaView, ok bool, err error)

// Look finds sagas in engine, whose versions' outlines tell the command a
// saga waits for.
func Look[D any](engine *saga.Engine[D], versions ...saga.Outline) Lookup {
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
		attempts(view.History, v.Attempt)
		if n := len(v.History); n > 0 {
			view.StartedAt, view.UpdatedAt = v.History[0].At, v.History[n-1].At
		}
		if v.PendingCommandID != "" {
			view.Deadline = v.Deadline.UTC().Format(time.RFC3339Nano)
			view.Overdue = time.Now().After(v.Deadline)
			view.WaitingFor = waitingFor(v, versions)
		}
		return view, true, nil
	}
}

// waitingFor returns the record name of the command v waits a reply to.
func waitingFor(v saga.SagaInstance, versions []saga.Outline) string {
	for _, o := range versions {
		if o.Version != v.Version || v.Step < 0 || v.Step >= len(o.Steps) {
			continue
		}
		call := o.Steps[v.Step].Command
		if v.State == saga.StateCompensating {
			call = o.Steps[v.Step].Compensation
		}
		if call != nil {
			return call.Name
		}
	}
	return ""
}

// attempts sets each transition's attempt: a transition that leaves the
// saga on the step it was on sent that step's command again (a timeout, a
// retry), any other (an abort's included) sent a command for the first
// time. A full history keeps its first transition and its latest, and an
// older abort with the entry before it (saga's trimmed), so it may be cut
// after its first entry and after an abort at index 1 or 2: the run of
// sends each such cut may have gone through is counted from the end (the
// saga's attempt now), or, when the saga has moved on since, left unknown.
func attempts(h []transitionView, attempt int) {
	for i := range h {
		switch {
		case h[i].Step == "":
			h[i].Attempt = 0
		case i > 0 && h[i].Step == h[i-1].Step && h[i].Event != saga.EventAbort:
			h[i].Attempt = h[i-1].Attempt + 1
		default:
			h[i].Attempt = 1
		}
	}
	if len(h) < historyKept {
		return
	}
	for _, cut := range []int{1, 2, 3} {
		if cut > 1 && h[cut-1].Event != saga.EventAbort || h[cut].Step == "" || h[cut].Event == saga.EventAbort {
			continue
		}
		end := cut + 1
		for end < len(h) && h[end].Step == h[cut].Step {
			end++
		}
		for i := cut; i < end; i++ {
			h[i].Attempt = 0
			if end == len(h) {
				h[i].Attempt = attempt - (end - 1 - i)
			}
		}
	}
}

// historyKept is how many transitions a saga instance keeps at most: its
// first and its latest (package saga's maxHistory).
const historyKept = 64

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
			httpserver.WriteUnavailable(w, err.Error())
			return
		}
		if ok {
			httpserver.WriteJSON(w, http.StatusOK, view)
			return
		}
	}
	httpserver.WriteError(w, http.StatusNotFound, "saga "+id+" not found")
}

package ports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Actor acts on the sagas of one type for an operator. An id it does not
// hold is saga.ErrNoSaga, a saga whose state does not allow the action (or
// has moved on from what the operator saw) a *saga.StateError.
type Actor interface {
	Retry(ctx context.Context, id string, op saga.Operator) error
	Abort(ctx context.Context, id string, op saga.Operator) error
}

var _ Actor = (*saga.Engine[struct{}])(nil)

// Replayer publishes the dead letter at partition and offset of the
// dead-letter topic to the topic it came from: messaging.ReplayDeadLetter.
type Replayer func(ctx context.Context, partition int32, offset int64) (messaging.Replayed, error)

// ActionsConfig configures RegisterActions.
type ActionsConfig struct {
	// AdminToken is the bearer token the actions require; empty disables
	// them (every action answers 403).
	AdminToken string
	Sagas      []Lookup // every saga type's, to answer with the saga acted on
	Actors     []Actor  // every saga type's
	Replay     Replayer
	Logger     *slog.Logger
}

// replayTimeout bounds a replay: it reads the dead letter and publishes it
// with a client of its own.
const replayTimeout = 20 * time.Second

// RegisterActions adds the operator actions, each behind the admin token
// (httpserver.Admin), and GET /api/admin, which says whether they are
// enabled:
//
//   - POST /sagas/{id}/retry sends the saga's pending command again now;
//   - POST /sagas/{id}/abort makes the saga compensate and end REJECTED
//     with the reason ABORTED;
//   - POST /deadletters/{partition}/{offset}/replay publishes a dead letter
//     to the topic it came from.
//
// A saga action's body, optional, is the saga as the operator saw it,
// {"step", "attempt"} as GET /sagas/{id} shows them: the action runs only
// if the saga still waits on that step and attempt. The saga actions
// answer 200 with the saga as GET /sagas/{id} shows it, 404 for an id no
// saga type has, and 409 {"error", "state"} for a saga whose state does
// not allow the action (ended, say, or moved on). They are keyed by saga id:
// an instance that does not own the saga's partition forwards them to the
// one that does, which the engine's write must run on.
func RegisterActions(s *httpserver.Server, cfg ActionsConfig) {
	// A token set with a newline (a secret made from a file, say) is the
	// token without it: a header cannot carry one.
	cfg.AdminToken = strings.TrimSpace(cfg.AdminToken)
	enabled := cfg.AdminToken != ""
	s.Handle("GET /api/admin", func(w http.ResponseWriter, _ *http.Request) {
		httpserver.WriteJSON(w, http.StatusOK, map[string]bool{"actionsEnabled": enabled})
	})
	s.HandleKeyed("POST /sagas/{id}/retry", httpserver.PathKey("id"),
		httpserver.Admin(cfg.AdminToken, sagaAction(cfg, Actor.Retry)))
	s.HandleKeyed("POST /sagas/{id}/abort", httpserver.PathKey("id"),
		httpserver.Admin(cfg.AdminToken, sagaAction(cfg, Actor.Abort)))
	s.Handle("POST /deadletters/{partition}/{offset}/replay",
		httpserver.Admin(cfg.AdminToken, replay(cfg)))
}

// sagaAction runs act on the saga of the path's id, with the first actor
// that holds it.
func sagaAction(cfg ActionsConfig, act func(a Actor, ctx context.Context, id string, op saga.Operator) error) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, operator string) {
		id := r.PathValue("id")
		var seen struct {
			Step    string `json:"step"`
			Attempt int    `json:"attempt"`
		}
		if err := httpserver.DecodeJSON(r, &seen); err != nil && !errors.Is(err, httpserver.ErrEmptyBody) {
			httpserver.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		if seen.Attempt < 0 {
			httpserver.WriteError(w, http.StatusBadRequest, "attempt must be a whole number from 1 (0 or none: any)")
			return
		}
		for _, a := range cfg.Actors {
			err := act(a, r.Context(), id, saga.Operator{By: operator, Step: seen.Step, Attempt: seen.Attempt})
			var refused *saga.StateError
			switch {
			case errors.Is(err, saga.ErrNoSaga):
				continue
			case errors.As(err, &refused):
				httpserver.WriteJSON(w, http.StatusConflict, map[string]string{"error": err.Error(), "state": refused.State})
			case err != nil: // Kafka or the registry, or the partition moved: it passes
				httpserver.WriteUnavailable(w, err.Error())
			default:
				writeSaga(w, cfg.Sagas, id)
			}
			return
		}
		httpserver.WriteError(w, http.StatusNotFound, "saga "+id+" not found")
	}
}

func replay(cfg ActionsConfig) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, operator string) {
		partition, err1 := strconv.ParseInt(r.PathValue("partition"), 10, 32)
		offset, err2 := strconv.ParseInt(r.PathValue("offset"), 10, 64)
		if err1 != nil || err2 != nil || partition < 0 || offset < 0 {
			httpserver.WriteError(w, http.StatusBadRequest, fmt.Sprintf(
				"partition %q and offset %q: want whole numbers from 0", r.PathValue("partition"), r.PathValue("offset")))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), replayTimeout)
		defer cancel()
		to, err := cfg.Replay(ctx, int32(partition), offset)
		switch {
		case errors.Is(err, messaging.ErrNoDeadLetter):
			httpserver.WriteError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, messaging.ErrNotReplayable):
			httpserver.WriteError(w, http.StatusConflict, err.Error())
		case err != nil:
			httpserver.WriteUnavailable(w, err.Error())
		default:
			cfg.Logger.Info("dead letter replayed", "partition", partition, "offset", offset,
				"topic", to.Topic, "to_partition", to.Partition, "to_offset", to.Offset, "by", operator)
			httpserver.WriteJSON(w, http.StatusOK, to)
		}
	}
}

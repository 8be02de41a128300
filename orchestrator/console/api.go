package console

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Limits of the API's parameters.
const (
	defaultLimit   = 50
	maxLimit       = 500
	defaultMinutes = 15
	maxMinutes     = int(statsKept / time.Minute)
)

// Register serves the console's API on s.
func (c *Console) Register(s *httpserver.Server) {
	s.Handle("GET /api/sagas", c.caught(c.listSagas))
	s.Handle("GET /api/sagas/stream", c.caught(bare(func(w http.ResponseWriter, r *http.Request) {
		serveEvents(w, r, c.sagaEvents, "saga")
	})))
	s.Handle("GET /api/deadletters", c.caught(c.listDeadLetters))
	s.Handle("GET /api/deadletters/stream", c.caught(bare(func(w http.ResponseWriter, r *http.Request) {
		serveEvents(w, r, c.deadEvents, "deadletter")
	})))
	s.Handle("GET /api/stats", c.caught(c.stats))
	s.Handle("GET /api/sagatypes", bare(c.sagaTypes))
}

// bare refuses a request with a parameter to a route that takes none, as
// params refuses one a route does not name: a stream asked for some
// sagas only would send every one.
func bare(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := params(w, r); ok {
			h(w, r)
		}
	}
}

// caught answers 503 until the index has read the topics to the end they
// had at start: a part of them would list part of the sagas, and a stream
// sends nothing of what is read until then, so a page that opened one
// meanwhile would show its rows stale for good. Refused, it retries, and
// reads the list again once its stream opens.
func (c *Console) caught(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.caughtUp.Load() {
			httpserver.WriteUnavailable(w, fmt.Sprintf("console index loading: %d records read", c.records.Load()))
			return
		}
		h(w, r)
	}
}

// badValue is the answer to a parameter with a value the API does not
// know: what it accepts.
type badValue struct {
	Error   string   `json:"error"`
	Allowed []string `json:"allowed"`
}

func writeBad(w http.ResponseWriter, msg string, allowed ...string) {
	if allowed == nil {
		allowed = []string{} // a route that takes no parameter: none allowed
	}
	httpserver.WriteJSON(w, http.StatusBadRequest, badValue{Error: msg, Allowed: allowed})
}

// params reads a request's query, refusing one that does not parse (URL
// values drop the pairs they cannot read, and a filter silently dropped
// lists what it should not), a parameter it does not name, and one given
// twice.
func params(w http.ResponseWriter, r *http.Request, names ...string) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeBad(w, fmt.Sprintf("malformed query: %v", err), names...)
		return nil, false
	}
	for name, vs := range q {
		switch {
		case !slices.Contains(names, name):
			writeBad(w, fmt.Sprintf("unknown parameter %q", name), names...)
			return nil, false
		case len(vs) > 1:
			writeBad(w, fmt.Sprintf("parameter %q given %d times", name, len(vs)), names...)
			return nil, false
		}
	}
	return q, true
}

// oneOf checks that the parameter, if given, is one of allowed.
func oneOf(w http.ResponseWriter, q url.Values, name string, allowed []string) (string, bool) {
	v := q.Get(name)
	if v != "" && !slices.Contains(allowed, v) {
		writeBad(w, fmt.Sprintf("unknown %s %q", name, v), allowed...)
		return "", false
	}
	return v, true
}

// number reads an integer parameter from lo to hi, def if it is absent.
func number(w http.ResponseWriter, q url.Values, name string, def, lo, hi int) (int, bool) {
	v := q.Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		writeBad(w, fmt.Sprintf("%s %q is not an integer from %d to %d", name, v, lo, hi), fmt.Sprintf("an integer from %d to %d", lo, hi))
		return 0, false
	}
	return n, true
}

var states = []string{saga.StateRunning, saga.StateCompensating, saga.StateCompleted, saga.StateRejected}

// sagaList is the JSON of GET /api/sagas.
type sagaList struct {
	Sagas []Summary `json:"sagas"`
	Next  string    `json:"next"`
	Total int       `json:"total"`
}

func (c *Console) listSagas(w http.ResponseWriter, r *http.Request) {
	q, ok := params(w, r, "type", "state", "step", "minAge", "q", "limit", "before")
	if !ok {
		return
	}
	var types, steps []string
	for _, t := range c.cfg.Types {
		types = append(types, t.Type)
		for _, s := range slices.Concat(t.Steps, t.OtherSteps) {
			if !slices.Contains(steps, s) {
				steps = append(steps, s)
			}
		}
	}
	query := Query{Prefix: q.Get("q"), Now: time.Now()}
	if query.Type, ok = oneOf(w, q, "type", types); !ok {
		return
	}
	if query.State, ok = oneOf(w, q, "state", states); !ok {
		return
	}
	if query.Step, ok = oneOf(w, q, "step", steps); !ok {
		return
	}
	if v := q.Get("minAge"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeBad(w, fmt.Sprintf("minAge %q is not a duration of 0 or more", v), "a Go duration: 90s, 15m, 2h30m")
			return
		}
		query.MinAge = d
	}
	if query.Limit, ok = number(w, q, "limit", defaultLimit, 1, maxLimit); !ok {
		return
	}
	if v := q.Get("before"); v != "" {
		cur, err := decodeCursor(v)
		if err != nil {
			writeBad(w, fmt.Sprintf("before %q is not a cursor", v), `the "next" of an earlier answer`)
			return
		}
		query.After = &cur
	}
	page := c.index.List(query)
	out := sagaList{Sagas: page.Sagas, Total: page.Total}
	if page.Next != nil {
		out.Next = encodeCursor(*page.Next)
	}
	httpserver.WriteJSON(w, http.StatusOK, out)
}

// A saga cursor is opaque to clients: base64 of "<started ms>:<saga id>".
func encodeCursor(c Cursor) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%s", c.Started, c.ID))
}

func decodeCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, err
	}
	ms, id, ok := strings.Cut(string(b), ":")
	started, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || id == "" {
		return Cursor{}, fmt.Errorf("malformed cursor")
	}
	return Cursor{Started: started, ID: id}, nil
}

// A dead letters' cursor is opaque too: base64 of "<timestamp
// ms>:<partition>:<offset>".
func encodeDeadLetterCursor(c DeadLetterCursor) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%d:%d", c.Timestamp, c.Partition, c.Offset))
}

func decodeDeadLetterCursor(s string) (DeadLetterCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return DeadLetterCursor{}, err
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 {
		return DeadLetterCursor{}, fmt.Errorf("malformed cursor")
	}
	ts, err1 := strconv.ParseInt(parts[0], 10, 64)
	partition, err2 := strconv.ParseInt(parts[1], 10, 32)
	offset, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return DeadLetterCursor{}, fmt.Errorf("malformed cursor: %w", err)
	}
	return DeadLetterCursor{Timestamp: ts, Partition: int32(partition), Offset: offset}, nil
}

// deadLetterList is the JSON of GET /api/deadletters.
type deadLetterList struct {
	DeadLetters []DeadLetter `json:"deadLetters"`
	Next        string       `json:"next"`
}

func (c *Console) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q, ok := params(w, r, "limit", "before")
	if !ok {
		return
	}
	limit, ok := number(w, q, "limit", defaultLimit, 1, maxLimit)
	if !ok {
		return
	}
	var after *DeadLetterCursor
	if v := q.Get("before"); v != "" {
		cur, err := decodeDeadLetterCursor(v)
		if err != nil {
			writeBad(w, fmt.Sprintf("before %q is not a cursor", v), `the "next" of an earlier answer`)
			return
		}
		after = &cur
	}
	list, next := c.deadLetters.page(r.Context(), after, limit)
	out := deadLetterList{DeadLetters: list}
	if next != nil {
		out.Next = encodeDeadLetterCursor(*next)
	}
	httpserver.WriteJSON(w, http.StatusOK, out)
}

func (c *Console) stats(w http.ResponseWriter, r *http.Request) {
	q, ok := params(w, r, "minutes")
	if !ok {
		return
	}
	n, ok := number(w, q, "minutes", defaultMinutes, 1, maxMinutes)
	if !ok {
		return
	}
	if !c.statsReady.Load() {
		httpserver.WriteUnavailable(w, fmt.Sprintf("console stats loading: %d older sagas of the last day read", c.backfilled.Load()))
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, map[string][]Minute{"minutes": c.index.Stats(time.Now(), n)})
}

// sagaTypeView is an entry of GET /api/sagatypes.
type sagaTypeView struct {
	Type    string   `json:"type"`
	Version int      `json:"version"`
	Steps   []string `json:"steps"`
}

func (c *Console) sagaTypes(w http.ResponseWriter, _ *http.Request) {
	out := []sagaTypeView{}
	for _, t := range c.cfg.Types {
		out = append(out, sagaTypeView{Type: t.Type, Version: t.Version, Steps: t.Steps})
	}
	httpserver.WriteJSON(w, http.StatusOK, out)
}

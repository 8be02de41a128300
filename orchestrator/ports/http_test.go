package ports

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/saga"
)

// history makes transitions on the given steps, n of each, in order.
func history(runs ...any) []transitionView {
	var h []transitionView
	for i := 0; i < len(runs); i += 2 {
		for range runs[i+1].(int) {
			h = append(h, transitionView{Step: runs[i].(string)})
		}
	}
	return h
}

func TestAttemptsCountTheSendsOfEachStep(t *testing.T) {
	tests := []struct {
		name    string
		h       []transitionView
		attempt int // the saga's now
		want    []int
	}{
		{"answered at once", history("a", 1, "b", 1, "", 1), 0, []int{1, 1, 0}},
		{"re-sent twice, then answered", history("a", 3, "b", 1), 1, []int{1, 2, 3, 1}},
		{"compensated after timeouts", history("a", 2, "a:compensate", 2, "", 1), 0, []int{1, 2, 1, 2, 0}},
		{"kept whole, one short of the cut", history("a", 1, "b", historyKept-2), historyKept - 2,
			slices.Concat([]int{1}, seq(1, historyKept-2))},
		{"cut, still on the step the cut ran through", history("a", 1, "b", historyKept-1), 500,
			slices.Concat([]int{1}, seq(500-(historyKept-2), historyKept-1))},
		{"cut, then moved on: the run the cut ran through is unknown", history("a", 1, "b", 10, "c", historyKept-11), historyKept - 11,
			slices.Concat([]int{1}, make([]int, 10), seq(1, historyKept-11))},
		// An abort older than the newest is kept with the entry before
		// it, and the cut is then after the abort.
		{"cut after a kept abort, still on the step the cut ran through", aborted(history("a", 1, "b", 1), "b:c", 0, "a:c", historyKept-3), 118,
			slices.Concat([]int{1, 0, 1}, seq(118-(historyKept-4), historyKept-3))},
		{"cut after a kept abort, then moved on", aborted(history("a", 1, "b", 1), "b:c", 10, "a:c", historyKept-13), historyKept - 13,
			slices.Concat([]int{1, 0, 1}, make([]int, 10), seq(1, historyKept-13))},
		{"an abort kept as the second entry", aborted(history("a", 1), "a:c", historyKept-2), 200,
			slices.Concat([]int{1, 1}, seq(200-(historyKept-3), historyKept-2))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts(tt.h, tt.attempt)
			var got []int
			for _, v := range tt.h {
				got = append(got, v.Attempt)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// aborted appends to h an abort that leaves the saga on step, then
// more transitions as history makes them.
func aborted(h []transitionView, step string, n int, more ...any) []transitionView {
	h = append(h, transitionView{Event: saga.EventAbort, Step: step})
	return append(append(h, history(step, n)...), history(more...)...)
}

// seq returns n numbers from first on.
func seq(first, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = first + i
	}
	return s
}

// A saga that cannot be read now (its partition moving, the registry
// down) is answered 503 with Retry-After: the client tries again soon.
func TestASagaThatCannotBeReadAsksForARetry(t *testing.T) {
	s, err := httpserver.New(httpserver.Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	RegisterHTTP(s, []Lookup{func(string) (*sagaView, bool, error) {
		return nil, false, errors.New("createorder.sagas/o1: key not owned by this instance")
	}})
	s.MarkReady()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/sagas/o1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("GET /sagas/o1 that cannot be read: got %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

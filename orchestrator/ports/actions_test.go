package ports_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/orchestrator/createorder"
	"github.com/kafkasaga/kafkasaga/orchestrator/ports"
	"github.com/kafkasaga/kafkasaga/platform/httpserver"
	"github.com/kafkasaga/kafkasaga/platform/messaging"
	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/saga/sagatest"
)

const token = "s3cret"

// api serves the orchestrator's saga routes and actions for a Create Order
// engine on the saga test harness, with the given admin token. Its
// dead letters are the ones in replayable, by "partition/offset".
func api(t *testing.T, adminToken string, replayable map[string]messaging.Replayed) (*sagatest.Harness[createorder.Data], string) {
	t.Helper()
	h := sagatest.NewHarness(t, createorder.Definition(), saga.EngineConfig{StepTimeout: 10 * time.Second, MaxAttempts: 3})
	s, err := httpserver.New(httpserver.Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sagas := []ports.Lookup{ports.Look(h.Engine)}
	ports.RegisterHTTP(s, sagas)
	ports.RegisterActions(s, ports.ActionsConfig{
		AdminToken: adminToken,
		Sagas:      sagas,
		Actors:     []ports.Actor{h.Engine},
		Replay: func(_ context.Context, partition int32, offset int64) (messaging.Replayed, error) {
			if to, ok := replayable[fmt.Sprintf("%d/%d", partition, offset)]; ok {
				return to, nil
			}
			return messaging.Replayed{}, fmt.Errorf("%w at partition %d, offset %d", messaging.ErrNoDeadLetter, partition, offset)
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	s.MarkReady()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return h, srv.URL
}

// call sends a request with the given headers (name, value, ...) and
// returns the status and the JSON body decoded.
func call(t *testing.T, method, url string, headers ...string) (int, map[string]any) {
	t.Helper()
	return callWith(t, method, url, "", headers...)
}

// callWith is call with a body.
func callWith(t *testing.T, method, url, payload string, headers ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, url, ct)
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("%s %s: got %d %s, not a JSON object: %v", method, url, resp.StatusCode, b, err)
	}
	return resp.StatusCode, body
}

// admin are the headers of an operator's request.
var admin = []string{"Authorization", "Bearer " + token, httpserver.HeaderOperator, "ops-alice"}

func startOrder(h *sagatest.Harness[createorder.Data], id string) {
	h.Start(id, createorder.Data{OrderID: id, CustomerID: "c1", OrderTotal: 100})
}

// lastEntry returns the last entry of a saga's history in its JSON.
func lastEntry(t *testing.T, saga map[string]any) map[string]any {
	t.Helper()
	history, _ := saga["history"].([]any)
	if len(history) == 0 {
		t.Fatalf("saga %v: no history", saga)
	}
	return history[len(history)-1].(map[string]any)
}

func TestActionsNeedTheAdminToken(t *testing.T) {
	h, url := api(t, token, nil)
	startOrder(h, "o1")
	_, off := api(t, "", nil)
	tests := []struct {
		name       string
		url        string
		headers    []string
		wantStatus int
		wantError  string
	}{
		{"no token", url, nil, 401, "admin actions need the header Authorization: Bearer <ADMIN_TOKEN>"},
		{"wrong token", url, []string{"Authorization", "Bearer guess"}, 403, "wrong admin token"},
		{"disabled", off, admin, 403, "admin actions are disabled: ADMIN_TOKEN is not set"},
	}
	for _, tt := range tests {
		for _, path := range []string{"/sagas/o1/retry", "/sagas/o1/abort", "/deadletters/0/0/replay"} {
			status, body := call(t, http.MethodPost, tt.url+path, tt.headers...)
			if status != tt.wantStatus || body["error"] != tt.wantError {
				t.Errorf("%s: POST %s: got %d %v, want %d %q", tt.name, path, status, body, tt.wantStatus, tt.wantError)
			}
		}
	}
	if got := len(h.Sent()); got != 1 {
		t.Errorf("commands sent: got %d, want only the first", got)
	}
	// A token set with a newline (a secret made from a file) is the token
	// without it, which a header can carry; one of white space alone is none.
	newline, h2 := api(t, token+"\n", nil)
	startOrder(newline, "o1")
	if status, body := call(t, http.MethodPost, h2+"/sagas/o1/retry", admin...); status != 200 {
		t.Errorf("the token, set with a newline: got %d %v, want 200", status, body)
	}
	_, blank := api(t, " \n", nil)
	for base, want := range map[string]bool{url: true, off: false, blank: false} {
		if status, body := call(t, http.MethodGet, base+"/api/admin"); status != 200 || body["actionsEnabled"] != want {
			t.Errorf("GET /api/admin: got %d %v, want 200 actionsEnabled %v", status, body, want)
		}
	}
}

func TestRetryAndAbortOverHTTP(t *testing.T) {
	h, url := api(t, token, nil)
	startOrder(h, "o1")

	status, body := call(t, http.MethodPost, url+"/sagas/nope/retry", admin...)
	if status != 404 || body["error"] != "saga nope not found" {
		t.Errorf("retry of an unknown saga: got %d %v, want 404 saga nope not found", status, body)
	}

	status, body = call(t, http.MethodPost, url+"/sagas/o1/retry", admin...)
	if status != 200 || body["state"] != saga.StateRunning || body["step"] != "reserve_credit" || body["attempt"] != 2.0 {
		t.Errorf("retry: got %d %v, want 200 RUNNING reserve_credit attempt 2", status, body)
	} else if e := lastEntry(t, body); e["event"] != saga.EventRetry || e["by"] != "ops-alice" {
		t.Errorf("retry: got last history entry %v, want retry by ops-alice", e)
	}
	if got := h.Last().Msg.Metadata.Get(saga.HeaderAttempt); len(h.Sent()) != 2 || got != "2" {
		t.Errorf("retry: got %d commands sent, the last attempt %s; want 2, attempt 2", len(h.Sent()), got)
	}

	status, body = call(t, http.MethodPost, url+"/sagas/o1/abort", admin...)
	if status != 200 || body["state"] != saga.StateCompensating || body["failureReason"] != saga.ReasonAborted ||
		body["step"] != "reserve_credit:compensate" {
		t.Errorf("abort: got %d %v, want 200 COMPENSATING ABORTED at reserve_credit:compensate", status, body)
	} else if e := lastEntry(t, body); e["event"] != saga.EventAbort || e["by"] != "ops-alice" {
		t.Errorf("abort: got last history entry %v, want abort by ops-alice", e)
	}

	status, body = call(t, http.MethodPost, url+"/sagas/o1/abort", admin...)
	if status != 409 || body["state"] != saga.StateCompensating || !strings.Contains(body["error"].(string), "compensating already") {
		t.Errorf("abort while compensating: got %d %v, want 409 with state COMPENSATING", status, body)
	}

	// The compensations answered, the saga has ended.
	if err := h.Reply(h.Last(), &contracts.CreditReleased{CustomerID: "c1", OrderID: "o1"}); err != nil {
		t.Fatal(err)
	}
	if err := h.Reply(h.Last(), &contracts.OrderRejected{OrderID: "o1", Reason: saga.ReasonAborted}); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"retry", "abort"} {
		status, body = call(t, http.MethodPost, url+"/sagas/o1/"+action, admin...)
		want := action + " saga o1: it has ended"
		if status != 409 || body["state"] != saga.StateRejected || body["error"] != want {
			t.Errorf("%s of an ended saga: got %d %v, want 409 %q with state REJECTED", action, status, body, want)
		}
	}
	if status, body := call(t, http.MethodGet, url+"/sagas/o1"); status != 200 || body["failureReason"] != saga.ReasonAborted {
		t.Errorf("GET /sagas/o1: got %d %v, want 200 REJECTED ABORTED", status, body)
	}
}

// An action's body names the saga as the operator saw it; one that moved
// on since is left as it is, and a body that does not say it is refused.
func TestAnActionNamesTheSagaAsSeen(t *testing.T) {
	h, url := api(t, token, nil)
	startOrder(h, "o1") // reserve_credit, attempt 1
	tests := []struct {
		body       string
		wantStatus int
		wantError  string
	}{
		{`{"step":"authorize_payment"}`, 409, "it has moved on: it waits on reserve_credit, attempt 1"},
		{`{"step":"reserve_credit","attempt":2}`, 409, "it has moved on: it waits on reserve_credit, attempt 1"},
		{`{"step":"reserve_credit","attempt":-1}`, 400, "attempt must be a whole number from 1 (0 or none: any)"},
		{`{"step":"reserve_credit","attempts":1}`, 400, `unknown field "attempts"`},
		{`{"step":1}`, 400, `field "step" must be a string`},
		{`reserve_credit`, 400, "malformed JSON"},
		{`null`, 400, "request body must be a JSON object"}, // not the saga whatever it waits on
	}
	for _, action := range []string{"retry", "abort"} {
		for _, tt := range tests {
			status, body := callWith(t, http.MethodPost, url+"/sagas/o1/"+action, tt.body, admin...)
			if msg, _ := body["error"].(string); status != tt.wantStatus || !strings.Contains(msg, tt.wantError) {
				t.Errorf("%s with %s: got %d %v, want %d %q", action, tt.body, status, body, tt.wantStatus, tt.wantError)
			}
		}
	}
	if got := len(h.Sent()); got != 1 {
		t.Errorf("commands sent: got %d, want only the first", got)
	}
	status, body := callWith(t, http.MethodPost, url+"/sagas/o1/retry", `{"step":"reserve_credit","attempt":1}`, admin...)
	if status != 200 || body["attempt"] != 2.0 {
		t.Errorf("retry of the saga as seen: got %d %v, want 200 attempt 2", status, body)
	}
}

func TestReplayOverHTTP(t *testing.T) {
	_, url := api(t, token, map[string]messaging.Replayed{"3/17": {Topic: "customer.commands", Partition: 5, Offset: 99}})
	tests := []struct {
		path       string
		wantStatus int
		want       map[string]any
	}{
		{"/deadletters/3/17/replay", 200, map[string]any{"topic": "customer.commands", "partition": 5.0, "offset": 99.0}},
		{"/deadletters/3/18/replay", 404, map[string]any{"error": "no such dead letter at partition 3, offset 18"}},
		{"/deadletters/x/17/replay", 400, map[string]any{"error": `partition "x" and offset "17": want whole numbers from 0`}},
		{"/deadletters/3/-1/replay", 400, map[string]any{"error": `partition "3" and offset "-1": want whole numbers from 0`}},
		{"/deadletters/4294967296/0/replay", 400, map[string]any{"error": `partition "4294967296" and offset "0": want whole numbers from 0`}},
	}
	for _, tt := range tests {
		status, body := call(t, http.MethodPost, url+tt.path, admin...)
		if status != tt.wantStatus || fmt.Sprint(body) != fmt.Sprint(tt.want) {
			t.Errorf("POST %s: got %d %v, want %d %v", tt.path, status, body, tt.wantStatus, tt.want)
		}
	}
}

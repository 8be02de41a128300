package httpserver_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
)

type createOrder struct {
	CustomerID string `json:"customerId"`
	OrderTotal int64  `json:"orderTotal"`
}

func TestDecodeJSON(t *testing.T) {
	tooLarge := `{"customerId":"` + strings.Repeat("x", 70_000) + `","orderTotal":1}`
	for _, tc := range []struct {
		name    string
		body    string
		want    createOrder
		wantErr string // "" for success
	}{
		{name: "valid", body: `{"customerId":"c1","orderTotal":4200}`, want: createOrder{"c1", 4200}},
		{name: "valid with trailing newline", body: "{\"customerId\":\"c1\",\"orderTotal\":1}\n", want: createOrder{"c1", 1}},
		{name: "empty body", body: "", wantErr: "request body is empty"},
		{name: "malformed", body: `{"customerId":`, wantErr: "malformed JSON: unexpected EOF"},
		{name: "syntax error", body: `{customerId: "c1"}`, wantErr: "malformed JSON: invalid character 'c' looking for beginning of object key string"},
		{name: "unknown field", body: `{"customerId":"c1","total":1}`, wantErr: `unknown field "total"`},
		{name: "wrong type", body: `{"customerId":"c1","orderTotal":"much"}`, wantErr: `field "orderTotal" must be a int64`},
		{name: "not an object", body: `["c1", 4200]`, wantErr: "request body must be a JSON object"},
		{name: "null", body: " \nnull", wantErr: "request body must be a JSON object"},
		{name: "two values", body: `{"customerId":"c1"}{"customerId":"c2"}`, wantErr: "malformed JSON: more than one value in the body"},
		{name: "too large", body: tooLarge, wantErr: "request body is larger than 65536 bytes"},
		{name: "a closing brace after the object", body: `{"customerId":"c1","orderTotal":1}}`, wantErr: "malformed JSON: invalid character '}' after the value"},
		{name: "a closing bracket after the object", body: `{"customerId":"c1","orderTotal":1}]`, wantErr: "malformed JSON: invalid character ']' after the value"},
		// encoding/json matches names ignoring case, and keeps the last.
		{name: "a field given twice", body: `{"customerId":"c1","orderTotal":1,"orderTotal":900}`, wantErr: `field "orderTotal" is given twice`},
		{name: "a field given twice in two cases", body: `{"customerId":"A","CustomerID":"B","orderTotal":1}`, wantErr: `field "CustomerID" is given twice`},
		{name: "a field in another case", body: `{"CUSTOMERID":"c1","orderTotal":1}`, wantErr: `unknown field "CUSTOMERID" (field names are case-sensitive: "customerId")`},
		{name: "too large after padding", body: `{"customerId":"c1","orderTotal":1}` + strings.Repeat(" ", 70_000) + "x", wantErr: "request body is larger than 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(tc.body))
			var got createOrder
			err := httpserver.DecodeJSON(r, &got)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("DecodeJSON(%.40q): got error %q, want none", tc.body, err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("DecodeJSON(%.40q): got no error, want %q", tc.body, tc.wantErr)
			case tc.wantErr != "" && err.Error() != tc.wantErr:
				t.Fatalf("DecodeJSON(%.40q): got error %q, want %q", tc.body, err, tc.wantErr)
			}
			if tc.wantErr == "" && got != tc.want {
				t.Errorf("DecodeJSON(%.40q): got %+v, want %+v", tc.body, got, tc.want)
			}
		})
	}
}

func TestWriteErrorWritesAJSONBody(t *testing.T) {
	w := httptest.NewRecorder()
	httpserver.WriteError(w, http.StatusConflict, `order "o1" exists`)
	if w.Code != http.StatusConflict {
		t.Errorf("status: got %d, want %d", w.Code, http.StatusConflict)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", w.Body, err)
	}
	if body["error"] != `order "o1" exists` {
		t.Errorf("error: got %q, want %q", body["error"], `order "o1" exists`)
	}
}

// A value JSON cannot write answers 500 with the reason: it answered the
// status asked for with an empty body, which a client cannot read.
func TestWriteJSONOfWhatJSONCannotWriteAnswers500(t *testing.T) {
	w := httptest.NewRecorder()
	httpserver.WriteJSON(w, http.StatusOK, map[string]time.Time{"at": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); w.Code != http.StatusInternalServerError || err != nil || !strings.Contains(body["error"], "year outside of range") {
		t.Errorf("got %d %q, want 500 with a JSON error that says why", w.Code, w.Body)
	}
}

func TestWriteUnavailableAsksForARetry(t *testing.T) {
	w := httptest.NewRecorder()
	httpserver.WriteUnavailable(w, "partition of key o1 is moving")
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("status: got %d, want %d", w.Code, http.StatusServiceUnavailable)
	}
	if ra := w.Header().Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After: got %q, want 1", ra)
	}
	if !strings.Contains(w.Body.String(), `"error":"partition of key o1 is moving"`) {
		t.Errorf("body: got %s, want the error", w.Body)
	}
}

func TestWriteAppError(t *testing.T) {
	invalid, notFound := errors.New("invalid"), errors.New("not found")
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"wraps invalid", fmt.Errorf("%w order: total", invalid), http.StatusBadRequest},
		{"wraps not found", fmt.Errorf("order o1: %w", notFound), http.StatusNotFound},
		{"anything else", errors.New("kafka: connection refused"), http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			httpserver.WriteAppError(rec, tt.err, invalid, notFound)
			if rec.Code != tt.want || !strings.Contains(rec.Body.String(), `"error":"`+tt.err.Error()) {
				t.Errorf("%v: got %d %s, want %d with the error", tt.err, rec.Code, rec.Body, tt.want)
			}
			if retry := rec.Header().Get("Retry-After"); (retry == "1") != (tt.want == http.StatusServiceUnavailable) {
				t.Errorf("%v: Retry-After %q with status %d, want 1 with 503 only", tt.err, retry, rec.Code)
			}
		})
	}
	rec := httptest.NewRecorder()
	httpserver.WriteAppError(rec, notFound, nil, notFound)
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil invalid sentinel: got %d, want 404", rec.Code)
	}
}

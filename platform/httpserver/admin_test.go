package httpserver_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kafkasaga/kafkasaga/platform/httpserver"
)

// acted answers who asked, and how, for an admin action that ran.
func acted(instance string) func(w http.ResponseWriter, r *http.Request, operator string) {
	return func(w http.ResponseWriter, r *http.Request, operator string) {
		httpserver.WriteJSON(w, http.StatusOK, map[string]string{"by": instance, "operator": operator, "method": r.Method})
	}
}

func TestAdmin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		token      string // the process's ADMIN_TOKEN
		headers    map[string]string
		wantStatus int
		wantErr    string // for a 4xx
		wantOp     string // for a 200
	}{
		{name: "disabled", token: "", headers: map[string]string{"Authorization": "Bearer "}, wantStatus: 403,
			wantErr: "admin actions are disabled: ADMIN_TOKEN is not set"},
		{name: "disabled, whatever the token", token: "", headers: map[string]string{"Authorization": "Bearer s3cret"}, wantStatus: 403,
			wantErr: "admin actions are disabled: ADMIN_TOKEN is not set"},
		{name: "no Authorization", token: "s3cret", wantStatus: 401,
			wantErr: "admin actions need the header Authorization: Bearer <ADMIN_TOKEN>"},
		{name: "another scheme", token: "s3cret", headers: map[string]string{"Authorization": "Basic czNjcmV0"}, wantStatus: 401,
			wantErr: "admin actions need the header Authorization: Bearer <ADMIN_TOKEN>"},
		{name: "bearer without token", token: "s3cret", headers: map[string]string{"Authorization": "Bearer"}, wantStatus: 401,
			wantErr: "admin actions need the header Authorization: Bearer <ADMIN_TOKEN>"},
		{name: "wrong token", token: "s3cret", headers: map[string]string{"Authorization": "Bearer s3cre"}, wantStatus: 403,
			wantErr: "wrong admin token"},
		{name: "a longer wrong token", token: "s3cret", headers: map[string]string{"Authorization": "Bearer s3cret2"}, wantStatus: 403,
			wantErr: "wrong admin token"},
		{name: "right token, no operator", token: "s3cret", headers: map[string]string{"Authorization": "Bearer s3cret"}, wantStatus: 200,
			wantOp: "admin"},
		{name: "scheme in any case, operator named", token: "s3cret",
			headers: map[string]string{"Authorization": "bearer s3cret", "X-Operator": "Ada Lovelace"}, wantStatus: 200, wantOp: "Ada Lovelace"},
		{name: "operator of 64 characters", token: "s3cret",
			headers: map[string]string{"Authorization": "Bearer s3cret", "X-Operator": strings.Repeat("é", 64)}, wantStatus: 200,
			wantOp: strings.Repeat("é", 64)},
		{name: "operator percent-encoded, as a browser sends a name beyond Latin-1", token: "s3cret",
			headers: map[string]string{"Authorization": "Bearer s3cret", "X-Operator": "UTF-8''%C5%81ukasz%20Jos%C3%A9"}, wantStatus: 200,
			wantOp: "Łukasz José"},
		{name: "operator of 65 characters", token: "s3cret",
			headers: map[string]string{"Authorization": "Bearer s3cret", "X-Operator": strings.Repeat("a", 65)}, wantStatus: 400,
			wantErr: "X-Operator is longer than 64 characters"},
		{name: "operator with a control character", token: "s3cret",
			headers: map[string]string{"Authorization": "Bearer s3cret", "X-Operator": "ada\x7f"}, wantStatus: 400,
			wantErr: "X-Operator holds invalid UTF-8 or control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/sagas/s1/abort", nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			httpserver.Admin(tt.token, acted("here"))(rec, req)
			body := rec.Body.String()
			if rec.Code != tt.wantStatus {
				t.Fatalf("got %d %s, want %d", rec.Code, body, tt.wantStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			if got, want := rec.Header().Get("WWW-Authenticate"), map[bool]string{true: `Bearer realm="admin"`}[tt.wantStatus == 401]; got != want {
				t.Errorf("WWW-Authenticate: got %q, want %q", got, want)
			}
			if tt.wantStatus != 200 {
				if msg := errorField(t, body); msg != tt.wantErr {
					t.Errorf("error: got %q, want %q", msg, tt.wantErr)
				}
				return
			}
			var got map[string]string
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if got["operator"] != tt.wantOp {
				t.Errorf("operator: got %q, want %q", got["operator"], tt.wantOp)
			}
		})
	}
}

// An admin action on a keyed route is forwarded to the key's owner with
// its method, token and operator, and the owner checks the token.
func TestAdminOnAKeyedRouteIsForwardedWithItsHeaders(t *testing.T) {
	t.Parallel()
	lnA, lnB := listen(t), listen(t)
	addrB := lnB.Addr().String()
	a := newServer(t, httpserver.Config{Owners: owners{"b1": {Addr: addrB}}})
	a.HandleKeyed("POST /sagas/{id}/abort", idInPath, httpserver.Admin("s3cret", acted("a")))
	a.MarkReady()
	urlA := serveOn(t, a, lnA)
	b := newServer(t, httpserver.Config{Owners: owners{"b1": {Self: true}}})
	b.HandleKeyed("POST /sagas/{id}/abort", idInPath, httpserver.Admin("s3cret", acted("b")))
	b.MarkReady()
	serveOn(t, b, lnB)

	for _, tt := range []struct {
		token      string
		connection string // headers the client names hop-by-hop: the request means the same
		wantStatus int
		want       string
	}{
		{"s3cret", "", 200, `{"by":"b","method":"POST","operator":"ops-alice"}`},
		{"guess", "", 403, `{"error":"wrong admin token"}`},
		{"s3cret", "Authorization, " + httpserver.HeaderOperator, 200, `{"by":"b","method":"POST","operator":"ops-alice"}`},
	} {
		req, err := http.NewRequest(http.MethodPost, urlA+"/sagas/b1/abort", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tt.token)
		req.Header.Set(httpserver.HeaderOperator, "ops-alice")
		if tt.connection != "" {
			req.Header.Set("Connection", tt.connection)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		_, _ = io.Copy(&body, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantStatus || strings.TrimSpace(body.String()) != tt.want {
			t.Errorf("POST /sagas/b1/abort with token %q through a: got %d %s, want %d %s",
				tt.token, resp.StatusCode, body.String(), tt.wantStatus, tt.want)
		}
	}
}

package registry_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// call sends one raw request and returns the status and the body.
func call(t *testing.T, hc *http.Client, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.schemaregistry.v1+json" {
		t.Errorf("%s %s: got Content-Type %q, want application/vnd.schemaregistry.v1+json", method, url, ct)
	}
	return resp.StatusCode, data
}

// schemaBody is a register, lookup or compatibility request for schema.
func schemaBody(schema string) string {
	b, _ := json.Marshal(map[string]string{"schema": schema})
	return string(b)
}

func TestErrorBodies(t *testing.T) {
	t.Parallel()
	url, _ := startRegistry(t, newCluster(t))
	hc := newHTTPClient(t)
	if status, body := call(t, hc, "POST", url+"/subjects/raw-value/versions", schemaBody(record(fieldID))); status != 200 {
		t.Fatalf("register: got %d %s, want 200", status, body)
	}
	cases := []struct {
		method, path, body string
		status, code       int
	}{
		{"GET", "/no/such/route", "", 404, 404},
		{"PUT", "/subjects/raw-value/versions", "", 405, 405},
		{"GET", "/compatibility/subjects/raw-value/versions/1", "", 405, 405},
		{"GET", "/subjects/missing/versions", "", 404, 40401},
		{"GET", "/subjects/missing/versions/latest", "", 404, 40401},
		{"GET", "/subjects/raw-value/versions/99", "", 404, 40402},
		{"GET", "/subjects/raw-value/versions/abc", "", 422, 42202},
		{"GET", "/subjects/missing/versions/1/referencedby", "", 404, 40401},
		{"GET", "/subjects/raw-value/versions/99/referencedby", "", 404, 40402},
		{"GET", "/subjects/raw-value/versions/0", "", 422, 42202},
		{"GET", "/schemas/ids/999", "", 404, 40403},
		{"GET", "/schemas/ids/notanumber", "", 404, 40403},
		{"POST", "/subjects/raw-value", schemaBody(record(fieldID, fieldNDefault)), 404, 40403},
		{"POST", "/subjects/raw-value/versions", schemaBody(`{"type": "record"`), 422, 42201},
		{"POST", "/subjects/raw-value/versions", `{"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"}`, 422, 42201},
		{"POST", "/subjects/raw-value/versions", `{"schema": "{\"type\": \"string\"}", "references": [{"name": "a", "subject": "b", "version": 1}]}`, 422, 42201},
		{"POST", "/subjects/raw-value/versions", `not json`, 400, 400},
		{"POST", "/subjects/raw-value/versions", schemaBody(record(`{"name":"f","type":{"type":"fixed","name":"F","size":1099511627776},"default":""}`)), 422, 42201},
		// Each default of a 1 MiB fixed is 1 MiB to hamba: 64 of them, 64 MiB.
		{"POST", "/subjects/raw-value/versions", schemaBody(record(`{"name":"f","type":{"type":"array","items":{"type":"fixed","name":"F","size":1048576}},"default":[` +
			strings.TrimSuffix(strings.Repeat(`"",`, 64), ",") + `]}`)), 422, 42201},
		{"POST", "/subjects/raw-value/versions", schemaBody(record(`{"name":"f","type":{"type":"fixed","name":"F","size":-1},"default":""}`)), 422, 42201},
		// Defaults that are no value of their type (Confluent validates
		// them), or that the serde would read as another number.
		{"POST", "/subjects/raw-value/versions", schemaBody(record(`{"name":"f","type":"int","default":3000000000}`)), 422, 42201},
		{"POST", "/subjects/raw-value/versions", schemaBody(record(`{"name":"f","type":["long","null"],"default":1.5}`)), 422, 42201},
		{"POST", "/subjects/raw-value/versions", schemaBody(record(`{"name":"f","type":{"type":"long","logicalType":"timestamp-millis"},"default":9223372036854775807}`)), 422, 42201},
		{"POST", "/subjects/raw-value/versions", schemaBody(record(`{"name":"f","type":{"type":"map","values":"int"},"default":{"a":3000000000}}`)), 422, 42201},
		{"POST", "/subjects/raw-value/versions", schemaBody(record(`{"name":"f","type":{"type":"array","items":"long"},"default":[9223372036854775807]}`)), 422, 42201},
		{"POST", "/subjects/raw-value/versions", schemaBody(record(`{"name":"f","type":{"type":"record","name":"R","fields":[{"name":"x","type":"long"}]},"default":{"x":1.5}}`)), 422, 42201},
		{"POST", "/subjects/raw-value/versions", schemaBody(record(fieldID, fieldN)), 409, 409},
		{"PUT", "/config", `{"compatibility": "SOMETIMES"}`, 422, 42203},
		{"PUT", "/config/raw-value", `{"compatibility": ""}`, 422, 42203},
		{"GET", "/config/raw-value", "", 404, 40408},
		{"DELETE", "/config/raw-value", "", 404, 40401},
		{"DELETE", "/subjects/raw-value?permanent=true", "", 404, 40405},
		{"DELETE", "/subjects/raw-value/versions/1?permanent=true", "", 404, 40407},
		{"DELETE", "/subjects/missing", "", 404, 40401},
		{"PUT", "/mode", `{"mode": "IMPORT"}`, 422, 42204},
		// An id or a version asked for is taken in IMPORT mode only.
		{"POST", "/subjects/raw-value/versions", `{"schema": "{\"type\": \"string\"}", "id": 42}`, 422, 42205},
		{"POST", "/subjects/raw-value/versions", `{"schema": "{\"type\": \"string\"}", "id": 0}`, 422, 42205},
		{"POST", "/subjects/raw-value/versions", `{"schema": "{\"type\": \"string\"}", "version": 7}`, 422, 42205},
	}
	for _, tc := range cases {
		status, body := call(t, hc, tc.method, url+tc.path, tc.body)
		var e struct {
			ErrorCode int    `json:"error_code"`
			Message   string `json:"message"`
		}
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("%s %s: body %s is not a JSON error: %v", tc.method, tc.path, body, err)
			continue
		}
		if status != tc.status || e.ErrorCode != tc.code || e.Message == "" {
			t.Errorf("%s %s: got %d %s, want status %d with error_code %d and a message", tc.method, tc.path, status, body, tc.status, tc.code)
		}
	}
}

func TestRawEndpoints(t *testing.T) {
	t.Parallel()
	url, _ := startRegistry(t, newCluster(t))
	hc := newHTTPClient(t)
	text := `{"type": "record", "name": "Raw", "fields": [{"name": "id", "type": "string"}]}`
	call(t, hc, "POST", url+"/subjects/raw-value/versions", schemaBody(text))
	cases := []struct {
		method, path, body, want string
	}{
		{"GET", "/schemas/types", "", `["AVRO"]`},
		{"GET", "/subjects", "", `["raw-value"]`},
		{"GET", "/schemas/ids/1", "", fmt.Sprintf(`{"schema":%q}`, text)},
		{"GET", "/schemas/ids/1/schema", "", `{"type":"record","name":"Raw","fields":[{"name":"id","type":"string"}]}`},
		{"GET", "/schemas/ids/1/versions", "", `[{"subject":"raw-value","version":1}]`},
		{"GET", "/schemas/ids/1/subjects", "", `["raw-value"]`},
		{"GET", "/subjects/raw-value/versions/latest", "", fmt.Sprintf(`{"subject":"raw-value","version":1,"id":1,"schema":%q}`, text)},
		{"POST", "/subjects/raw-value?deleted=true", schemaBody(text), fmt.Sprintf(`{"subject":"raw-value","version":1,"id":1,"schema":%q}`, text)},
		{"POST", "/compatibility/subjects/raw-value/versions/1", schemaBody(`{"type": "record", "name": "Raw", "fields": []}`), `{"is_compatible":true}`},
		{"POST", "/compatibility/subjects/raw-value/versions/latest", schemaBody(`{"type": "record", "name": "Raw", "fields": [{"name": "id", "type": "int"}]}`), `{"is_compatible":false}`},
		{"POST", "/compatibility/subjects/new-value/versions", schemaBody(text), `{"is_compatible":true}`},
		{"PUT", "/config", `{"compatibility": "full"}`, `{"compatibility":"FULL"}`},
		{"GET", "/config", "", `{"compatibilityLevel":"FULL"}`},
		{"PUT", "/config/raw-value", `{"compatibility": "NONE"}`, `{"compatibility":"NONE"}`},
		{"GET", "/config/raw-value", "", `{"compatibilityLevel":"NONE"}`},
		{"DELETE", "/config/raw-value", "", `{"compatibilityLevel":"NONE"}`},
		{"GET", "/config/raw-value?defaultToGlobal=true", "", `{"compatibilityLevel":"FULL"}`},
		{"DELETE", "/config", "", `{"compatibilityLevel":"FULL"}`},
		{"GET", "/config", "", `{"compatibilityLevel":"BACKWARD"}`},
		{"GET", "/mode", "", `{"mode":"READWRITE"}`},
		{"DELETE", "/subjects/raw-value/versions/latest", "", `1`},
		{"GET", "/subjects", "", `[]`},
		{"GET", "/subjects?deleted=true", "", `["raw-value"]`},
		{"GET", "/subjects?deletedOnly=true", "", `["raw-value"]`},
		{"GET", "/subjects/raw-value/versions?deletedOnly=true", "", `[1]`},
		{"GET", "/subjects/raw-value/versions/1?deleted=true", "", fmt.Sprintf(`{"subject":"raw-value","version":1,"id":1,"schema":%q}`, text)},
		{"DELETE", "/subjects/raw-value?permanent=true", "", `[1]`},
	}
	for _, tc := range cases {
		status, body := call(t, hc, tc.method, url+tc.path, tc.body)
		if got := strings.TrimSpace(string(body)); status != 200 || got != tc.want {
			t.Errorf("%s %s: got %d %s, want 200 %s", tc.method, tc.path, status, got, tc.want)
		}
	}
	// No version uses schema 1 any more.
	if status, body := call(t, hc, "GET", url+"/schemas/ids/1", ""); status != 404 {
		t.Errorf("schema 1 after its only version was deleted permanently: got %d %s, want 404", status, body)
	}
}

func TestVerboseCompatibility(t *testing.T) {
	t.Parallel()
	url, _ := startRegistry(t, newCluster(t))
	hc := newHTTPClient(t)
	call(t, hc, "POST", url+"/subjects/verbose-value/versions", schemaBody(record(fieldID)))
	_, body := call(t, hc, "POST", url+"/compatibility/subjects/verbose-value/versions/latest?verbose=true", schemaBody(record(fieldIDInt)))
	var res struct {
		IsCompatible bool     `json:"is_compatible"`
		Messages     []string `json:"messages"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if res.IsCompatible || len(res.Messages) != 1 || !strings.Contains(res.Messages[0], "version 1") {
		t.Errorf("verbose check of an incompatible schema: got %s, want is_compatible false and one message naming version 1", body)
	}
}

// TestConcurrentRegistrations checks that racing registrations of one schema
// agree on a single id and version.
func TestConcurrentRegistrations(t *testing.T) {
	t.Parallel()
	url, _ := startRegistry(t, newCluster(t))
	hc := newHTTPClient(t)
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got []string
	)
	for range 16 {
		wg.Go(func() {
			status, body := call(t, hc, "POST", url+"/subjects/race-value/versions", schemaBody(record(fieldID)))
			mu.Lock()
			defer mu.Unlock()
			got = append(got, fmt.Sprintf("%d %s", status, strings.TrimSpace(string(body))))
		})
	}
	wg.Wait()
	for _, g := range got {
		if g != `200 {"id":1}` {
			t.Errorf("concurrent register: got %s, want 200 {\"id\":1}", g)
		}
	}
	if status, body := call(t, hc, "GET", url+"/subjects/race-value/versions", ""); status != 200 || !slices.Equal(body, []byte("[1]\n")) {
		t.Errorf("versions: got %d %s, want 200 [1]", status, body)
	}
}

// As Confluent's: a subject deleted for good takes its compatibility level
// with it (one made again under its name is checked at the global level),
// and a compatibility check against the latest version of a subject that
// has none passes.
func TestASubjectDeletedForGoodTakesItsLevel(t *testing.T) {
	t.Parallel()
	url, _ := startRegistry(t, newCluster(t))
	hc := newHTTPClient(t)
	exchange(t, hc, url, []step{
		{"POST", "/compatibility/subjects/gone-value/versions/latest", schemaBody(record(fieldID)), 200, `{"is_compatible":true}`},
		{"POST", "/compatibility/subjects/gone-value/versions/1", schemaBody(record(fieldID)), 404, "40402"},
		{"PUT", "/config/gone-value", `{"compatibility": "NONE"}`, 200, `{"compatibility":"NONE"}`},
		{"POST", "/subjects/gone-value/versions", schemaBody(record(fieldID)), 200, `{"id":1}`},
		{"DELETE", "/subjects/gone-value", "", 200, `[1]`},
		{"DELETE", "/subjects/gone-value?permanent=true", "", 200, `[1]`},
		{"GET", "/config/gone-value", "", 404, "40408"},
	})
}

// As Confluent's, "latest" is the newest live version, even when deleted
// ones are asked for too: a permanent delete of "latest" names it, and is
// refused until it is soft deleted.
func TestLatestIsTheNewestLiveVersion(t *testing.T) {
	t.Parallel()
	url, _ := startRegistry(t, newCluster(t))
	hc := newHTTPClient(t)
	exchange(t, hc, url, []step{
		{"POST", "/subjects/latest-value/versions", schemaBody(record(fieldID)), 200, `{"id":1}`},
		{"POST", "/subjects/latest-value/versions", schemaBody(record(fieldID, fieldNDefault)), 200, `{"id":2}`},
		{"DELETE", "/subjects/latest-value/versions/2", "", 200, `2`},
		{"GET", "/subjects/latest-value/versions/latest?deleted=true", "", 200, fmt.Sprintf(`{"subject":"latest-value","version":1,"id":1,"schema":%q}`, record(fieldID))},
		{"DELETE", "/subjects/latest-value/versions/latest?permanent=true", "", 404, "40407"},
		{"DELETE", "/subjects/latest-value/versions/1", "", 200, `1`},
		{"GET", "/subjects/latest-value/versions/latest?deleted=true", "", 404, "40402"},
		{"GET", "/subjects/latest-value/versions/latest", "", 404, "40401"},
	})
}

// step is a request and its expected answer: the body of a 200, or the
// error_code of an error.
type step struct {
	method, path, body string
	status             int
	want               string
}

// exchange sends each step's request in turn and checks its answer.
func exchange(t *testing.T, hc *http.Client, url string, steps []step) {
	t.Helper()
	for _, tc := range steps {
		status, body := call(t, hc, tc.method, url+tc.path, tc.body)
		got := strings.TrimSpace(string(body))
		var e struct {
			ErrorCode int `json:"error_code"`
		}
		switch {
		case status != tc.status:
			t.Errorf("%s %s: got %d %s, want %d", tc.method, tc.path, status, got, tc.status)
		case status == 200 && got != tc.want:
			t.Errorf("%s %s: got %s, want %s", tc.method, tc.path, got, tc.want)
		case status != 200 && (json.Unmarshal(body, &e) != nil || fmt.Sprint(e.ErrorCode) != tc.want):
			t.Errorf("%s %s: got %s, want error_code %s", tc.method, tc.path, got, tc.want)
		}
	}
}

// A compatibility check is never made against a soft-deleted version, as
// Confluent's is not, even when the request says ?deleted=true: such a
// version is not found.
func TestACompatibilityCheckSkipsDeletedVersions(t *testing.T) {
	t.Parallel()
	url, _ := startRegistry(t, newCluster(t))
	hc := newHTTPClient(t)
	for _, step := range []struct{ method, path, body string }{
		{"POST", "/subjects/cd-value/versions", schemaBody(record(fieldID))},
		{"POST", "/subjects/cd-value/versions", schemaBody(record(fieldID, fieldNDefault))},
		{"DELETE", "/subjects/cd-value/versions/1", ""},
	} {
		if status, body := call(t, hc, step.method, url+step.path, step.body); status != 200 {
			t.Fatalf("%s %s: got %d %s, want 200", step.method, step.path, status, body)
		}
	}
	status, body := call(t, hc, "POST", url+"/compatibility/subjects/cd-value/versions/1?deleted=true", schemaBody(record(fieldID, fieldN)))
	var e struct {
		ErrorCode int `json:"error_code"`
	}
	if err := json.Unmarshal(body, &e); err != nil || status != 404 || e.ErrorCode != 40402 {
		t.Errorf("check against the deleted version 1: got %d %s, want 404 with error_code 40402", status, body)
	}
}

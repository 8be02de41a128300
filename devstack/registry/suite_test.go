package registry_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
)

// TestClients runs the shared cases through both client libraries, each
// against its own broker and registry.
func TestClients(t *testing.T) {
	t.Parallel()
	clients := []struct {
		name string
		new  func(url string, httpClient *http.Client) (client, error)
	}{
		{"srclient", func(url string, httpClient *http.Client) (client, error) { return newSRClient(url, httpClient), nil }},
		{"franz-go sr", newFranzClient},
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			t.Parallel()
			url, _ := startRegistry(t, newCluster(t))
			httpClient := newHTTPClient(t)
			c, err := cl.new(url, httpClient)
			if err != nil {
				t.Fatalf("new client: %v", err)
			}
			t.Run("register is idempotent", func(t *testing.T) { testRegisterIdempotent(t, c) })
			t.Run("same schema same id across subjects", func(t *testing.T) { testSameIDAcrossSubjects(t, c) })
			t.Run("lookup", func(t *testing.T) { testLookup(t, c) })
			t.Run("schema by id", func(t *testing.T) { testSchemaByID(t, c) })
			t.Run("versions and latest", func(t *testing.T) { testVersions(t, c) })
			t.Run("compatibility levels", func(t *testing.T) { testCompatibility(t, c) })
			t.Run("config", func(t *testing.T) { testConfig(t, c) })
			t.Run("delete subject", func(t *testing.T) { testDeleteSubject(t, c) })
			t.Run("invalid schema", func(t *testing.T) { testInvalidSchema(t, c) })
		})
	}
}

func mustRegister(t *testing.T, c client, subject, schema string) int {
	t.Helper()
	id, err := c.Register(t.Context(), subject, schema)
	if err != nil {
		t.Fatalf("register %s in %s: %v", schema, subject, err)
	}
	return id
}

func wantCode(t *testing.T, what string, err error, want int) {
	t.Helper()
	if got := errorCode(err); got != want {
		t.Errorf("%s: got error code %d (%v), want %d", what, got, err, want)
	}
}

func testRegisterIdempotent(t *testing.T, c client) {
	first := mustRegister(t, c, "idem-value", record(fieldID))
	again := mustRegister(t, c, "idem-value", record(fieldID))
	// Same schema, other key order and spacing.
	reordered := mustRegister(t, c, "idem-value", `{"namespace": "test", "name": "Rec", "type": "record", "fields": [{"type": "string", "name": "id"}]}`)
	if again != first || reordered != first {
		t.Errorf("ids of one schema registered thrice: got %d, %d, %d, want all %d", first, again, reordered, first)
	}
	versions, err := c.Versions(t.Context(), "idem-value")
	if err != nil {
		t.Fatalf("versions: %v", err)
	}
	if !slices.Equal(versions, []int{1}) {
		t.Errorf("versions: got %v, want [1]", versions)
	}
}

func testSameIDAcrossSubjects(t *testing.T, c client) {
	a := mustRegister(t, c, "across-a-value", otherSchemaDef)
	b := mustRegister(t, c, "across-b-value", otherSchemaDef)
	if a != b {
		t.Errorf("id in second subject: got %d, want %d", b, a)
	}
	other := mustRegister(t, c, "across-c-value", record(fieldID, fieldNDefault))
	if other == a {
		t.Errorf("a different schema got the same id %d", other)
	}
}

func testLookup(t *testing.T, c client) {
	id := mustRegister(t, c, "lookup-value", record(fieldID))
	gotID, gotVersion, err := c.Lookup(t.Context(), "lookup-value", record(fieldID))
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	if gotID != id || gotVersion != 1 {
		t.Errorf("lookup: got id %d version %d, want id %d version 1", gotID, gotVersion, id)
	}
	_, _, err = c.Lookup(t.Context(), "no-such-subject", record(fieldID))
	wantCode(t, "lookup in a missing subject", err, 40401)
	_, _, err = c.Lookup(t.Context(), "lookup-value", record(fieldID, fieldNDefault))
	wantCode(t, "lookup of an unregistered schema", err, 40403)
}

func testSchemaByID(t *testing.T, c client) {
	text := `{"type": "record", "name": "ByID", "fields": [{"name": "a", "type": "long"}]}`
	id := mustRegister(t, c, "byid-value", text)
	got, err := c.SchemaByID(t.Context(), id)
	if err != nil {
		t.Fatalf("schema by id %d: %v", id, err)
	}
	if got != text {
		t.Errorf("schema by id %d: got %s, want the text as registered %s", id, got, text)
	}
	_, err = c.SchemaByID(t.Context(), 999999)
	wantCode(t, "unknown id", err, 40403)
}

func testVersions(t *testing.T, c client) {
	id1 := mustRegister(t, c, "versions-value", record(fieldID))
	id2 := mustRegister(t, c, "versions-value", record(fieldID, fieldNDefault))
	versions, err := c.Versions(t.Context(), "versions-value")
	if err != nil {
		t.Fatalf("versions: %v", err)
	}
	if !slices.Equal(versions, []int{1, 2}) {
		t.Errorf("versions: got %v, want [1 2]", versions)
	}
	version, id, schema, err := c.Latest(t.Context(), "versions-value")
	if err != nil {
		t.Fatalf("latest: %v", err)
	}
	if version != 2 || id != id2 || schema != record(fieldID, fieldNDefault) || id2 == id1 {
		t.Errorf("latest: got version %d id %d schema %s, want version 2 id %d (not %d) schema %s",
			version, id, schema, id2, id1, record(fieldID, fieldNDefault))
	}
	_, err = c.Versions(t.Context(), "no-such-subject")
	wantCode(t, "versions of a missing subject", err, 40401)
}

func testCompatibility(t *testing.T, c client) {
	cases := []struct {
		name      string
		level     string
		history   []string // registered in order under level
		candidate string
		latest    bool // compatible with the latest version
		register  bool // registers: compatible with what level checks against
	}{
		{"backward: add field with default", "BACKWARD", []string{record(fieldID)}, record(fieldID, fieldNDefault), true, true},
		{"backward: add field without default", "BACKWARD", []string{record(fieldID)}, record(fieldID, fieldN), false, false},
		{"backward: remove field", "BACKWARD", []string{record(fieldID, fieldN)}, record(fieldID), true, true},
		{"backward: promote int to long", "BACKWARD", []string{record(fieldID, fieldN)}, record(fieldID, fieldNLong), true, true},
		{"backward: change string to int", "BACKWARD", []string{record(fieldID)}, record(fieldIDInt), false, false},
		{"forward: remove field without default", "FORWARD", []string{record(fieldID, fieldN)}, record(fieldID), false, false},
		{"forward: add field without default", "FORWARD", []string{record(fieldID)}, record(fieldID, fieldN), true, true},
		{"forward: promote int to long", "FORWARD", []string{record(fieldID, fieldN)}, record(fieldID, fieldNLong), false, false},
		{"full: add field with default", "FULL", []string{record(fieldID)}, record(fieldID, fieldNDefault), true, true},
		{"full: add field without default", "FULL", []string{record(fieldID)}, record(fieldID, fieldN), false, false},
		{"none: change string to int", "NONE", []string{record(fieldID)}, record(fieldIDInt), true, true},
		// The candidate reads v2 (n missing, has a default) but not v1 (n was an int).
		{"backward: latest only", "BACKWARD", []string{record(fieldID, fieldN), record(fieldID)}, record(fieldID, fieldNString), true, true},
		{"backward transitive: all versions", "BACKWARD_TRANSITIVE", []string{record(fieldID, fieldN), record(fieldID)}, record(fieldID, fieldNString), true, false},
		// v2 reads the candidate (n has a default in v2), v1 does not.
		{"forward: latest only", "FORWARD", []string{record(fieldID, fieldN), record(fieldID, fieldNDefault)}, record(fieldID), true, true},
		{"forward transitive: all versions", "FORWARD_TRANSITIVE", []string{record(fieldID, fieldN), record(fieldID, fieldNDefault)}, record(fieldID), true, false},
		{"full: latest only", "FULL", []string{record(fieldID, fieldN), record(fieldID, fieldNDefault)}, record(fieldID), true, true},
		{"full transitive: all versions", "FULL_TRANSITIVE", []string{record(fieldID, fieldN), record(fieldID, fieldNDefault)}, record(fieldID), true, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			subject := fmt.Sprintf("compat-%d-value", i)
			if err := c.SetLevel(t.Context(), subject, tc.level); err != nil {
				t.Fatalf("set level %s: %v", tc.level, err)
			}
			for _, s := range tc.history {
				mustRegister(t, c, subject, s)
			}
			got, err := c.CompatibleWithLatest(t.Context(), subject, tc.candidate)
			if err != nil {
				t.Fatalf("check compatibility: %v", err)
			}
			if got != tc.latest {
				t.Errorf("%s after %v compatible with latest under %s: got %t, want %t", tc.candidate, tc.history, tc.level, got, tc.latest)
			}
			_, err = c.Register(t.Context(), subject, tc.candidate)
			switch {
			case tc.register && err != nil:
				t.Errorf("register compatible schema: got %v, want success", err)
			case !tc.register:
				wantCode(t, "register incompatible schema", err, 409)
			}
		})
	}
}

func testConfig(t *testing.T, c client) {
	ctx := t.Context()
	global, err := c.Level(ctx, "", false)
	if err != nil || global != "BACKWARD" {
		t.Errorf("global level: got %q, %v, want BACKWARD", global, err)
	}
	if err := c.SetLevel(ctx, "config-value", "FULL_TRANSITIVE"); err != nil {
		t.Fatalf("set subject level: %v", err)
	}
	got, err := c.Level(ctx, "config-value", false)
	if err != nil || got != "FULL_TRANSITIVE" {
		t.Errorf("subject level: got %q, %v, want FULL_TRANSITIVE", got, err)
	}
	got, err = c.Level(ctx, "unconfigured-value", true)
	if err != nil || got != "BACKWARD" {
		t.Errorf("unset subject level with defaultToGlobal: got %q, %v, want BACKWARD", got, err)
	}
	_, err = c.Level(ctx, "unconfigured-value", false)
	wantCode(t, "unset subject level without defaultToGlobal", err, 40408)
}

func testDeleteSubject(t *testing.T, c client) {
	ctx := t.Context()
	id := mustRegister(t, c, "delete-value", record(fieldID))
	if err := c.DeleteSubject(ctx, "delete-value", false); err != nil {
		t.Fatalf("soft delete: %v", err)
	}
	_, err := c.Versions(ctx, "delete-value")
	wantCode(t, "versions of a soft-deleted subject", err, 40401)
	// Registering again continues the version numbers and keeps the id.
	if again := mustRegister(t, c, "delete-value", record(fieldID)); again != id {
		t.Errorf("id after soft delete: got %d, want %d", again, id)
	}
	if versions, err := c.Versions(ctx, "delete-value"); err != nil || !slices.Equal(versions, []int{2}) {
		t.Errorf("versions after re-registering: got %v, %v, want [2]", versions, err)
	}
	if err := c.DeleteSubject(ctx, "delete-value", true); err != nil {
		t.Fatalf("permanent delete: %v", err)
	}
	mustRegister(t, c, "delete-value", record(fieldID))
	if versions, err := c.Versions(ctx, "delete-value"); err != nil || !slices.Equal(versions, []int{1}) {
		t.Errorf("versions after permanent delete: got %v, %v, want [1]", versions, err)
	}
}

func testInvalidSchema(t *testing.T, c client) {
	for _, schema := range []string{`{"type": "record"`, `{"type": "record", "name": "NoFields"}`, `{"type": "nosuchtype"}`} {
		_, err := c.Register(t.Context(), "invalid-value", schema)
		wantCode(t, "register "+schema, err, 42201)
	}
}

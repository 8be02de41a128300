package registry_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkasaga/kafkasaga/devstack/registry"
)

// TestRestartRestoresState checks that a registry started on the broker of a
// stopped one serves the same subjects, versions, ids, texts and levels.
func TestRestartRestoresState(t *testing.T) {
	t.Parallel()
	brokers := newCluster(t)
	url, stop := startRegistry(t, brokers)
	hc := newHTTPClient(t)
	steps := []struct{ method, path, body string }{
		{"POST", "/subjects/s1-value/versions", schemaBody(record(fieldID))},
		{"POST", "/subjects/s1-value/versions", schemaBody(`{"type": "record", "name": "Rec", "namespace": "test", "fields": [` + fieldID + `, ` + fieldNDefault + `]}`)},
		{"POST", "/subjects/s2-value/versions", schemaBody(record(fieldID))},
		{"PUT", "/config/s2-value", `{"compatibility": "NONE"}`},
		{"POST", "/subjects/s3-value/versions", schemaBody(otherSchemaDef)},
		{"DELETE", "/subjects/s3-value", ""},
		{"POST", "/subjects/s4-value/versions", schemaBody(record(fieldID))},
		{"POST", "/subjects/s4-value/versions", schemaBody(record(fieldID, fieldNDefault))},
		{"DELETE", "/subjects/s4-value/versions/2", ""},
		{"DELETE", "/subjects/s4-value/versions/2?permanent=true", ""},
		{"PUT", "/config", `{"compatibility": "FULL"}`},
	}
	for _, s := range steps {
		if status, body := call(t, hc, s.method, url+s.path, s.body); status != 200 {
			t.Fatalf("%s %s: got %d %s, want 200", s.method, s.path, status, body)
		}
	}
	before, maxID := snapshot(t, hc, url)
	stop()
	hc.CloseIdleConnections()

	url, _ = startRegistry(t, brokers)
	after, _ := snapshot(t, hc, url)
	for _, path := range slices.Sorted(maps.Keys(before)) {
		if after[path] != before[path] {
			t.Errorf("GET %s after restart: got %s, want %s", path, after[path], before[path])
		}
	}
	if len(after) != len(before) {
		t.Errorf("resources after restart: got %d, want %d", len(after), len(before))
	}
	// Ids keep growing after a restart rather than starting again.
	_, body := call(t, hc, "POST", url+"/subjects/s5-value/versions", schemaBody(`{"type": "enum", "name": "E", "symbols": ["A"]}`))
	var reg struct{ ID int }
	if err := json.Unmarshal(body, &reg); err != nil || reg.ID != maxID+1 {
		t.Errorf("register after restart: got %s, want id %d", body, maxID+1)
	}
}

// snapshot reads everything the registry serves, soft-deleted versions
// included, by path, and returns the highest schema id it saw.
func snapshot(t *testing.T, hc *http.Client, url string) (map[string]string, int) {
	t.Helper()
	out := make(map[string]string)
	get := func(path string, into any) {
		t.Helper()
		status, body := call(t, hc, "GET", url+path, "")
		out[path] = string(body)
		if status != 200 {
			return
		}
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("GET %s: decode %s: %v", path, body, err)
		}
	}
	var subjects []string
	get("/subjects?deleted=true", &subjects)
	get("/config", new(any))
	maxID := 0
	for _, s := range subjects {
		get("/config/"+s, new(any))
		var versions []int
		get("/subjects/"+s+"/versions?deleted=true", &versions)
		for _, v := range versions {
			var sv struct{ ID int }
			get("/subjects/"+s+"/versions/"+strconv.Itoa(v)+"?deleted=true", &sv)
			get("/schemas/ids/"+strconv.Itoa(sv.ID), new(any))
			maxID = max(maxID, sv.ID)
		}
	}
	return out, maxID
}

// A write to the schemas topic that fails may have landed all the same. Its
// schema id must not go to the next new schema: after a restart the id
// would name the schema of the failed write, not the one producers were
// given it for.
func TestAFailedWriteDoesNotHandOutItsSchemaIDAgain(t *testing.T) {
	t.Parallel()
	cluster := newKfake(t)
	brokers := cluster.ListenAddrs()
	url, stop := startRegistry(t, brokers)
	hc := newHTTPClient(t)
	if status, body := call(t, hc, "POST", url+"/subjects/a-value/versions", schemaBody(record(fieldID))); status != 200 || strings.TrimSpace(string(body)) != `{"id":1}` {
		t.Fatalf("register a: got %d %s, want id 1", status, body)
	}

	cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "_schemas", Err: kerr.TopicAuthorizationFailed})
	failed := record(fieldID, fieldN)
	if status, body := call(t, hc, "POST", url+"/subjects/b-value/versions", schemaBody(failed)); status < 500 {
		t.Fatalf("register b with its write refused: got %d %s, want a 5xx", status, body)
	}
	// It landed all the same, under the id it was planned with.
	value, _ := json.Marshal(map[string]any{"subject": "b-value", "version": 1, "id": 2, "schema": failed, "deleted": false})
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.ProduceSync(t.Context(), &kgo.Record{Topic: "_schemas", Partition: 0,
		Key: []byte(`{"keytype":"SCHEMA","subject":"b-value","version":1,"magic":1}`), Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	next := record(fieldID, fieldNString)
	status, body := call(t, hc, "POST", url+"/subjects/c-value/versions", schemaBody(next))
	var reg struct{ ID int }
	if err := json.Unmarshal(body, &reg); status != 200 || err != nil || reg.ID == 2 {
		t.Fatalf("register c: got %d %s, want 200 and an id other than 2", status, body)
	}
	stop()
	hc.CloseIdleConnections()

	url, _ = startRegistry(t, brokers)
	_, body = call(t, hc, "GET", url+"/schemas/ids/"+strconv.Itoa(reg.ID), "")
	var got struct{ Schema string }
	if err := json.Unmarshal(body, &got); err != nil || got.Schema != next {
		t.Errorf("GET /schemas/ids/%d after a restart: got %s, want c's schema %s", reg.ID, body, next)
	}
}

// A record the registry cannot apply on restart (here a Protobuf schema
// from a topic Confluent's registry wrote) still takes its id and its
// subject's version: handing them out again would give one id two schemas
// and one key two records, the older of which compaction drops.
func TestUnreadableRecordKeepsItsIDAndVersion(t *testing.T) {
	t.Parallel()
	brokers := newCluster(t)
	writeTopic(t, brokers, [][2]string{
		{`{"keytype":"SCHEMA","subject":"a-value","version":1,"magic":1}`, `{"subject":"a-value","version":1,"id":1,"schemaType":"AVRO","schema":"{\"type\":\"string\"}","deleted":false}`},
		{`{"keytype":"SCHEMA","subject":"b-value","version":1,"magic":1}`, `{"subject":"b-value","version":1,"id":2,"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";\nmessage M { string s = 1; }\n","deleted":false}`},
	})
	url, _ := startRegistry(t, brokers)
	hc := newHTTPClient(t)
	steps := []struct{ method, path, body, want string }{
		{"POST", "/subjects/c-value/versions", schemaBody(`{"type":"int"}`), `{"id":3}`},
		{"POST", "/subjects/b-value/versions", schemaBody(`{"type":"long"}`), `{"id":4}`},
		{"GET", "/subjects/b-value/versions", "", `[2]`},
	}
	for _, s := range steps {
		if status, body := call(t, hc, s.method, url+s.path, s.body); status != 200 || string(body) != s.want+"\n" {
			t.Errorf("%s %s: got %d %s, want 200 %s", s.method, s.path, status, body, s.want)
		}
	}
	// It is not served: this registry speaks Avro only.
	if status, body := call(t, hc, "GET", url+"/schemas/ids/2", ""); status != 404 {
		t.Errorf("GET /schemas/ids/2: got %d %s, want 404", status, body)
	}
}

// A registration whose write failed but landed, retried, leaves two records
// under one key: the burnt id, then a new one. After a restart the schema
// keeps the id its subject has, not the burnt one, which the first record's
// compaction would take away.
func TestRetriedRegistrationKeepsItsIDAfterRestart(t *testing.T) {
	t.Parallel()
	brokers := newCluster(t)
	writeTopic(t, brokers, [][2]string{
		{`{"keytype":"SCHEMA","subject":"a-value","version":1,"magic":1}`, `{"subject":"a-value","version":1,"id":1,"schema":"{\"type\":\"string\"}","deleted":false}`},
		{`{"keytype":"SCHEMA","subject":"a-value","version":1,"magic":1}`, `{"subject":"a-value","version":1,"id":2,"schema":"{\"type\":\"string\"}","deleted":false}`},
	})
	url, _ := startRegistry(t, brokers)
	hc := newHTTPClient(t)
	if status, body := call(t, hc, "POST", url+"/subjects/b-value/versions", schemaBody(`{"type":"string"}`)); status != 200 || string(body) != `{"id":2}`+"\n" {
		t.Errorf("register a-value's schema in b-value: got %d %s, want 200 {\"id\":2}", status, body)
	}
}

// A schemas topic made beforehand that could lose schemas or reorder
// them (deleted past its retention, or spread over partitions) is
// refused, as Confluent's registry refuses it: a restart would rebuild
// the schemas without those deleted and give their ids to others.
func TestARegistryRefusesASchemasTopicThatWouldLoseSchemas(t *testing.T) {
	t.Parallel()
	deleted, compact := "delete", "compact"
	for _, tc := range []struct {
		name       string
		partitions int32
		policy     *string
		refused    bool
	}{
		{"deleted past its retention", 1, &deleted, true},
		{"three partitions", 3, &compact, true},
		{"one partition, compacted", 1, &compact, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			brokers := newCluster(t)
			client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			resp, err := kadm.NewClient(client).CreateTopic(t.Context(), tc.partitions, 1, map[string]*string{"cleanup.policy": tc.policy}, "_schemas")
			if err == nil {
				err = resp.Err
			}
			if err != nil {
				t.Fatal(err)
			}
			reg, err := registry.New(t.Context(), registry.Config{Brokers: brokers}, nil)
			if err == nil {
				reg.Close()
			}
			if refused := err != nil; refused != tc.refused || refused && !strings.Contains(err.Error(), "_schemas") {
				t.Errorf("a registry on it: got error %v, want refused %v, naming the topic", err, tc.refused)
			}
		})
	}
}

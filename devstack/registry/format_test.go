package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTopicFormat checks the records on _schemas byte for byte: they must
// be what Confluent's registry writes, so either can read the other's topic.
func TestTopicFormat(t *testing.T) {
	t.Parallel()
	brokers := newCluster(t)
	url, _ := startRegistry(t, brokers)
	hc := newHTTPClient(t)
	call(t, hc, "POST", url+"/subjects/fmt-value/versions", schemaBody(`{"type":"string"}`))
	call(t, hc, "DELETE", url+"/subjects/fmt-value/versions/1", "")
	call(t, hc, "PUT", url+"/config", `{"compatibility":"FULL"}`)
	call(t, hc, "PUT", url+"/config/fmt-value", `{"compatibility":"NONE"}`)
	call(t, hc, "DELETE", url+"/config/fmt-value", "")

	want := [][2]string{
		{`{"keytype":"SCHEMA","subject":"fmt-value","version":1,"magic":1}`, `{"subject":"fmt-value","version":1,"id":1,"schema":"{\"type\":\"string\"}","deleted":false}`},
		{`{"keytype":"SCHEMA","subject":"fmt-value","version":1,"magic":1}`, `{"subject":"fmt-value","version":1,"id":1,"schema":"{\"type\":\"string\"}","deleted":true}`},
		{`{"keytype":"CONFIG","subject":null,"magic":0}`, `{"compatibilityLevel":"FULL"}`},
		{`{"keytype":"CONFIG","subject":"fmt-value","magic":0}`, `{"compatibilityLevel":"NONE"}`},
		{`{"keytype":"CONFIG","subject":"fmt-value","magic":0}`, ``},
	}
	got := readTopic(t, brokers, len(want))
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: got key %s value %s, want key %s value %s", i, got[i][0], got[i][1], want[i][0], want[i][1])
		}
	}
}

// TestReadsConfluentTopic starts the registry on a topic written as
// Confluent's registry writes it, with record types this one never writes.
func TestReadsConfluentTopic(t *testing.T) {
	t.Parallel()
	brokers := newCluster(t)
	records := [][2]string{
		{`{"keytype":"NOOP","magic":0}`, ``},
		{`{"keytype":"SCHEMA","subject":"c-value","version":1,"magic":1}`, `{"subject":"c-value","version":1,"id":7,"schemaType":"AVRO","references":[],"schema":"{\"type\":\"string\"}","deleted":false}`},
		{`{"keytype":"SCHEMA","subject":"c-value","version":2,"magic":1}`, `{"subject":"c-value","version":2,"id":9,"schema":"{\"type\":\"long\"}","deleted":false}`},
		{`{"keytype":"DELETE_SUBJECT","subject":"c-value","magic":0}`, `{"subject":"c-value","version":1}`},
		{`{"keytype":"CONFIG","subject":"c-value","magic":0}`, `{"compatibilityLevel":"FORWARD","alias":null,"normalize":null}`},
		{`{"keytype":"MODE","subject":null,"magic":0}`, `{"mode":"READWRITE"}`},
	}
	writeTopic(t, brokers, records)
	url, _ := startRegistry(t, brokers)
	hc := newHTTPClient(t)
	cases := []struct{ path, want string }{
		{"/subjects/c-value/versions", `[2]`},
		{"/subjects/c-value/versions?deleted=true", `[1,2]`},
		{"/subjects/c-value/versions?deletedOnly=true", `[1]`},
		{"/subjects?deletedOnly=true", `[]`}, // a version of it is live
		{"/schemas/ids/9", `{"schema":"{\"type\":\"long\"}"}`},
		{"/config/c-value", `{"compatibilityLevel":"FORWARD"}`},
	}
	for _, tc := range cases {
		if status, body := call(t, hc, "GET", url+tc.path, ""); status != 200 || string(body) != tc.want+"\n" {
			t.Errorf("GET %s: got %d %s, want 200 %s", tc.path, status, body, tc.want)
		}
	}
	// New ids continue after the highest one in the topic.
	if _, body := call(t, hc, "POST", url+"/subjects/d-value/versions", schemaBody(`{"type":"int"}`)); string(body) != `{"id":10}`+"\n" {
		t.Errorf("register: got %s, want id 10", body)
	}
}

func readTopic(t *testing.T, brokers []string, n int) [][2]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("_schemas"))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out [][2]string
	for len(out) < n {
		fetches := cl.PollFetches(ctx)
		if errs := fetches.Errors(); len(errs) > 0 {
			t.Fatalf("read _schemas after %d of %d records: %v", len(out), n, errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) { out = append(out, [2]string{string(r.Key), string(r.Value)}) })
	}
	return out
}

func writeTopic(t *testing.T, brokers []string, records [][2]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	compact := "compact" // as Confluent's registry makes it
	if _, err := kadm.NewClient(cl).CreateTopic(t.Context(), 1, -1, map[string]*string{"cleanup.policy": &compact}, "_schemas"); err != nil {
		t.Fatalf("create _schemas: %v", err)
	}
	krs := make([]*kgo.Record, len(records))
	for i, r := range records {
		krs[i] = &kgo.Record{Topic: "_schemas", Key: []byte(r[0])}
		if r[1] != "" {
			krs[i].Value = []byte(r[1])
		}
	}
	if err := cl.ProduceSync(t.Context(), krs...).FirstErr(); err != nil {
		t.Fatalf("write _schemas: %v", err)
	}
}

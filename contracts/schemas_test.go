package contracts_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/hamba/avro/v2"
)

// Every default of the schemas survives hamba's JSON, which both writes
// the schema each generated type carries (avrogen -fullschema) and the
// text the serde registers: a default it writes wrong would decode an old
// record, one without the field, with another value than the schema's.
// (hamba v2.31 writes a bytes default in base64 and a fixed one as an
// array: such a field is named here.)
func TestEveryDefaultSurvivesTheSchemasJSON(t *testing.T) {
	var files []string
	for _, dir := range []string{"schemas", "../saga/schemas"} {
		matches, err := filepath.Glob(filepath.Join(dir, "*.avsc"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, matches...)
	}
	slices.Sort(files)
	if len(files) == 0 {
		t.Fatal("no schema found")
	}
	parsed, again := &avro.SchemaCache{}, &avro.SchemaCache{}
	checked := 0
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		schema, err := avro.ParseBytesWithCache(text, "", parsed)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		written, err := json.Marshal(schema)
		if err != nil {
			t.Fatalf("%s: write its JSON: %v", file, err)
		}
		back, err := avro.ParseBytesWithCache(written, "", again)
		if err != nil {
			t.Fatalf("%s: its schema written as JSON does not read again (a default written wrong: give it none, or one of another type): %v", file, err)
		}
		want, got := map[string]any{}, map[string]any{}
		defaults(schema, want)
		defaults(back, got)
		for field, d := range want {
			checked++
			if !reflect.DeepEqual(got[field], d) {
				t.Errorf("%s: field %s has default %#v, and %#v once its schema is written as JSON: give it no default, or one of another type", file, field, d, got[field])
			}
		}
	}
	t.Logf("%d defaults checked", checked)
}

// defaults adds the default of every field of s's records, by record and
// field name, to out.
func defaults(s avro.Schema, out map[string]any) {
	switch s := s.(type) {
	case *avro.RecordSchema:
		for _, f := range s.Fields() {
			if f.HasDefault() {
				out[s.FullName()+"."+f.Name()] = f.Default()
			}
			defaults(f.Type(), out)
		}
	case *avro.ArraySchema:
		defaults(s.Items(), out)
	case *avro.MapSchema:
		defaults(s.Values(), out)
	case *avro.UnionSchema:
		for _, t := range s.Types() {
			defaults(t, out)
		}
	}
}

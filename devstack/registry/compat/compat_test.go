package compat_test

import (
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/kafkasaga/kafkasaga/devstack/registry/compat"
)

func parse(t *testing.T, fields ...string) avro.Schema {
	t.Helper()
	s, err := compat.Parse(`{"type":"record","name":"Rec","namespace":"test","fields":[` + strings.Join(fields, ",") + `]}`)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return s
}

const (
	id        = `{"name":"id","type":"string"}`
	n         = `{"name":"n","type":"int"}`
	nDefault  = `{"name":"n","type":"int","default":0}`
	nString   = `{"name":"n","type":"string"}`
	history   = `{"name":"history","type":{"type":"array","items":{"type":"record","name":"Step","fields":[{"name":"at","type":"long"}]}}}`
	union     = `{"name":"a","type":["null","string","bytes"]}`
	next      = `{"name":"next","type":["null","Rec"],"default":null}`
	historyAt = `{"name":"history","type":{"type":"array","items":{"type":"record","name":"Step","fields":[{"name":"at","type":"string"}]}}}`
)

// Check gives the checker's verdict in each direction the level asks for
// and names the field at fault.
func TestCheck(t *testing.T) {
	cases := []struct {
		name     string
		level    string
		old, new []string
		want     []string // "backward|forward field: change", in order
	}{
		{"added with a default", "FULL", []string{id}, []string{id, nDefault}, nil},
		{"added without a default", "BACKWARD", []string{id}, []string{id, n}, []string{"backward n: added without a default"}},
		{"added without a default, forward", "FORWARD", []string{id}, []string{id, n}, nil},
		{"removed without a default", "BACKWARD", []string{id, n}, []string{id}, nil},
		{"removed without a default, forward", "FORWARD", []string{id, n}, []string{id}, []string{"forward n: removed without a default"}},
		{"removed with a default", "FULL", []string{id, nDefault}, []string{id}, nil},
		{"type changed", "FULL", []string{id, n}, []string{id, nString},
			[]string{"backward n: type changed from int to string", "forward n: type changed from int to string"}},
		{"nested type changed", "BACKWARD", []string{history}, []string{historyAt},
			[]string{"backward history[].at: type changed from long to string"}},
		{"anything under NONE", "NONE", []string{id, n}, []string{nString}, nil},
		{"made nullable", "BACKWARD", []string{id, n}, []string{id, `{"name":"n","type":["null","int"],"default":null}`},
			[]string{"backward n: made nullable"}},
		{"nested, made nullable", "BACKWARD", []string{history},
			[]string{`{"name":"history","type":{"type":"array","items":{"type":"record","name":"Step","fields":[{"name":"at","type":["null","long"],"default":null}]}}}`},
			[]string{"backward history[].at: made nullable"}},
		{"a record made nullable", "BACKWARD", []string{`{"name":"step","type":{"type":"record","name":"Step","fields":[{"name":"at","type":"long"}]}}`},
			[]string{`{"name":"step","type":["null",{"type":"record","name":"Step","fields":[{"name":"at","type":"long"}]}],"default":null}`}, nil},
		{"a nullable field added", "BACKWARD", []string{id}, []string{id, `{"name":"n","type":["null","int"],"default":null}`}, nil},
		// Avro allows both; hamba/avro, the serde's library, resolves
		// neither, so the serde could read none of the other's records.
		{"beside a union holding a type and one it promotes to", "FULL", []string{id, union}, []string{id, union, nDefault},
			[]string{"backward a: a union holding a type and one it promotes to"}},
		{"a union holding a type and one it promotes to, added", "BACKWARD", []string{id},
			[]string{id, `{"name":"a","type":["null","long","int"],"default":null}`},
			[]string{"backward a: a union holding a type and one it promotes to"}},
		{"a union holding a type and one it promotes to, removed", "FULL", []string{id, `{"name":"a","type":["null","string","bytes"],"default":null}`},
			[]string{id}, nil},
		{"made nullable where the writer names its record", "BACKWARD",
			[]string{`{"name":"cur","type":{"type":"record","name":"Step","fields":[{"name":"at","type":"long"}]},"default":{"at":0}}`,
				`{"name":"hist","type":{"type":"array","items":"Step"}}`},
			[]string{`{"name":"hist","type":{"type":"array","items":{"type":"record","name":"Step","fields":[{"name":"at","type":["null","long"],"default":null}]}}}`},
			[]string{"backward hist[].at: made nullable"}},
		{"a record that refers to itself", "FULL", []string{id, next}, []string{id, next, nDefault},
			[]string{"backward : ", "forward : "}},
		{"made nullable within a nullable record", "BACKWARD",
			[]string{`{"name":"addr","type":["null",{"type":"record","name":"Addr","fields":[{"name":"street","type":"string"}]}],"default":null}`},
			[]string{`{"name":"addr","type":["null",{"type":"record","name":"Addr","fields":[{"name":"street","type":["null","string"],"default":null}]}],"default":null}`},
			[]string{"backward addr.street: made nullable"}},
		// The previous schema reads the new records: its Go pointer
		// cannot take the plain value.
		{"made not nullable, forward", "FORWARD", []string{id, `{"name":"n","type":["null","int"],"default":null}`}, []string{id, n},
			[]string{"forward n: made not nullable"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			problems := compat.Check(tc.level, parse(t, tc.new...), []compat.Version{{Number: 1, Schema: parse(t, tc.old...)}})
			var got []string
			for _, p := range problems {
				dir := "forward"
				if p.Backward {
					dir = "backward"
				}
				if p.Err == nil || p.Version != 1 {
					t.Errorf("problem %+v: want the checker's error and version 1", p)
				}
				got = append(got, dir+" "+p.Field+": "+p.Change)
			}
			if strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// Only the latest version counts unless the level is transitive.
func TestCheckTransitive(t *testing.T) {
	previous := []compat.Version{{Number: 1, Schema: parse(t, id)}, {Number: 2, Schema: parse(t, id, nDefault)}}
	candidate := parse(t, id, n) // n lost its default: version 1 has nothing to fill it with
	if p := compat.Check("BACKWARD", candidate, previous); len(p) != 0 {
		t.Errorf("BACKWARD: got %v, want none", p)
	}
	p := compat.Check("BACKWARD_TRANSITIVE", candidate, previous)
	if len(p) != 1 || p[0].Version != 1 || p[0].Field != "n" {
		t.Errorf("BACKWARD_TRANSITIVE: got %+v, want one problem with version 1, field n", p)
	}
}

// A default hamba would read as another number is refused when a schema
// is offered (CheckDefaults), but a schema already written with parses:
// its records are decoded with the reader's defaults, not its own.
func TestDefaultsAreCheckedApartFromParsing(t *testing.T) {
	for _, field := range []string{
		`{"name":"f","type":"long","default":9223372036854775807}`,
		`{"name":"f","type":["int","null"],"default":3000000000}`,
		`{"name":"f","type":{"type":"array","items":"long"},"default":[1.5]}`,
		`{"name":"f","type":{"type":"record","name":"R","fields":[{"name":"x","type":"int"}]},"default":{"x":3000000000}}`,
		`{"name":"a","type":{"type":"record","name":"R","fields":[{"name":"x","type":"long"}]}},{"name":"f","type":"R","default":{"x":1.5}}`,
		`{"name":"a","type":{"type":"record","name":"R","namespace":"other","fields":[{"name":"x","type":"long"}]}},{"name":"f","type":"other.R","default":{"x":9007199254740993}}`,
	} {
		text := `{"type":"record","name":"Rec","fields":[` + field + `]}`
		if _, err := compat.Parse(text); err != nil {
			t.Errorf("Parse(%s): %v, want it parsed", field, err)
		}
		if err := compat.CheckDefaults(text); err == nil {
			t.Errorf("CheckDefaults(%s): nil, want an error", field)
		}
	}
	for _, field := range []string{
		`{"name":"f","type":"long","default":-9007199254740992}`,
		`{"name":"f","type":["null","long"],"default":null}`,
		`{"name":"f","type":{"type":"long","logicalType":"timestamp-millis"},"default":-5}`,
		`{"name":"f","type":{"type":"map","values":"int"},"default":{"a":-2147483648}}`,
	} {
		if err := compat.CheckDefaults(`{"type":"record","name":"Rec","fields":[` + field + `]}`); err != nil {
			t.Errorf("CheckDefaults(%s): %v, want nil", field, err)
		}
	}
}

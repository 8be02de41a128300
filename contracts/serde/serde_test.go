package serde

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"

	"github.com/kafkasaga/kafkasaga/contracts"
)

// offlineClient returns a registry client that fails the test if it is used:
// the cases below must be decided without asking the registry.
func offlineClient(t *testing.T) *srclient.SchemaRegistryClient {
	t.Helper()
	transport := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		t.Errorf("unexpected registry request %s %s", req.Method, req.URL.Path)
		return nil, errors.New("no registry in unit tests")
	})
	return srclient.NewSchemaRegistryClient("http://registry.invalid", srclient.WithClient(&http.Client{Transport: transport}))
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func TestDecodeRejectsBadFraming(t *testing.T) {
	s, err := New(offlineClient(t), Config{}, &contracts.ReserveCredit{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{name: "nil", data: nil, want: "0 bytes"},
		{name: "empty", data: []byte{}, want: "0 bytes"},
		{name: "magic byte only", data: []byte{0}, want: "1 bytes"},
		{name: "id cut short", data: []byte{0, 0, 0, 1}, want: "4 bytes"},
		{name: "bad magic byte", data: []byte{1, 0, 0, 0, 1, 2}, want: "magic byte is 1"},
		{name: "JSON instead of Avro", data: []byte(`{"orderId":"o1"}`), want: "magic byte is 123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Decode(tt.data)
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("Decode(%v): got (%v, %v), want an error wrapping ErrUndecodable", tt.data, got, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode(%v): got error %q, want it to contain %q", tt.data, err, tt.want)
			}
		})
	}
}

func TestParseFrame(t *testing.T) {
	id, payload, err := parseFrame([]byte{0, 0x01, 0x02, 0x03, 0x04, 0xaa, 0xbb})
	if err != nil {
		t.Fatalf("parseFrame: %v", err)
	}
	if id != 0x01020304 {
		t.Errorf("got id %#x, want %#x", id, 0x01020304)
	}
	if string(payload) != "\xaa\xbb" {
		t.Errorf("got payload %x, want aabb", payload)
	}
}

// colored has an enum field, so a value can be of the right Go type and
// still not fit its schema.
type colored struct {
	Color string `avro:"color"`
}

func (*colored) Schema() avro.Schema { return coloredSchema }

var coloredSchema = avro.MustParse(`{"type":"record","name":"Colored","namespace":"kafkasaga.serdetest","fields":[
	{"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}}]}`)

// A value that does not fit its schema fails before any registry request.
func TestEncodeRejectsValueOutsideSchema(t *testing.T) {
	s, err := New(offlineClient(t), Config{AutoRegister: true})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct {
		name string
		v    Record
	}{
		{name: "unknown enum symbol", v: &colored{Color: "PURPLE"}},
		{name: "nil pointer", v: (*contracts.ReserveCredit)(nil)},
		{name: "nil record", v: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Encode("test.topic", tt.v)
			if err == nil || got != nil {
				t.Fatalf("Encode(%#v): got (%x, %v), want no bytes and an error", tt.v, got, err)
			}
		})
	}
}

type notPointer struct{}

func (notPointer) Schema() avro.Schema { return coloredSchema }

// otherColored claims the record name of colored with another Go type.
type otherColored struct {
	Color string `avro:"color"`
}

func (*otherColored) Schema() avro.Schema { return coloredSchema }

type primitive struct{}

func (*primitive) Schema() avro.Schema { return avro.NewPrimitiveSchema(avro.String, nil) }

func TestNewRejectsBadReaderTypes(t *testing.T) {
	tests := []struct {
		name  string
		types []Record
		want  string
	}{
		{name: "not a pointer", types: []Record{notPointer{}}, want: "not a pointer to a struct"},
		{name: "nil", types: []Record{nil}, want: "not a pointer to a struct"},
		{name: "not a record", types: []Record{&primitive{}}, want: "not a named record"},
		{name: "two types for one record", types: []Record{&colored{}, &otherColored{}}, want: "kafkasaga.serdetest.Colored has two reader types"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(offlineClient(t), Config{}, tt.types...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%T): got error %v, want one containing %q", tt.types, err, tt.want)
			}
		})
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Error("New(nil client): got no error, want one")
	}
	if _, err := New(offlineClient(t), Config{}, &colored{}, &colored{}); err != nil {
		t.Errorf("New with one type twice: got %v, want no error", err)
	}
}

func TestIsNotFound(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{err: srclient.Error{Code: 40403, Message: "Schema not found"}, want: true},
		{err: srclient.Error{Code: 40401, Message: "Subject not found"}, want: true},
		{err: srclient.Error{Code: 404}, want: false}, // a route, not a schema
		{err: fmt.Errorf("lookup: %w", srclient.Error{Code: 40403}), want: true},
		{err: errors.New("404 Not Found"), want: false}, // not the registry's JSON
		{err: srclient.Error{Code: 50001, Message: "Error in the backend data store"}, want: false},
		{err: srclient.Error{Code: 42201, Message: "Invalid schema"}, want: false},
		{err: errors.New("500 Internal Server Error"), want: false},
		{err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), want: false},
		{err: nil, want: false},
	}
	for _, tt := range tests {
		if got := isNotFound(tt.err); got != tt.want {
			t.Errorf("isNotFound(%v): got %v, want %v", tt.err, got, tt.want)
		}
	}
}

package serde_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/devstack"
	"github.com/kafkasaga/kafkasaga/saga"
)

// countingClient is a registry client that counts the HTTP requests it sends.
func countingClient(t testing.TB, url string) (*srclient.SchemaRegistryClient, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	transport := countingTransport{next: http.DefaultTransport, n: &n}
	return srclient.NewSchemaRegistryClient(url, srclient.WithClient(&http.Client{Transport: transport, Timeout: 5 * time.Second})), &n
}

type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(req)
}

func newSerde(t testing.TB, url string, cfg serde.Config, types ...serde.Record) *serde.Serde {
	t.Helper()
	s, err := serde.New(srclient.NewSchemaRegistryClient(url), cfg, types...)
	if err != nil {
		t.Fatalf("serde.New: %v", err)
	}
	return s
}

func encode(t testing.TB, s *serde.Serde, topic string, v serde.Record) []byte {
	t.Helper()
	data, err := s.Encode(topic, v)
	if err != nil {
		t.Fatalf("Encode(%s, %T): %v", topic, v, err)
	}
	return data
}

func schemaID(t testing.TB, data []byte) uint32 {
	t.Helper()
	if len(data) < 5 || data[0] != 0 {
		t.Fatalf("got message %x, want the Confluent wire format", data)
	}
	return uint32(data[1])<<24 | uint32(data[2])<<16 | uint32(data[3])<<8 | uint32(data[4])
}

// mustParse keeps each test schema out of hamba's process-wide schema cache,
// where it would shadow the contracts schema of the same name.
func mustParse(schema string) avro.Schema {
	s, err := avro.ParseWithCache(schema, "", &avro.SchemaCache{})
	if err != nil {
		panic(err)
	}
	return s
}

// reserveCreditV2 is ReserveCredit as a newer producer writes it, with a
// field the contracts type does not know yet.
type reserveCreditV2 struct {
	CustomerID string `avro:"customerId"`
	OrderID    string `avro:"orderId"`
	Amount     int64  `avro:"amount"`
	Channel    string `avro:"channel"`
}

func (*reserveCreditV2) Schema() avro.Schema { return reserveCreditV2Schema }

var reserveCreditV2Schema = mustParse(`{"type":"record","name":"ReserveCredit","namespace":"kafkasaga.customer","fields":[
	{"name":"customerId","type":"string"},
	{"name":"orderId","type":"string"},
	{"name":"amount","type":"long"},
	{"name":"channel","type":"string","default":"web"}]}`)

// sagaInstanceV0 is SagaInstance as an older producer writes it, before the
// fields that have defaults in the contracts schema.
type sagaInstanceV0 struct {
	SagaID   string `avro:"sagaId"`
	SagaType string `avro:"sagaType"`
	State    string `avro:"state"`
	Step     int    `avro:"step"`
	Data     []byte `avro:"data"`
}

func (*sagaInstanceV0) Schema() avro.Schema { return sagaInstanceV0Schema }

var sagaInstanceV0Schema = mustParse(`{"type":"record","name":"SagaInstance","namespace":"kafkasaga.saga","fields":[
	{"name":"sagaId","type":"string"},
	{"name":"sagaType","type":"string"},
	{"name":"state","type":"string"},
	{"name":"step","type":"int"},
	{"name":"data","type":"bytes"}]}`)

// reserveCreditAmountText is a ReserveCredit no reader can resolve: its amount is a string.
type reserveCreditAmountText struct {
	CustomerID string `avro:"customerId"`
	OrderID    string `avro:"orderId"`
	Amount     string `avro:"amount"`
}

func (*reserveCreditAmountText) Schema() avro.Schema { return reserveCreditAmountTextSchema }

var reserveCreditAmountTextSchema = mustParse(`{"type":"record","name":"ReserveCredit","namespace":"kafkasaga.customer","fields":[
	{"name":"customerId","type":"string"},
	{"name":"orderId","type":"string"},
	{"name":"amount","type":"string"}]}`)

// listed has an array, whose length a payload may claim to be anything.
type listed struct {
	Items []listItem `avro:"items"`
}

type listItem struct {
	N int64 `avro:"n"`
}

func (*listed) Schema() avro.Schema { return listedSchema }

var listedSchema = mustParse(`{"type":"record","name":"Listed","namespace":"kafkasaga.serdetest","fields":[
	{"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[{"name":"n","type":"long"}]}}}]}`)

type colored struct {
	Color string `avro:"color"`
}

func (*colored) Schema() avro.Schema { return coloredSchema }

var coloredSchema = mustParse(`{"type":"record","name":"Colored","namespace":"kafkasaga.serdetest","fields":[
	{"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}}]}`)

func sampleRecords() []serde.Record {
	at := time.UnixMilli(1_760_000_000_123).UTC()
	return []serde.Record{
		&contracts.ReserveCredit{CustomerID: "c1", OrderID: "o1", Amount: 4200},
		&contracts.ReleaseCredit{CustomerID: "c1", OrderID: "o1"},
		&contracts.CustomerRecord{CustomerID: "c1", Name: "Ada", CreditLimit: 10_000},
		&contracts.ReservationRecord{OrderID: "o1", CustomerID: "c1", Amount: 4200, Status: "RESERVED"},
		&contracts.OrderRecord{OrderID: "o1", CustomerID: "c1", OrderTotal: 4200, State: "REJECTED", RejectionReason: "INSUFFICIENT_CREDIT", CreatedAt: at, CancelJoinedKeys: []string{}},
		&saga.SagaInstance{SagaID: "o1", SagaType: contracts.SagaTypeCreateOrder, Version: 2, State: "RUNNING", Step: 1,
			PendingCommandID: "o1:reserve_credit", Attempt: 2, Deadline: at.Add(time.Minute), Data: []byte{0, 0, 0, 0, 7, 1, 2},
			History: []saga.SagaTransition{
				{At: at, Event: "started", State: "RUNNING", Step: "reserve_credit"},
				{At: at.Add(time.Second), Event: "timeout", State: "RUNNING", Step: "reserve_credit"},
			}},
	}
}

func readerTypes(records []serde.Record) []serde.Record {
	types := make([]serde.Record, 0, len(records))
	for _, r := range records {
		types = append(types, reflect.New(reflect.TypeOf(r).Elem()).Interface().(serde.Record))
	}
	return types
}

func TestRoundTripSharedTopic(t *testing.T) {
	stack := devstack.StartForTest(t)
	const topic = "roundtrip.shared"
	records := sampleRecords()
	producer := newSerde(t, stack.RegistryURL(), serde.Config{AutoRegister: true})
	consumer := newSerde(t, stack.RegistryURL(), serde.Config{}, readerTypes(records)...)

	ids := make(map[uint32]string)
	for _, want := range records {
		data := encode(t, producer, topic, want)
		name := want.Schema().(avro.NamedSchema).FullName()
		if other, ok := ids[schemaID(t, data)]; ok {
			t.Errorf("%s and %s got the same schema id %d, want one each", other, name, schemaID(t, data))
		}
		ids[schemaID(t, data)] = name

		got, err := consumer.Decode(data)
		if err != nil {
			t.Fatalf("Decode(%s): %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %s: got %+v, want %+v", name, got, want)
		}
	}

	subjects, err := srclient.NewSchemaRegistryClient(stack.RegistryURL()).GetSubjects()
	if err != nil {
		t.Fatalf("GetSubjects: %v", err)
	}
	for _, name := range ids {
		if want := serde.Subject(topic, name); !slices.Contains(subjects, want) {
			t.Errorf("got subjects %v, want them to contain %s", subjects, want)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	stack := devstack.StartForTest(t)
	records := sampleRecords()
	producer := newSerde(t, stack.RegistryURL(), serde.Config{AutoRegister: true})
	consumer := newSerde(t, stack.RegistryURL(), serde.Config{}, readerTypes(records)...)

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				want := records[(g+i)%len(records)]
				data, err := producer.Encode("concurrent", want)
				if err != nil {
					t.Errorf("Encode(%T): %v", want, err)
					return
				}
				got, err := consumer.Decode(data)
				if err != nil {
					t.Errorf("Decode(%T): %v", want, err)
					return
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got %+v, want %+v", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// The registry is asked once per (topic, type) by a producer and once per
// schema id by a consumer; after that both work from their caches.
func TestSchemaIDsAreCached(t *testing.T) {
	stack := devstack.StartForTest(t)
	producerClient, produced := countingClient(t, stack.RegistryURL())
	producer, err := serde.New(producerClient, serde.Config{AutoRegister: true})
	if err != nil {
		t.Fatalf("serde.New: %v", err)
	}

	first := encode(t, producer, "cached", &contracts.ReserveCredit{CustomerID: "c1", OrderID: "o1", Amount: 1})
	afterFirst := produced.Load()
	if afterFirst == 0 {
		t.Fatal("got no registry request for the first Encode, want at least one")
	}
	messages := [][]byte{first}
	for i := range 5 {
		data := encode(t, producer, "cached", &contracts.ReserveCredit{CustomerID: "c1", OrderID: "o1", Amount: int64(i + 2)})
		if got, want := schemaID(t, data), schemaID(t, first); got != want {
			t.Errorf("Encode #%d: got schema id %d, want %d", i+2, got, want)
		}
		messages = append(messages, data)
	}
	if got := produced.Load(); got != afterFirst {
		t.Errorf("got %d registry requests after 6 Encodes, want %d (those of the first)", got, afterFirst)
	}

	// Another topic is another subject, so one more registration.
	encode(t, producer, "cached.other", &contracts.ReserveCredit{})
	if got := produced.Load(); got <= afterFirst {
		t.Errorf("got %d registry requests after encoding for a new topic, want more than %d", got, afterFirst)
	}

	consumerClient, consumed := countingClient(t, stack.RegistryURL())
	consumer, err := serde.New(consumerClient, serde.Config{}, &contracts.ReserveCredit{})
	if err != nil {
		t.Fatalf("serde.New: %v", err)
	}
	for i, data := range messages {
		got, err := consumer.Decode(data)
		if err != nil {
			t.Fatalf("Decode #%d: %v", i+1, err)
		}
		if want := int64(i + 1); got.(*contracts.ReserveCredit).Amount != want {
			t.Errorf("Decode #%d: got amount %d, want %d", i+1, got.(*contracts.ReserveCredit).Amount, want)
		}
	}
	if got := consumed.Load(); got != 1 {
		t.Errorf("got %d registry requests for %d Decodes of one schema id, want 1", got, len(messages))
	}
}

func TestSchemaEvolution(t *testing.T) {
	stack := devstack.StartForTest(t)
	producer := newSerde(t, stack.RegistryURL(), serde.Config{AutoRegister: true})
	consumer := newSerde(t, stack.RegistryURL(), serde.Config{}, &contracts.ReserveCredit{}, &saga.SagaInstance{})

	t.Run("writer has a field the reader lacks", func(t *testing.T) {
		data := encode(t, producer, "evolution.newer", &reserveCreditV2{CustomerID: "c1", OrderID: "o1", Amount: 300, Channel: "mobile"})
		got, err := consumer.Decode(data)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		want := &contracts.ReserveCredit{CustomerID: "c1", OrderID: "o1", Amount: 300}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})

	t.Run("reader has fields with defaults the writer lacks", func(t *testing.T) {
		data := encode(t, producer, "evolution.older", &sagaInstanceV0{SagaID: "s1", SagaType: "CreateOrder", State: "RUNNING", Step: 2, Data: []byte{9}})
		got, err := consumer.Decode(data)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		v, ok := got.(*saga.SagaInstance)
		if !ok {
			t.Fatalf("got %T, want *saga.SagaInstance", got)
		}
		if v.SagaID != "s1" || v.State != "RUNNING" || v.Step != 2 || !bytes.Equal(v.Data, []byte{9}) {
			t.Errorf("got %+v, want the writer's sagaId s1, state RUNNING, step 2, data 09", v)
		}
		if v.Attempt != 1 {
			t.Errorf("got attempt %d, want the reader's default 1", v.Attempt)
		}
		if v.Version != 1 {
			t.Errorf("got version %d, want the reader's default 1: an instance stored before versions runs under the first", v.Version)
		}
		if !v.Deadline.Equal(time.UnixMilli(0)) {
			t.Errorf("got deadline %v, want the reader's default, the epoch", v.Deadline)
		}
	})

	t.Run("both versions under one subject", func(t *testing.T) {
		const topic = "evolution.subject"
		old := encode(t, producer, topic, &contracts.ReserveCredit{CustomerID: "c1", OrderID: "o1", Amount: 1})
		newer := encode(t, producer, topic, &reserveCreditV2{CustomerID: "c1", OrderID: "o2", Amount: 2, Channel: "web"})
		if schemaID(t, old) == schemaID(t, newer) {
			t.Fatalf("got schema id %d for both versions, want two", schemaID(t, old))
		}
		for _, data := range [][]byte{old, newer} {
			if _, err := consumer.Decode(data); err != nil {
				t.Errorf("Decode schema id %d: %v", schemaID(t, data), err)
			}
		}
	})
}

func TestWithoutAutoRegister(t *testing.T) {
	stack := devstack.StartForTest(t)
	const topic = "production"
	subject := serde.Subject(topic, "kafkasaga.customer.ReserveCredit")
	prod := newSerde(t, stack.RegistryURL(), serde.Config{AutoRegister: false})
	v := &contracts.ReserveCredit{CustomerID: "c1", OrderID: "o1", Amount: 5}

	if data, err := prod.Encode(topic, v); !errors.Is(err, serde.ErrNotRegistered) || data != nil {
		t.Fatalf("Encode before registration: got (%x, %v), want no bytes and ErrNotRegistered", data, err)
	} else if !strings.Contains(err.Error(), subject) {
		t.Errorf("got error %q, want it to name subject %s", err, subject)
	}
	if err := prod.Register(topic, &contracts.ReserveCredit{}); !errors.Is(err, serde.ErrNotRegistered) {
		t.Fatalf("Register (look up) before registration: got %v, want ErrNotRegistered", err)
	}

	dev := newSerde(t, stack.RegistryURL(), serde.Config{AutoRegister: true})
	if err := dev.Register(topic, &contracts.ReserveCredit{}, &contracts.ReleaseCredit{}); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := prod.Register(topic, &contracts.ReserveCredit{}, &contracts.ReleaseCredit{}); err != nil {
		t.Fatalf("Register (look up) after registration: %v", err)
	}
	data := encode(t, prod, topic, v)
	if got, want := schemaID(t, data), schemaID(t, encode(t, dev, topic, v)); got != want {
		t.Errorf("got schema id %d from the look-up, want %d, the registered one", got, want)
	}
}

func TestUndecodable(t *testing.T) {
	stack := devstack.StartForTest(t)
	producer := newSerde(t, stack.RegistryURL(), serde.Config{AutoRegister: true})
	consumer := newSerde(t, stack.RegistryURL(), serde.Config{}, &contracts.ReserveCredit{})
	valid := encode(t, producer, "undecodable", &contracts.ReserveCredit{CustomerID: "c1", OrderID: "o1", Amount: 7})
	if _, err := consumer.Decode(valid); err != nil {
		t.Fatalf("Decode of a valid message: %v", err)
	}

	lists := newSerde(t, stack.RegistryURL(), serde.Config{}, &contracts.ReserveCredit{}, &listed{})
	empty := encode(t, producer, "undecodable.listed", &listed{}) // the last byte is the array's count, 0
	huge := binary.AppendVarint(slices.Clone(empty[:len(empty)-1]), 1<<41)
	if _, err := lists.Decode(huge); !errors.Is(err, serde.ErrUndecodable) {
		t.Errorf("Decode of an array of 2^41 items: got %v, want an error wrapping ErrUndecodable", err)
	}

	tests := []struct {
		name string
		data []byte
		want string // the error must name this
	}{
		{name: "unknown schema id", data: []byte{0, 0x7f, 0xff, 0xff, 0xff, 2, 0x61}, want: "schema id 2147483647"},
		{name: "no reader type", data: encode(t, producer, "undecodable", &contracts.ReleaseCredit{CustomerID: "c1", OrderID: "o1"}), want: "kafkasaga.customer.ReleaseCredit"},
		{name: "incompatible writer", data: encode(t, producer, "undecodable.text", &reserveCreditAmountText{Amount: "seven"}), want: "kafkasaga.customer.ReserveCredit"},
		{name: "payload cut short", data: valid[:len(valid)-1], want: "kafkasaga.customer.ReserveCredit"},
		{name: "payload missing", data: valid[:5], want: "kafkasaga.customer.ReserveCredit"},
		{name: "bytes after the record", data: append(slices.Clone(valid), 0), want: "bytes left"},
		{name: "string length past the end", data: append(slices.Clone(valid[:5]), 0x7e), want: "kafkasaga.customer.ReserveCredit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := consumer.Decode(tt.data)
			if !errors.Is(err, serde.ErrUndecodable) {
				t.Fatalf("Decode(%x): got (%+v, %v), want an error wrapping ErrUndecodable", tt.data, got, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode(%x): got error %q, want it to contain %q", tt.data, err, tt.want)
			}
		})
	}
}

// A schema id past the registry's ids (Java ints) is undecodable without
// asking it: Confluent's registry answers a bare 404 for one, which is
// taken as a registry away, and the record was tried again for ever,
// holding back its partition.
func TestASchemaIDPastTheRegistrysIsUndecodable(t *testing.T) {
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the registry was asked %s", r.URL.Path)
		http.Error(w, `{"error_code":404,"message":"HTTP 404 Not Found"}`, http.StatusNotFound)
	}))
	defer registry.Close()
	s := newSerde(t, registry.URL, serde.Config{}, &contracts.ReserveCredit{})
	for _, data := range [][]byte{{0, 0x80, 0, 0, 0, 2, 0x61}, {0, 0xff, 0xff, 0xff, 0xff, 2, 0x61}} {
		if _, err := s.Decode(data); !errors.Is(err, serde.ErrUndecodable) {
			t.Errorf("Decode(%x): got %v, want an error wrapping ErrUndecodable", data, err)
		}
	}
}

func TestEncodeRejectsValueOutsideSchema(t *testing.T) {
	stack := devstack.StartForTest(t)
	client, requests := countingClient(t, stack.RegistryURL())
	s, err := serde.New(client, serde.Config{AutoRegister: true})
	if err != nil {
		t.Fatalf("serde.New: %v", err)
	}
	if data, err := s.Encode("colors", &colored{Color: "PURPLE"}); err == nil || data != nil {
		t.Fatalf("Encode of an unknown enum symbol: got (%x, %v), want no bytes and an error", data, err)
	}
	if got := requests.Load(); got != 0 {
		t.Errorf("got %d registry requests for a value that does not fit its schema, want 0", got)
	}
	encode(t, s, "colors", &colored{Color: "GREEN"})
}

// A registry that cannot be reached is a reason to retry, not to dead-letter.
func TestRegistryDown(t *testing.T) {
	stack := devstack.StartForTest(t)
	data := encode(t, newSerde(t, stack.RegistryURL(), serde.Config{AutoRegister: true}), "down", &contracts.ReserveCredit{})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	downURL := "http://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}

	s := newSerde(t, downURL, serde.Config{AutoRegister: true}, &contracts.ReserveCredit{})
	if got, err := s.Decode(data); err == nil || errors.Is(err, serde.ErrUndecodable) {
		t.Errorf("Decode with the registry down: got (%+v, %v), want an error that does not wrap ErrUndecodable", got, err)
	}
	if got, err := s.Encode("down", &contracts.ReserveCredit{}); err == nil || errors.Is(err, serde.ErrNotRegistered) {
		t.Errorf("Encode with the registry down: got (%x, %v), want an error that does not wrap ErrNotRegistered", got, err)
	}
}

// A 404 from something in front of the registry (a proxy while the
// registry restarts, a wrong path in the URL) is no registry's answer that
// a schema does not exist: a message is not dead-lettered for it, nor is a
// schema said to be unregistered.
func TestANotFoundFromOtherThanTheRegistryIsNoAnswer(t *testing.T) {
	stack := devstack.StartForTest(t)
	data := encode(t, newSerde(t, stack.RegistryURL(), serde.Config{AutoRegister: true}), "proxied", &contracts.ReserveCredit{})
	for name, h := range map[string]http.HandlerFunc{
		"a page": http.NotFound,
		"JSON, 404": func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"error_code":404,"message":"HTTP 404 Not Found"}`, 404)
		},
	} {
		proxy := httptest.NewServer(h)
		defer proxy.Close()
		s := newSerde(t, proxy.URL, serde.Config{}, &contracts.ReserveCredit{})
		if got, err := s.Decode(data); err == nil || errors.Is(err, serde.ErrUndecodable) {
			t.Errorf("%s: Decode: got (%+v, %v), want an error that does not wrap ErrUndecodable", name, got, err)
		}
		if got, err := s.Encode("proxied", &contracts.ReserveCredit{}); err == nil || errors.Is(err, serde.ErrNotRegistered) {
			t.Errorf("%s: Encode: got (%x, %v), want an error that does not wrap ErrNotRegistered", name, got, err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	stack := devstack.StartForTest(b)
	s := newSerde(b, stack.RegistryURL(), serde.Config{AutoRegister: true})
	v := &contracts.ReserveCredit{CustomerID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", OrderID: "9b2d6f1e-6c1b-4b6e-8f7a-2d1c0e5a4b3c", Amount: 123_456}
	encode(b, s, contracts.TopicCustomerCommands, v)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Encode(contracts.TopicCustomerCommands, v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	stack := devstack.StartForTest(b)
	producer := newSerde(b, stack.RegistryURL(), serde.Config{AutoRegister: true})
	consumer := newSerde(b, stack.RegistryURL(), serde.Config{}, &contracts.ReserveCredit{})
	data := encode(b, producer, contracts.TopicCustomerCommands, &contracts.ReserveCredit{CustomerID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", OrderID: "9b2d6f1e-6c1b-4b6e-8f7a-2d1c0e5a4b3c", Amount: 123_456})
	if _, err := consumer.Decode(data); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := consumer.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// node is a record that refers to itself.
type node struct {
	V    int64 `avro:"v"`
	Next *node `avro:"next"`
}

func (*node) Schema() avro.Schema { return nodeSchema }

var nodeSchema = mustParse(`{"type":"record","name":"Node","namespace":"kafkasaga.serdetest","fields":[
	{"name":"v","type":"long"},{"name":"next","type":["null","Node"],"default":null}]}`)

// A record that refers to itself, written with the reader's own schema, is
// read: resolving the writer's schema against the reader's recursed for
// ever, and the process died of it, at every delivery.
func TestARecursiveRecordIsDecoded(t *testing.T) {
	stack := devstack.StartForTest(t)
	producer := newSerde(t, stack.RegistryURL(), serde.Config{AutoRegister: true})
	consumer := newSerde(t, stack.RegistryURL(), serde.Config{}, &node{})
	want := &node{V: 1, Next: &node{V: 2}}
	got, err := consumer.Decode(encode(t, producer, "nodes", want))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// reserveCreditTagged is ReserveCredit as a newer producer writes it, with
// an array the contracts type does not know, which a reader skips.
type reserveCreditTagged struct {
	CustomerID string   `avro:"customerId"`
	OrderID    string   `avro:"orderId"`
	Amount     int64    `avro:"amount"`
	Tags       []string `avro:"tags"`
}

func (*reserveCreditTagged) Schema() avro.Schema { return reserveCreditTaggedSchema }

var reserveCreditTaggedSchema = mustParse(`{"type":"record","name":"ReserveCredit","namespace":"kafkasaga.customer","fields":[
	{"name":"customerId","type":"string"},
	{"name":"orderId","type":"string"},
	{"name":"amount","type":"long"},
	{"name":"tags","type":{"type":"array","items":"string"},"default":[]}]}`)

// reserveCreditNumbered is ReserveCredit with an int the contracts type
// does not know, which a reader skips.
type reserveCreditNumbered struct {
	CustomerID string `avro:"customerId"`
	OrderID    string `avro:"orderId"`
	Amount     int64  `avro:"amount"`
	N          int32  `avro:"n"`
}

func (*reserveCreditNumbered) Schema() avro.Schema { return reserveCreditNumberedSchema }

var reserveCreditNumberedSchema = mustParse(`{"type":"record","name":"ReserveCredit","namespace":"kafkasaga.customer","fields":[
	{"name":"customerId","type":"string"},
	{"name":"orderId","type":"string"},
	{"name":"amount","type":"long"},
	{"name":"n","type":"int","default":0}]}`)

// reserveCreditTree is ReserveCredit with a field the contracts type does
// not know, of a type that refers to itself.
type reserveCreditTree struct {
	CustomerID string `avro:"customerId"`
	OrderID    string `avro:"orderId"`
	Amount     int64  `avro:"amount"`
	Tree       []tree `avro:"tree"`
}

type tree struct {
	Kids []tree `avro:"kids"`
}

func (*reserveCreditTree) Schema() avro.Schema { return reserveCreditTreeSchema }

var reserveCreditTreeSchema = mustParse(`{"type":"record","name":"ReserveCredit","namespace":"kafkasaga.customer","fields":[
	{"name":"customerId","type":"string"},
	{"name":"orderId","type":"string"},
	{"name":"amount","type":"long"},
	{"name":"tree","type":{"type":"array","items":{"type":"record","name":"T","fields":[
		{"name":"kids","type":{"type":"array","items":"T"}}]}},"default":[]}]}`)

// A payload the decoder would read wrongly is undecodable, whatever it
// claims: an array of -2^63 items (hamba made a slice of negative length
// and wrote outside it), 2^62 items of a field the reader skips (it
// skipped them one by one past the payload's end, for ever, and would
// after a block whose size is not that of its items), a writer whose field
// the reader lacks refers to itself (building its decoder recursed until
// the process died), records nested deeper than the bound.
func TestAHostilePayloadIsUndecodable(t *testing.T) {
	stack := devstack.StartForTest(t)
	producer := newSerde(t, stack.RegistryURL(), serde.Config{AutoRegister: true})
	consumer := newSerde(t, stack.RegistryURL(), serde.Config{}, &contracts.ReserveCredit{}, &listed{}, &node{}, &colored{})

	empty := encode(t, producer, "hostile.listed", &listed{}) // the last byte is the array's count, 0
	tagged := encode(t, producer, "hostile.tagged", &reserveCreditTagged{CustomerID: "c1", OrderID: "o1", Amount: 7, Tags: []string{}})
	nodes := func(n int) *node {
		deep := &node{}
		for range n - 1 {
			deep = &node{Next: deep}
		}
		return deep
	}
	red := encode(t, producer, "hostile.colored", &colored{Color: "RED"})
	numbered := encode(t, producer, "hostile.numbered", &reserveCreditNumbered{CustomerID: "c1", OrderID: "o1", Amount: 7}) // the last byte is n, 0
	tests := []struct {
		name string
		data []byte
	}{
		{"an array of -2^63 items", append(binary.AppendVarint(slices.Clone(empty[:len(empty)-1]), math.MinInt64), 0, 0)},
		{"a block of -2^63 items after one of one", append(binary.AppendVarint(append(slices.Clone(empty[:len(empty)-1]), 2, 2), math.MinInt64), 0, 0)},
		{"a block whose size is past the end", append(slices.Clone(empty[:len(empty)-1]), 1, 0x7e, 2, 0)},
		{"2^62 items of a field the reader lacks", binary.AppendVarint(slices.Clone(tagged[:len(tagged)-1]), 1<<62)},
		{"a writer's field the reader lacks refers to itself", encode(t, producer, "hostile.tree", &reserveCreditTree{CustomerID: "c1", OrderID: "o1", Amount: 7, Tree: []tree{{}}})},
		{"records nested 257 deep", encode(t, producer, "hostile.nodes", nodes(257))},
		{"an enum symbol past the last", append(slices.Clone(red[:len(red)-1]), 4)},
		// A decoder skipping an int reads 5 bytes at most, and took the
		// sixth for bytes past the record, unread.
		{"an int of 6 bytes in a field the reader lacks", append(slices.Clone(numbered[:len(numbered)-1]), 0x80, 0x80, 0x80, 0x80, 0x80, 0)},
		// A skipped block of one string said to be one byte: a decoder
		// jumps one byte, to a count of 2^62 where the string goes on.
		{"a block said shorter than its items", append(slices.Clone(tagged[:len(tagged)-1]), append(append([]byte{1, 2, 20}, binary.AppendVarint(nil, 1<<62)...), 0)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := consumer.Decode(tt.data); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, serde.ErrUndecodable) {
					t.Errorf("Decode(%x): got %v, want an error wrapping ErrUndecodable", tt.data, err)
				}
			case <-time.After(10 * time.Second):
				// Its goroutine would spin on, slowing every later test.
				panic(fmt.Sprintf("Decode(%x) did not return in 10 s", tt.data))
			}
		})
	}
	if _, err := consumer.Decode(tagged); err != nil {
		t.Errorf("Decode of a ReserveCredit with tags: %v", err)
	}
	if _, err := consumer.Decode(encode(t, producer, "hostile.nodes", nodes(256))); err != nil {
		t.Errorf("Decode of records nested 256 deep: %v", err)
	}
}

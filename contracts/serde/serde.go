// Package serde turns contracts records into Kafka message values and back,
// in the Confluent wire format: magic byte 0, the 4-byte big-endian id of the
// writer's schema in the schema registry, then the Avro binary encoding.
//
// Several record types share a topic, so subjects follow the
// TopicRecordNameStrategy: "<topic>-<record full name>". A consumer decodes
// with the writer's schema, fetched by id, resolved against its own reader
// type (or with the reader's, when the two are one on the wire), so producers and consumers evolve their schemas independently within
// the registry's compatibility rules.
package serde

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"
)

// Record is a generated Avro type: contracts types implement it on their
// pointer. Schema must return the same schema on every call, as generated
// code does: Encode caches schema ids by it.
type Record = interface{ Schema() avro.Schema }

// Config says how a Serde treats the registry.
type Config struct {
	// AutoRegister registers a schema the first time it is used, which suits
	// development. In production schemas are registered ahead by
	// `make schemas` and a process only looks them up, so no producer can
	// change a subject on its own.
	AutoRegister bool
}

// Subject is the registry subject of a record type on a topic
// (TopicRecordNameStrategy).
func Subject(topic, recordFullName string) string {
	return topic + "-" + recordFullName
}

// Serde encodes and decodes records. It is safe for concurrent use.
type Serde struct {
	client  srclient.ISchemaRegistryClient
	cfg     Config
	readers map[string]readerType // by record full name and alias; read-only after New

	writerPool sync.Pool // *avro.Writer, reused so Encode allocates only its result
	readerPool sync.Pool // *avro.Reader

	mu       sync.RWMutex
	ids      map[subjectKey]uint32     // schema id of each (topic, schema) seen by Encode
	resolved map[uint32]resolvedSchema // by writer schema id, for Decode
}

// subjectKey identifies a subject and the exact schema registered under it
// without building the subject string, so the cached path of Encode does not
// allocate. Schemas are compared by identity: each generated type has one.
type subjectKey struct {
	topic  string
	schema avro.Schema
}

type readerType struct {
	typ    reflect.Type // the struct type; Decode returns a new pointer to it
	schema avro.Schema
}

type resolvedSchema struct {
	name   string      // the writer's record full name
	writer avro.Schema // the writer's, which the payload is checked with
	schema avro.Schema // the reader's, or the writer's resolved against it: what the payload is decoded with
	typ    reflect.Type
}

// New returns a Serde that decodes into the given reader types, e.g.
// &contracts.ReserveCredit{}, matched to a message by the record full name of
// its writer schema. It turns on the client's cache and turns off its codec
// creation, which would only duplicate the work of hamba/avro.
func New(client srclient.ISchemaRegistryClient, cfg Config, types ...Record) (*Serde, error) {
	if client == nil {
		return nil, errors.New("new serde: schema registry client is nil")
	}
	readers, err := readerTypes(types)
	if err != nil {
		return nil, fmt.Errorf("new serde: %w", err)
	}
	client.CachingEnabled(true)
	client.CodecCreationEnabled(false)

	s := &Serde{
		client:   client,
		cfg:      cfg,
		readers:  readers,
		ids:      make(map[subjectKey]uint32),
		resolved: make(map[uint32]resolvedSchema),
	}
	s.writerPool.New = func() any { return avro.NewWriter(nil, 512, avro.WithWriterConfig(api)) }
	s.readerPool.New = func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(api)) }
	return s, nil
}

// api is hamba/avro's default configuration but for the items an array
// may claim: a payload that claims more than maxItems is undecodable,
// where the decoder would first allocate them all, and a count of 2^41
// stopped the process (out of memory) at every delivery of the record.
// One byte encodes an item at least (but for nulls and empty records), so
// this is about what a 1 MiB record can hold.
var api = avro.Config{MaxSliceAllocSize: maxItems}.Freeze()

const maxItems = 1 << 20

func readerTypes(types []Record) (map[string]readerType, error) {
	readers := make(map[string]readerType, len(types))
	var errs []error
	for _, v := range types {
		t := reflect.TypeOf(v)
		if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
			errs = append(errs, fmt.Errorf("reader type %T is not a pointer to a struct", v))
			continue
		}
		named, ok := v.Schema().(avro.NamedSchema)
		if !ok {
			errs = append(errs, fmt.Errorf("reader type %T has a %s schema, not a named record", v, v.Schema().Type()))
			continue
		}
		r := readerType{typ: t.Elem(), schema: named}
		for _, name := range append([]string{named.FullName()}, named.Aliases()...) {
			if prev, ok := readers[name]; ok && prev.typ != r.typ {
				errs = append(errs, fmt.Errorf("record %s has two reader types: %s and %s", name, prev.typ, r.typ))
				continue
			}
			readers[name] = r
		}
	}
	return readers, errors.Join(errs...)
}

// Register makes sure the schemas of types have ids under their subjects on
// topic: it registers them when AutoRegister is set and looks them up
// otherwise. `make schemas` calls it to register every schema ahead. A
// process does not: without AutoRegister, a missing schema fails its first
// Encode (ErrNotRegistered).
func (s *Serde) Register(topic string, types ...Record) error {
	var errs []error
	for _, v := range types {
		named, err := namedSchema(topic, v)
		if err == nil {
			_, err = s.schemaID(topic, named)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Encode returns v in the Confluent wire format, with the id of v's schema
// under the subject of v's record on topic. A value that does not fit its
// schema is an error and produces nothing.
func (s *Serde) Encode(topic string, v Record) ([]byte, error) {
	named, err := namedSchema(topic, v)
	if err != nil {
		return nil, err
	}

	w := s.writerPool.Get().(*avro.Writer)
	defer s.putWriter(w)
	w.Reset(nil)
	// Encode before asking for the id: a bad value must not reach the
	// registry. The header's id is filled in below.
	var header [headerSize]byte
	_, _ = w.Write(header[:])
	w.WriteVal(named, v)
	if w.Error != nil {
		return nil, fmt.Errorf("encode %s for topic %s: %w", named.FullName(), topic, w.Error)
	}

	id, err := s.schemaID(topic, named)
	if err != nil {
		return nil, err
	}
	out := make([]byte, w.Buffered())
	copy(out, w.Buffer())
	out[0] = magicByte
	binary.BigEndian.PutUint32(out[1:headerSize], id)
	return out, nil
}

// maxPooledWriter keeps one huge message from pinning its buffer in the pool.
const maxPooledWriter = 64 << 10

func (s *Serde) putWriter(w *avro.Writer) {
	if cap(w.Buffer()) > maxPooledWriter {
		return
	}
	w.Error = nil
	s.writerPool.Put(w)
}

func namedSchema(topic string, v Record) (avro.NamedSchema, error) {
	if v == nil {
		return nil, fmt.Errorf("record for topic %s is nil", topic)
	}
	named, ok := v.Schema().(avro.NamedSchema)
	if !ok {
		return nil, fmt.Errorf("%T for topic %s has a %s schema, not a named record", v, topic, v.Schema().Type())
	}
	return named, nil
}

// schemaID returns the registry id of schema under its subject on topic,
// asking the registry only the first time.
func (s *Serde) schemaID(topic string, schema avro.NamedSchema) (uint32, error) {
	key := subjectKey{topic: topic, schema: schema}
	s.mu.RLock()
	id, ok := s.ids[key]
	s.mu.RUnlock()
	if ok {
		return id, nil
	}

	subject := Subject(topic, schema.FullName())
	id, err := s.registerOrLookUp(subject, schema)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.ids[key] = id
	s.mu.Unlock()
	return id, nil
}

func (s *Serde) registerOrLookUp(subject string, schema avro.Schema) (uint32, error) {
	// The full JSON, not schema.String(): the canonical form drops defaults,
	// and the registry's compatibility checks need them.
	full, err := json.Marshal(schema)
	if err != nil {
		return 0, fmt.Errorf("schema for subject %s to JSON: %w", subject, err)
	}

	var got *srclient.Schema
	if s.cfg.AutoRegister {
		got, err = s.client.CreateSchema(subject, string(full), srclient.Avro)
		if err != nil {
			return 0, fmt.Errorf("register schema under subject %s: %w", subject, err)
		}
	} else {
		got, err = s.client.LookupSchema(subject, string(full), srclient.Avro)
		if isNotFound(err) {
			return 0, fmt.Errorf("schema is not registered under subject %s (register it ahead with `make schemas`, or set AutoRegister in development): %w: %w",
				subject, ErrNotRegistered, err)
		}
		if err != nil {
			return 0, fmt.Errorf("look up schema under subject %s: %w", subject, err)
		}
	}
	if got.ID() <= 0 || got.ID() > math.MaxInt32 {
		return 0, fmt.Errorf("registry gave schema id %d for subject %s, want a positive 32-bit id", got.ID(), subject)
	}
	return uint32(got.ID()), nil
}

package serde

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"

	"github.com/kafkasaga/kafkasaga/devstack/registry/compat"
)

// Decode returns a new *T of the reader type registered for the record named
// by the message's writer schema. Errors that retrying cannot fix wrap
// ErrUndecodable.
func (s *Serde) Decode(data []byte) (Record, error) {
	id, payload, err := parseFrame(data)
	if err != nil {
		return nil, err
	}
	res, err := s.resolve(id)
	if err != nil {
		return nil, err
	}

	if err := check(res.writer, payload); err != nil {
		return nil, fmt.Errorf("%w: decode %s with schema id %d: %w", ErrUndecodable, res.name, id, err)
	}
	v := reflect.New(res.typ).Interface().(Record)
	r := s.readerPool.Get().(*avro.Reader)
	defer s.putReader(r)
	r.Reset(payload)
	r.ReadVal(res.schema, v)
	if r.Error != nil {
		return nil, fmt.Errorf("%w: decode %s with schema id %d: %w", ErrUndecodable, res.name, id, r.Error)
	}
	return v, nil
}

func (s *Serde) putReader(r *avro.Reader) {
	r.Reset(nil)
	r.Error = nil
	s.readerPool.Put(r)
}

// resolve returns how to decode a payload written with schema id, asking the
// registry only the first time.
func (s *Serde) resolve(id uint32) (resolvedSchema, error) {
	s.mu.RLock()
	res, ok := s.resolved[id]
	s.mu.RUnlock()
	if ok {
		return res, nil
	}

	got, err := s.client.GetSchema(int(id))
	if isNotFound(err) {
		return res, fmt.Errorf("%w: schema id %d is not in the registry: %w", ErrUndecodable, id, err)
	}
	if err != nil {
		return res, fmt.Errorf("fetch schema id %d from the registry: %w", id, err)
	}
	if t := got.SchemaType(); t != nil && *t != "" && *t != srclient.Avro {
		return res, fmt.Errorf("%w: schema id %d is a %s schema, not Avro", ErrUndecodable, id, *t)
	}
	// A cache of its own per writer schema (compat.Parse): the default one
	// is shared by the whole process, and another version of a named type
	// must not replace the one parsed before. Nor is a fixed type of any
	// size allocated.
	writer, err := compat.Parse(got.Schema())
	if err != nil {
		return res, fmt.Errorf("%w: parse schema id %d: %w", ErrUndecodable, id, err)
	}
	named, ok := writer.(avro.NamedSchema)
	if !ok {
		return res, fmt.Errorf("%w: schema id %d is a %s, not a named record", ErrUndecodable, id, writer.Type())
	}
	reader, ok := s.readers[named.FullName()]
	if !ok {
		return res, fmt.Errorf("%w: no reader type for record %s (schema id %d)", ErrUndecodable, named.FullName(), id)
	}
	// The reader's own schema, or one that differs from it only where the
	// wire format does not (defaults, docs: Parsing Canonical Form), is
	// read as it is: hamba's resolution of a record that refers to itself
	// recurses for ever.
	schema := reader.schema
	if writer.Fingerprint() != reader.schema.Fingerprint() {
		// Nor does hamba build the decoder of a part the reader lacks, if
		// it refers to itself: the process died of it.
		if name := recursive(writer, nil); name != "" {
			return res, fmt.Errorf("%w: writer schema id %d of %s differs from the reader's and its %s refers to itself",
				ErrUndecodable, id, named.FullName(), name)
		}
		// A fresh checker: a shared one caches its verdicts by Parsing
		// Canonical Form, which ignores defaults, and resolution depends on
		// them. This runs once per schema id, so the cache would buy
		// nothing.
		if schema, err = avro.NewSchemaCompatibility().Resolve(reader.schema, writer); err != nil {
			return res, fmt.Errorf("%w: writer schema id %d of %s does not resolve against the reader's %s: %w",
				ErrUndecodable, id, named.FullName(), reader.typ, err)
		}
	}

	res = resolvedSchema{name: named.FullName(), writer: writer, schema: schema, typ: reader.typ}
	s.mu.Lock()
	s.resolved[id] = res
	s.mu.Unlock()
	return res, nil
}

// recursive returns the name of a type of s that refers to itself, if one
// does; within names the types s is inside of.
func recursive(s avro.Schema, within []string) string {
	switch s := s.(type) {
	case *avro.RefSchema:
		if slices.Contains(within, s.Schema().FullName()) {
			return s.Schema().FullName()
		}
		return recursive(s.Schema(), within)
	case *avro.RecordSchema:
		within = append(within, s.FullName())
		for _, f := range s.Fields() {
			if name := recursive(f.Type(), within); name != "" {
				return name
			}
		}
	case *avro.ArraySchema:
		return recursive(s.Items(), within)
	case *avro.MapSchema:
		return recursive(s.Values(), within)
	case *avro.UnionSchema:
		for _, t := range s.Types() {
			if name := recursive(t, within); name != "" {
				return name
			}
		}
	}
	return ""
}

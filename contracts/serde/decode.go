package serde

import (
	"fmt"
	"reflect"

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
	schema, err := compat.Readable(reader.schema, writer)
	if err != nil {
		return res, fmt.Errorf("%w: writer schema id %d of %s does not resolve against the reader's %s: %w",
			ErrUndecodable, id, named.FullName(), reader.typ, err)
	}
	res = resolvedSchema{name: named.FullName(), writer: writer, schema: schema, typ: reader.typ}
	s.mu.Lock()
	s.resolved[id] = res
	s.mu.Unlock()
	return res, nil
}

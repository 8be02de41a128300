package store

import (
	"fmt"

	"github.com/kafkasaga/kafkasaga/contracts/serde"
)

// avroCodec keeps records in the Confluent wire format, like every message,
// so a state topic can be read by any Confluent-compatible tool and its
// records evolve with their schema.
type avroCodec[T any] struct {
	serde *serde.Serde
	topic string
}

// AvroCodec returns the codec of a state topic whose records are the
// generated contracts type T (whose pointer implements serde.Record).
func AvroCodec[T any](s *serde.Serde, topic string) (Codec[T], error) {
	if _, ok := any(new(T)).(serde.Record); !ok {
		return nil, fmt.Errorf("store: *%T is not an Avro record", *new(T))
	}
	return avroCodec[T]{serde: s, topic: topic}, nil
}

func (c avroCodec[T]) Encode(v *T) ([]byte, error) {
	return c.serde.Encode(c.topic, any(v).(serde.Record))
}

func (c avroCodec[T]) Decode(b []byte) (*T, error) {
	r, err := c.serde.Decode(b)
	if err != nil {
		return nil, err
	}
	v, ok := any(r).(*T)
	if !ok {
		return nil, fmt.Errorf("%w: got %T on %s, want *%T", serde.ErrUndecodable, r, c.topic, *new(T))
	}
	return v, nil
}

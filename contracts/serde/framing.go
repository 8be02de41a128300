package serde

import (
	"encoding/binary"
	"fmt"
	"math"
)

const (
	magicByte  = 0
	headerSize = 5 // magic byte and 4-byte schema id
)

// parseFrame splits a message in the Confluent wire format into the writer's
// schema id and the Avro payload.
func parseFrame(data []byte) (id uint32, payload []byte, err error) {
	if len(data) < headerSize {
		return 0, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrUndecodable, len(data), headerSize)
	}
	if data[0] != magicByte {
		return 0, nil, fmt.Errorf("%w: magic byte is %d, want %d", ErrUndecodable, data[0], magicByte)
	}
	id = binary.BigEndian.Uint32(data[1:headerSize])
	if id > math.MaxInt32 {
		// A registry's ids are Java ints: Confluent's answers a bare 404
		// for one past them, which says nothing of the schema, and the
		// record would be tried again for ever.
		return 0, nil, fmt.Errorf("%w: schema id %d is past the registry's ids (at most %d)", ErrUndecodable, id, math.MaxInt32)
	}
	return id, data[headerSize:], nil
}

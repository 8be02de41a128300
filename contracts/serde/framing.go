package serde

import (
	"encoding/binary"
	"fmt"
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
	return binary.BigEndian.Uint32(data[1:headerSize]), data[headerSize:], nil
}

package serde

import (
	"errors"
	"fmt"
	"math"

	"github.com/hamba/avro/v2"
)

// check walks payload with the writer's schema, reading every length,
// count and branch as a decoder does but keeping nothing, and refuses a
// payload that is not one value of that schema. hamba's decoder trusts
// what it reads: a block count of -2^63 gave a slice of negative length
// (and writes outside it), and a field the reader lacks with a count of
// 2^62 was skipped item by item past the payload's end, for ever. What
// passes here is what hamba reads safely.
func check(schema avro.Schema, payload []byte) error {
	c := checker{buf: payload}
	c.value(schema, 0)
	if c.err == nil && len(c.buf) > 0 {
		c.err = errors.New("bytes left after the record")
	}
	return c.err
}

// maxDepth bounds how deep records nest in a payload: a schema that
// refers to itself (only a record can) lets a payload nest as deep as it
// claims, and each level is a call of the decoder.
const maxDepth = 256

type checker struct {
	buf   []byte
	items int // of every array and map so far, at most maxItems
	err   error
}

func (c *checker) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

func (c *checker) value(s avro.Schema, depth int) {
	if depth > maxDepth {
		c.fail("values nest deeper than %d", maxDepth)
		return
	}
	switch s := s.(type) {
	case *avro.RefSchema:
		c.value(s.Schema(), depth)
	case *avro.RecordSchema:
		for _, f := range s.Fields() {
			if c.err != nil {
				return
			}
			c.value(f.Type(), depth+1)
		}
	case *avro.ArraySchema:
		c.blocks(func() { c.value(s.Items(), depth) })
	case *avro.MapSchema:
		c.blocks(func() { c.bytes("map key"); c.value(s.Values(), depth) })
	case *avro.UnionSchema:
		i := c.long()
		if c.err == nil && (i < 0 || i >= int64(len(s.Types()))) {
			c.fail("union branch %d of %d", i, len(s.Types()))
			return
		}
		if c.err == nil {
			c.value(s.Types()[i], depth)
		}
	case *avro.EnumSchema:
		i := c.int()
		if c.err == nil && (i < 0 || i >= int64(len(s.Symbols()))) {
			c.fail("enum %s: symbol %d of %d", s.FullName(), i, len(s.Symbols()))
		}
	case *avro.FixedSchema:
		c.skip(int64(s.Size()), "fixed "+s.FullName())
	case *avro.NullSchema:
	case *avro.PrimitiveSchema:
		switch s.Type() {
		case avro.Null:
		case avro.Boolean:
			c.skip(1, "boolean")
		case avro.Int:
			c.int()
		case avro.Long:
			c.long()
		case avro.Float:
			c.skip(4, "float")
		case avro.Double:
			c.skip(8, "double")
		case avro.String, avro.Bytes:
			c.bytes(string(s.Type()))
		default:
			c.fail("schema type %s", s.Type())
		}
	default:
		c.fail("schema type %s", s.Type())
	}
}

// blocks reads an array's or a map's blocks, calling item for each item.
// A block of -n items is n items preceded by their size in bytes, which
// they must take exactly: a decoder skipping the field jumps that far, to
// the next block's count.
func (c *checker) blocks(item func()) {
	for c.err == nil {
		n := c.long()
		if c.err != nil || n == 0 {
			return
		}
		size := int64(-1)
		if n < 0 {
			if n == math.MinInt64 {
				c.fail("a block of %d items", n)
				return
			}
			n = -n
			if size = c.long(); c.err == nil && (size < 0 || size > int64(len(c.buf))) {
				c.fail("a block of %d bytes, %d left", size, len(c.buf))
				return
			}
		}
		if n > int64(maxItems-c.items) {
			c.fail("more than %d items", maxItems)
			return
		}
		c.items += int(n)
		left := len(c.buf)
		for range n {
			if item(); c.err != nil {
				return
			}
		}
		if size >= 0 && int64(left-len(c.buf)) != size {
			c.fail("a block said to be %d bytes took %d", size, left-len(c.buf))
		}
	}
}

// long reads a zig-zag varint of at most 64 bits.
func (c *checker) long() int64 { return c.varint(10) }

// int reads a zig-zag varint of at most 32 bits: a decoder skipping an
// int reads 5 bytes at most, and would take the rest for the next value.
func (c *checker) int() int64 {
	v := c.varint(5)
	if c.err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
		c.fail("an int of %d", v)
	}
	return v
}

// varint reads a zig-zag varint of at most limit bytes.
func (c *checker) varint(limit int) int64 {
	var u uint64
	for i := range limit {
		if len(c.buf) == 0 {
			c.fail("a number cut short")
			return 0
		}
		b := c.buf[0]
		c.buf = c.buf[1:]
		u |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return int64(u>>1) ^ -int64(u&1)
		}
	}
	c.fail("a number longer than %d bytes", limit)
	return 0
}

// bytes reads a string's or bytes' length and skips that many bytes.
func (c *checker) bytes(what string) {
	if n := c.long(); c.err == nil {
		c.skip(n, what)
	}
}

func (c *checker) skip(n int64, what string) {
	if n < 0 || n > int64(len(c.buf)) {
		c.fail("%s of %d bytes, %d left", what, n, len(c.buf))
		return
	}
	c.buf = c.buf[n:]
}

// Package sagatest holds in-memory fakes of what the saga engine needs, for
// unit tests of the engine and of saga definitions: a store, a codec, a
// recording publisher and a clock. Integration tests use the real ones.
package sagatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/hamba/avro/v2"

	"github.com/kafkasaga/kafkasaga/saga"
)

var (
	_ saga.Instances = (*Instances)(nil)
	_ saga.Codec     = (*Codec)(nil)
)

// Sender sends a message to a topic as a record with the given key.
type Sender interface {
	Send(topic, key string, msg *message.Message) error
}

// Instances is a map-backed saga.Instances. It stores instances Avro-encoded,
// as the Kafka-backed store does, so a value that would not survive the
// round trip fails here too. It sends the command of a write through its
// sender, after storing the instance; a failed send fails the write and
// stores nothing.
type Instances struct {
	pub     Sender
	updates sync.Mutex // serializes Update, which publishes outside mu
	mu      sync.Mutex
	m       map[string][]byte
	// Ranges counts the calls of Range: a scan of every saga ever run.
	Ranges atomic.Int32
	// Gets counts the calls of Get.
	Gets atomic.Int32
}

// NewInstances returns an empty store that sends commands through pub.
func NewInstances(pub Sender) *Instances {
	return &Instances{pub: pub, m: map[string][]byte{}}
}

// Get returns the instance with the given id.
func (s *Instances) Get(id string) (saga.SagaInstance, bool, error) {
	s.Gets.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.get(id)
	return v, ok, nil
}

// GetCommitted is Get: an Update here commits before it returns.
func (s *Instances) GetCommitted(id string) (saga.SagaInstance, bool, error) { return s.Get(id) }

func (s *Instances) get(id string) (saga.SagaInstance, bool) {
	var v saga.SagaInstance
	b, ok := s.m[id]
	if !ok {
		return v, false
	}
	if err := v.Unmarshal(b); err != nil {
		return v, false // cannot happen: put stored it encoded
	}
	return v, true
}

// Update runs fn, stores the instance and sends the command fn returned;
// over learns at once that it committed. Calls are serialized; the
// publisher may read the instances meanwhile.
func (s *Instances) Update(ctx context.Context, id string, fn func(v *saga.SagaInstance, exists bool) (*saga.Outgoing, error), over func(committed bool)) error {
	if err := s.update(id, fn); err != nil {
		return err
	}
	if over != nil {
		over(true)
	}
	return nil
}

func (s *Instances) update(id string, fn func(v *saga.SagaInstance, exists bool) (*saga.Outgoing, error)) error {
	s.updates.Lock()
	defer s.updates.Unlock()
	s.mu.Lock()
	v, exists := s.get(id)
	old := s.m[id]
	s.mu.Unlock()
	out, err := fn(&v, exists)
	if err != nil {
		return err
	}
	b, err := v.Marshal()
	if err != nil {
		return fmt.Errorf("encode saga instance %s: %w", id, err)
	}
	s.put(id, b)
	if out == nil {
		return nil
	}
	if err := s.pub.Send(out.Topic, out.Key, out.Msg); err != nil {
		s.put(id, old) // as if the write had failed
		return fmt.Errorf("write saga instance %s: %w", id, err)
	}
	return nil
}

// put stores b under id; nil deletes id.
func (s *Instances) put(id string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b == nil {
		delete(s.m, id)
		return
	}
	s.m[id] = b
}

// Range calls fn for a snapshot of the instances, outside the lock, so fn may
// update them.
func (s *Instances) Range(fn func(id string, v saga.SagaInstance) bool) error {
	s.Ranges.Add(1)
	s.mu.Lock()
	all := map[string]saga.SagaInstance{}
	for id := range s.m {
		all[id], _ = s.get(id)
	}
	s.mu.Unlock()
	for id, v := range all {
		if !fn(id, v) {
			return nil
		}
	}
	return nil
}

// Codec encodes a record as its full name, a newline and its Avro binary.
// It decodes the types it has encoded before, so a test encodes the replies
// it sends with it.
type Codec struct {
	mu     sync.Mutex
	types  map[string]reflect.Type
	topics []string
}

// NewCodec returns a codec that knows no type yet.
func NewCodec() *Codec { return &Codec{types: map[string]reflect.Type{}} }

// Encode encodes v and remembers its type and the topic.
func (c *Codec) Encode(topic string, v saga.Record) ([]byte, error) {
	named, ok := v.Schema().(avro.NamedSchema)
	if !ok {
		return nil, fmt.Errorf("encode %T: not a named schema", v)
	}
	name := named.FullName()
	b, err := avro.Marshal(v.Schema(), v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.types[name] = reflect.TypeOf(v).Elem()
	c.topics = append(c.topics, topic)
	return append([]byte(name+"\n"), b...), nil
}

// Decode decodes what Encode encoded.
func (c *Codec) Decode(data []byte) (saga.Record, error) {
	name, body, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return nil, errors.New("decode: no type name")
	}
	c.mu.Lock()
	t, ok := c.types[string(name)]
	c.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("decode: unknown type %q", name)
	}
	v := reflect.New(t).Interface().(saga.Record)
	if err := avro.Unmarshal(v.Schema(), body, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return v, nil
}

// Topics returns the topics passed to Encode, in order.
func (c *Codec) Topics() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.topics...)
}

// Sent is a message a Publisher sent.
type Sent struct {
	Topic string
	Key   string // the record key
	Msg   *message.Message
}

// Publisher records what it is sent.
type Publisher struct {
	mu   sync.Mutex
	sent []Sent
	err  error
}

// Send records the message, or returns the error set by Fail.
func (p *Publisher) Send(topic, key string, msg *message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.sent = append(p.sent, Sent{Topic: topic, Key: key, Msg: msg})
	return nil
}

// Fail makes every later Send return err; nil makes them succeed again.
func (p *Publisher) Fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// Sent returns the messages published so far, in order.
func (p *Publisher) Sent() []Sent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Sent(nil), p.sent...)
}

// Clock is a clock that moves only when told to.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock set to a fixed instant, whole milliseconds, as
// Avro timestamps keep.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Reply builds a participant's reply to cmd: body, encoded with codec, with
// the command's saga headers copied, as participants do.
func Reply(codec *Codec, cmd *message.Message, body saga.Record) (*message.Message, error) {
	payload, err := codec.Encode(cmd.Metadata.Get(saga.HeaderReplyTo), body)
	if err != nil {
		return nil, err
	}
	return saga.NewReply(cmd, payload), nil
}

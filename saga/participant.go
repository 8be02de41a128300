package saga

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// ErrUnexpectedCommand means a command that no handler of its topic takes, or
// that lacks the saga headers, or whose handler returned no reply. Retrying
// cannot help: dead-letter it.
var ErrUnexpectedCommand = errors.New("unexpected command")

// Send sends msg to topic as a Kafka record keyed by key.
type Send = func(topic, key string, msg *message.Message) error

// Participant is the command port of a saga participant: it decodes each
// command of its topic, calls the handler registered for its interaction and
// sends the handler's reply to the topic the command names in its reply_to
// header, keyed by saga id, with the saga headers carried back.
type Participant struct {
	topic    string
	carries  func(topic string, r Record) bool // whether topic takes records of r's type
	declared []declaration                     // the interactions on topic
	codec    Codec
	send     Send
	handlers map[reflect.Type]func(context.Context, Record) (Record, error) // by command type
	errs     []error                                                        // mistakes of Handle, reported by Handler
}

// NewParticipant returns the command port of topic with no handlers yet;
// add them with Handle. declared are the interactions declared (for
// example contracts.Interactions()): each one on topic needs a handler.
// carries says whether a topic takes a record's type (contracts.Carries):
// a reply goes only to a reply_to topic that takes it.
func NewParticipant(topic string, declared []Declared, carries func(topic string, r Record) bool, codec Codec, send Send) *Participant {
	p := &Participant{topic: topic, carries: carries, codec: codec, send: send,
		handlers: map[reflect.Type]func(context.Context, Record) (Record, error){}}
	for _, i := range declared {
		if d := i.declared(); d.topic == topic {
			p.declared = append(p.declared, d)
		}
	}
	return p
}

// Handle registers fn for the commands of interaction i. fn returns one of
// the replies i declares, which the compiler holds it to, or an error: the
// participant's wiring names the errors no retry can cure; any other is
// retried.
func Handle[C, R Record](p *Participant, i Interaction[C, R], fn func(ctx context.Context, cmd C) (R, error)) {
	d := i.declared()
	t := reflect.TypeFor[C]()
	switch {
	case d.topic != p.topic:
		p.errs = append(p.errs, fmt.Errorf("a handler for %s, which travels on %s, not %s", d.name, d.topic, p.topic))
	case p.handlers[t] != nil:
		p.errs = append(p.errs, fmt.Errorf("two handlers for %s", d.name))
	}
	p.handlers[t] = func(ctx context.Context, cmd Record) (Record, error) {
		reply, err := fn(ctx, cmd.(C))
		if err != nil {
			return nil, err
		}
		// No reply, or a nil pointer in R (var r *CreditReserved; return
		// r, nil): the command is unexpected, not a reply to encode.
		if v := reflect.ValueOf(any(reply)); !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
			return nil, nil
		}
		return reply, nil
	}
}

// Handler returns the watermill handler for the participant's topic, or
// every mistake of its handlers: one for a command of another topic, two for
// one command, or none for a command its topic carries.
func (p *Participant) Handler() (message.NoPublishHandlerFunc, error) {
	errs := p.errs
	for _, d := range p.declared {
		if p.handlers[reflect.TypeOf(d.command)] == nil {
			errs = append(errs, fmt.Errorf("no handler for %s, which travels on %s", d.name, p.topic))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("participant of %s: %w", p.topic, err)
	}
	return p.handle, nil
}

func (p *Participant) handle(msg *message.Message) error {
	cmd, err := p.codec.Decode(msg.Payload)
	if err != nil {
		return fmt.Errorf("decode command: %w", err)
	}
	handle, ok := p.handlers[reflect.TypeOf(cmd)]
	if !ok {
		return fmt.Errorf("%w: no handler for %T", ErrUnexpectedCommand, cmd)
	}
	for _, h := range []string{HeaderReplyTo, HeaderSagaID, HeaderCommandID} {
		if msg.Metadata.Get(h) == "" {
			return fmt.Errorf("%w: %T has no %s header", ErrUnexpectedCommand, cmd, h)
		}
	}
	sagaID, replyTo := msg.Metadata.Get(HeaderSagaID), msg.Metadata.Get(HeaderReplyTo)
	body, err := handle(msg.Context(), cmd)
	if err != nil {
		return fmt.Errorf("handle %T of saga %s: %w", cmd, sagaID, err)
	}
	if body == nil {
		return fmt.Errorf("%w: the handler of %T returned no reply", ErrUnexpectedCommand, cmd)
	}
	// The header is input: a command naming a state topic, say, must not
	// get its reply written there. The decision stays recorded, so the
	// command, dead-lettered, can be replayed with a reply topic that
	// takes its reply.
	if !p.carries(replyTo, body) {
		return fmt.Errorf("%w: %T replies to %s, which does not carry %T", ErrUnexpectedCommand, cmd, replyTo, body)
	}
	payload, err := p.codec.Encode(replyTo, body)
	if err != nil {
		return fmt.Errorf("encode reply %T: %w", body, err)
	}
	if err := p.send(replyTo, sagaID, NewReply(msg, payload)); err != nil {
		return fmt.Errorf("send %T to %s: %w", body, replyTo, err)
	}
	return nil
}

// NewReply returns the reply to cmd carrying payload, with the command's
// saga headers copied, so the engine can match it to the command it waits
// for, and its trace context, so its trace goes on. Send it keyed by saga
// id, so one saga's replies stay in order.
func NewReply(cmd *message.Message, payload []byte) *message.Message {
	reply := message.NewMessage(watermill.NewUUID(), payload)
	reply.SetContext(cmd.Context()) // written on behalf of cmd, in its transaction
	for _, h := range []string{HeaderSagaID, HeaderSagaType, HeaderStep, HeaderCommandID, HeaderAttempt, HeaderTraceparent, HeaderTracestate} {
		if v := cmd.Metadata.Get(h); v != "" {
			reply.Metadata.Set(h, v)
		}
	}
	return reply
}

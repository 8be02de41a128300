package messaging

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kafkasaga/kafkasaga/contracts"
	"github.com/kafkasaga/kafkasaga/contracts/serde"
	"github.com/kafkasaga/kafkasaga/saga"
)

// Commands is the message port of a saga participant: it decodes each
// command, calls the handler registered for its type and publishes the
// handler's reply to the topic the command names in its reply_to header,
// carrying the saga headers back.
type Commands struct {
	serde    *serde.Serde
	pub      message.Publisher
	handlers map[reflect.Type]func(context.Context, serde.Record) (serde.Record, error)
	carries  map[string]map[reflect.Type]bool // by topic, the record types contracts.Topics says it carries
	poison   []error
}

// NewCommands returns a command port with no handlers yet; add them with
// Handle. A handler error that is one of poison (the domain's errors that no
// retry can cure, such as invalid input) dead-letters the command instead of
// retrying it, which would hold back every later command of its key.
func NewCommands(s *serde.Serde, pub message.Publisher, poison ...error) *Commands {
	carries := map[string]map[reflect.Type]bool{}
	for _, t := range contracts.Topics() {
		carries[t.Name] = map[reflect.Type]bool{}
		for _, r := range t.Records {
			carries[t.Name][reflect.TypeOf(r)] = true
		}
	}
	return &Commands{serde: s, pub: pub, carries: carries, poison: poison,
		handlers: map[reflect.Type]func(context.Context, serde.Record) (serde.Record, error){}}
}

// Handle registers fn for commands of type C. fn returns the reply, or an
// error: one of the port's poison errors, or a wrapped ErrPoison, if the
// command can never succeed, anything else to have it retried.
func Handle[C any](c *Commands, fn func(ctx context.Context, cmd *C) (serde.Record, error)) {
	c.handlers[reflect.TypeFor[*C]()] = func(ctx context.Context, r serde.Record) (serde.Record, error) {
		return fn(ctx, any(r).(*C))
	}
}

// Handler is the watermill handler for the participant's command topic.
func (c *Commands) Handler(msg *message.Message) error {
	cmd, err := c.serde.Decode(msg.Payload)
	if err != nil {
		return fmt.Errorf("decode command: %w", err)
	}
	handle, ok := c.handlers[reflect.TypeOf(cmd)]
	if !ok {
		return fmt.Errorf("%w: no handler for %T", ErrPoison, cmd)
	}
	replyTo := msg.Metadata.Get(saga.HeaderReplyTo)
	for _, h := range []string{saga.HeaderReplyTo, saga.HeaderSagaID, saga.HeaderCommandID} {
		if msg.Metadata.Get(h) == "" {
			return fmt.Errorf("%w: %T has no %s header", ErrPoison, cmd, h)
		}
	}
	body, err := handle(msg.Context(), cmd)
	if err != nil {
		err = fmt.Errorf("handle %T of saga %s: %w", cmd, msg.Metadata.Get(saga.HeaderSagaID), err)
		if slices.ContainsFunc(c.poison, func(p error) bool { return errors.Is(err, p) }) {
			err = fmt.Errorf("%w: %w", ErrPoison, err)
		}
		return err
	}
	if body == nil {
		return fmt.Errorf("%w: the handler of %T returned no reply", ErrPoison, cmd)
	}
	// The decision stays recorded: the command, dead-lettered, can be
	// replayed with a reply topic that carries its reply.
	if !c.carries[replyTo][reflect.TypeOf(body)] {
		return fmt.Errorf("%w: %T replies to %s, which does not carry %T", ErrPoison, cmd, replyTo, body)
	}
	reply, err := c.reply(msg, replyTo, body)
	if err != nil {
		return err
	}
	if err := c.pub.Publish(replyTo, reply); err != nil {
		return fmt.Errorf("publish %T to %s: %w", body, replyTo, err)
	}
	return nil
}

// reply encodes body as the reply to cmd on topic.
func (c *Commands) reply(cmd *message.Message, topic string, body serde.Record) (*message.Message, error) {
	payload, err := c.serde.Encode(topic, body)
	if err != nil {
		return nil, fmt.Errorf("encode reply %T: %w", body, err)
	}
	reply := saga.NewReply(cmd, payload)
	reply.Metadata.Set(contracts.HeaderPartitionKey, cmd.Metadata.Get(saga.HeaderSagaID)) // one saga's replies in order
	return reply, nil
}

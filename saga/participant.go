package saga

import (
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// NewReply returns the reply to cmd carrying payload, with the command's
// saga headers copied, so the engine can match it to the command it waits
// for. Send it keyed by saga id, so one saga's replies stay in order.
func NewReply(cmd *message.Message, payload []byte) *message.Message {
	reply := message.NewMessage(watermill.NewUUID(), payload)
	reply.SetContext(cmd.Context()) // written on behalf of cmd, in its transaction
	for _, h := range []string{HeaderSagaID, HeaderSagaType, HeaderStep, HeaderCommandID, HeaderAttempt, HeaderTraceparent} {
		reply.Metadata.Set(h, cmd.Metadata.Get(h))
	}
	return reply
}

package messaging

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

// A message whose session ended is not handed out, even once the message
// of its key before it is through: that one ended unacked with the
// session, and its key's next message must not overtake it.
func TestAMessageIsNotHandedOutOnceItsSessionEnded(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	before := make(chan struct{})
	close(before)
	for range 64 { // the select of a send and an ended context picks either
		out := make(chan *message.Message, 1)
		if deliver(ctx, out, message.NewMessage("m", nil), t.Context(), before) {
			t.Fatal("acked")
		}
		if len(out) > 0 {
			t.Fatal("handed out after its session ended")
		}
	}
}

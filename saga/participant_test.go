package saga_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kafkasaga/kafkasaga/saga"
	"github.com/kafkasaga/kafkasaga/saga/sagatest"
)

var declared = []saga.Declared{RejectOrderInteraction, ReserveCreditInteraction, ReleaseCreditInteraction, ApproveOrderInteraction}

func reserve(_ context.Context, c *ReserveCredit) (ReserveCreditReply, error) {
	switch c.CustomerID {
	case "silent":
		return nil, nil
	case "down":
		return nil, errors.New("down")
	case "typed-nil":
		var r *CreditReserved // a nil pointer in the interface: no reply either
		return r, nil
	}
	return &CreditReserved{CustomerID: c.CustomerID, OrderID: c.OrderID, Amount: c.Amount}, nil
}

func release(_ context.Context, c *ReleaseCredit) (ReleaseCreditReply, error) {
	return &CreditReleased{CustomerID: c.CustomerID, OrderID: c.OrderID}, nil
}

// command is cmd as the engine sends it, encoded with codec.
func command(t *testing.T, codec *sagatest.Codec, cmd saga.Record, headers message.Metadata) *message.Message {
	t.Helper()
	payload, err := codec.Encode("customer", cmd)
	if err != nil {
		t.Fatal(err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata = headers
	return msg
}

func TestParticipantRepliesWithTheSagaHeaders(t *testing.T) {
	codec, pub := sagatest.NewCodec(), &sagatest.Publisher{}
	carries := func(topic string, _ saga.Record) bool { return topic == "test.replies" }
	p := saga.NewParticipant("customer", declared, carries, codec, pub.Send)
	saga.Handle(p, ReserveCreditInteraction, reserve)
	saga.Handle(p, ReleaseCreditInteraction, release)
	handle, err := p.Handler()
	if err != nil {
		t.Fatal(err)
	}
	headers := message.Metadata{saga.HeaderSagaID: "s1", saga.HeaderSagaType: "Test", saga.HeaderStep: "reserve",
		saga.HeaderCommandID: "s1:reserve:invoke", saga.HeaderAttempt: "2", saga.HeaderReplyTo: "test.replies",
		saga.HeaderTraceparent: "00-trace-01", saga.HeaderTracestate: "vendor=1"}
	if err := handle(command(t, codec, &ReserveCredit{CustomerID: "c1", OrderID: "s1", Amount: 5}, headers)); err != nil {
		t.Fatal(err)
	}
	sent := pub.Sent()
	if len(sent) != 1 || sent[0].Topic != "test.replies" || sent[0].Key != "s1" {
		t.Fatalf("got %+v sent, want one reply to test.replies keyed s1", sent)
	}
	want := message.Metadata{saga.HeaderSagaID: "s1", saga.HeaderSagaType: "Test", saga.HeaderStep: "reserve",
		saga.HeaderCommandID: "s1:reserve:invoke", saga.HeaderAttempt: "2", saga.HeaderTraceparent: "00-trace-01",
		saga.HeaderTracestate: "vendor=1"}
	if got := sent[0].Msg.Metadata; !reflect.DeepEqual(got, want) {
		t.Errorf("reply headers: got %v, want %v", got, want)
	}
	body, err := codec.Decode(sent[0].Msg.Payload)
	if err != nil || !reflect.DeepEqual(body, &CreditReserved{CustomerID: "c1", OrderID: "s1", Amount: 5}) {
		t.Errorf("reply: got %#v (%v)", body, err)
	}
	// A command without a trace gets a reply without one, not an empty
	// traceparent.
	untraced := maps.Clone(headers)
	delete(untraced, saga.HeaderTraceparent)
	delete(untraced, saga.HeaderTracestate)
	if err := handle(command(t, codec, &ReserveCredit{CustomerID: "c1", OrderID: "s2", Amount: 5}, untraced)); err != nil {
		t.Fatal(err)
	}
	if sent := pub.Sent(); len(sent) != 2 {
		t.Fatalf("got %d sent, want a second reply", len(sent))
	} else if md := sent[1].Msg.Metadata; len(md) != 5 || md[saga.HeaderSagaID] == "" {
		t.Errorf("reply headers of a command without a trace: got %v, want the five saga headers only", md)
	}

	for name, tc := range map[string]struct {
		cmd     saga.Record
		headers message.Metadata
		want    error
	}{
		"no reply_to":                       {&ReserveCredit{CustomerID: "c1"}, message.Metadata{saga.HeaderSagaID: "s1", saga.HeaderCommandID: "x"}, saga.ErrUnexpectedCommand},
		"no handler for its type":           {&ApproveOrder{OrderID: "s1"}, headers, saga.ErrUnexpectedCommand},
		"the handler returns nothing":       {&ReserveCredit{CustomerID: "silent"}, headers, saga.ErrUnexpectedCommand},
		"the handler returns a nil pointer": {&ReserveCredit{CustomerID: "typed-nil"}, headers, saga.ErrUnexpectedCommand},
		"the handler fails":                 {&ReserveCredit{CustomerID: "down"}, headers, nil},
		"reply_to a topic that does not take the reply": {&ReserveCredit{CustomerID: "c1"},
			message.Metadata{saga.HeaderSagaID: "s1", saga.HeaderCommandID: "x", saga.HeaderReplyTo: "customer.state"}, saga.ErrUnexpectedCommand},
	} {
		err := handle(command(t, codec, tc.cmd, tc.headers))
		switch {
		case err == nil:
			t.Errorf("%s: got no error, want one", name)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		case tc.want == nil && errors.Is(err, saga.ErrUnexpectedCommand):
			t.Errorf("%s: got %v, want an error to retry", name, err)
		}
	}
}

// What the compiler cannot hold a participant to, Handler checks at start.
func TestParticipantHandlersMustFitItsTopic(t *testing.T) {
	for name, tc := range map[string]struct {
		register func(p *saga.Participant)
		want     string
	}{
		"a command of its topic without a handler": {func(p *saga.Participant) {
			saga.Handle(p, ReserveCreditInteraction, reserve)
		}, "no handler for ReleaseCredit, which travels on customer"},
		"a handler for a command of another topic": {func(p *saga.Participant) {
			saga.Handle(p, ReserveCreditInteraction, reserve)
			saga.Handle(p, ReleaseCreditInteraction, release)
			saga.Handle(p, ApproveOrderInteraction, func(context.Context, *ApproveOrder) (ApproveOrderReply, error) { return &OrderApproved{}, nil })
		}, "a handler for ApproveOrder, which travels on order, not customer"},
		"two handlers for one command": {func(p *saga.Participant) {
			saga.Handle(p, ReserveCreditInteraction, reserve)
			saga.Handle(p, ReserveCreditInteraction, reserve)
			saga.Handle(p, ReleaseCreditInteraction, release)
		}, "two handlers for ReserveCredit"},
	} {
		p := saga.NewParticipant("customer", declared, carriesAll, sagatest.NewCodec(), (&sagatest.Publisher{}).Send)
		tc.register(p)
		if _, err := p.Handler(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func carriesAll(string, saga.Record) bool { return true }

package contracts_test

import (
	"testing"

	"github.com/kafkasaga/kafkasaga/contracts"
)

func TestRecordsOfTopics(t *testing.T) {
	got := contracts.Records(contracts.TopicCustomerCommands, contracts.TopicCustomerState)
	want := []string{"kafkasaga.customer.ReserveCredit", "kafkasaga.customer.ReleaseCredit", "kafkasaga.customer.CustomerRecord"}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		if name := r.Schema().(interface{ FullName() string }).FullName(); name != want[i] {
			t.Errorf("record %d: got %s, want %s", i, name, want[i])
		}
	}
	if got := contracts.Records("no.such.topic"); len(got) != 0 {
		t.Errorf("records of an unknown topic: got %d, want none", len(got))
	}
}

// Every topic a process consumes lists what is written to it, so that
// provisioning registers it and consumers can decode it.
func TestEveryTopicButTheDeadLetterListsItsRecords(t *testing.T) {
	for _, topic := range contracts.Topics() {
		if topic.Name != contracts.TopicDeadLetter && len(topic.Records) == 0 {
			t.Errorf("topic %s lists no record types", topic.Name)
		}
	}
}

func TestCarries(t *testing.T) {
	cases := []struct {
		topic string
		r     contracts.Record
		want  bool
	}{
		{contracts.TopicCreateOrderReplies, &contracts.CreditReserved{}, true},
		{contracts.TopicCancelOrderReplies, &contracts.OrderCancelled{}, true},
		{contracts.TopicCustomerCommands, &contracts.ReserveCredit{}, true},
		{contracts.TopicCustomerCommands, &contracts.AuthorizePayment{}, false},
		{contracts.TopicOrderState, &contracts.CreditReserved{}, false},
		{contracts.TopicDeadLetter, &contracts.CreditReserved{}, false},
		{"no.such.topic", &contracts.CreditReserved{}, false},
		{contracts.TopicCreateOrderReplies, nil, false},
	}
	for _, c := range cases {
		if got := contracts.Carries(c.topic, c.r); got != c.want {
			t.Errorf("Carries(%s, %T): got %v, want %v", c.topic, c.r, got, c.want)
		}
	}
}

// BenchmarkCarries: a participant checks that the reply_to topic of each
// command takes its reply.
func BenchmarkCarries(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !contracts.Carries(contracts.TopicCreateOrderReplies, &contracts.CreditReserved{}) {
			b.Fatal("createorder.replies does not carry CreditReserved")
		}
	}
}

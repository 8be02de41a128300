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

package contracts

import (
	"reflect"
	"slices"
	"sync"

	"github.com/hamba/avro/v2"

	"github.com/kafkasaga/kafkasaga/saga"
)

// Topic names. Commands go to one topic per participant, keyed by the
// aggregate the participant serializes on, as interactions.go declares;
// replies go to one topic per saga type, keyed by saga id; state lives in
// compacted topics keyed by aggregate id.
const (
	// TopicOrderEvents holds the events that start sagas, each keyed by
	// the id of the saga it starts: OrderCreated by order id,
	// OrderCancelRequested by CancelOrderSagaID.
	TopicOrderEvents        = "order.events"
	TopicOrderCommands      = "order.commands"
	TopicCustomerCommands   = "customer.commands"
	TopicPaymentCommands    = "payment.commands"
	TopicCreateOrderReplies = "createorder.replies"
	TopicCancelOrderReplies = "cancelorder.replies"

	TopicOrderState           = "order.state"           // compacted: OrderRecord by order id
	TopicCustomerState        = "customer.state"        // compacted: CustomerRecord by customer id
	TopicCustomerReservations = "customer.reservations" // compacted: ReservationRecord by <customer id>/<order id>, partitioned by customer id
	TopicPaymentState         = "payment.state"         // compacted: PaymentRecord by order id
	TopicCreateOrderSagas     = "createorder.sagas"     // compacted: SagaInstance by saga id
	// TopicCreateOrderSagasEnded holds the ended sagas, by saga id, for
	// their retention (SAGA_RETENTION): createorder.sagas keeps a pointer
	// to each (platform/store's Archive).
	TopicCreateOrderSagasEnded = "createorder.sagas.ended"
	TopicCancelOrderSagas      = "cancelorder.sagas"       // compacted: SagaInstance by saga id
	TopicCancelOrderSagasEnded = "cancelorder.sagas.ended" // the ended ones, as createorder.sagas.ended
	// make participant adds topics above

	// TopicConsoleStats holds the orchestrator console's counts of the
	// minutes that can no longer change (ConsoleStats), under one key:
	// compacted, it keeps the latest.
	TopicConsoleStats = "console.stats"

	// TopicDeadLetter receives every message a consumer could not process
	// (undecodable, unexpected type), with headers naming its origin and the
	// error. Keyed by the original key, or the original topic if it had none.
	TopicDeadLetter = "deadletter"
)

// Partitions is the partition count every topic is created with. Topics
// keyed by the same id have the same count, so an instance that owns
// partition p of a command topic also owns partition p of the matching
// state topic. It bounds the busy instances of a process; fewer partitions
// mean fewer of them in each transaction, each with a marker to write and a
// place in every fetch (docs/operations.md, "Sizing").
const Partitions = 8

// Record is a generated Avro type; the types of this package implement it
// on their pointers.
type Record = interface{ Schema() avro.Schema }

// TopicSpec says how a topic must be created and what is written to it.
type TopicSpec struct {
	Name       string
	Partitions int32
	Compacted  bool
	// Archive: written with a state's records and read by offset, never
	// consumed (platform/store's Archive); deleted by time.
	Archive bool
	// Configs are topic settings besides cleanup.policy, given at creation.
	Configs map[string]string
	// Records are the record types written to the topic: each has a subject
	// <topic>-<record full name> in the schema registry.
	Records []Record
}

// Topics lists every topic the system uses, with how it must be created.
func Topics() []TopicSpec {
	log := func(name string, records ...Record) TopicSpec {
		return TopicSpec{Name: name, Partitions: Partitions, Records: records}
	}
	// Compaction never touches the segment being written: small, young
	// segments keep the part it has not reached small.
	state := func(name string, records ...Record) TopicSpec {
		return TopicSpec{Name: name, Partitions: Partitions, Compacted: true, Records: records,
			Configs: map[string]string{"segment.ms": "3600000", "segment.bytes": "16777216"}}
	}
	// Retention deletes whole segments: a segment a day.
	archive := func(name string, records ...Record) TopicSpec {
		return TopicSpec{Name: name, Partitions: Partitions, Records: records, Archive: true,
			Configs: map[string]string{"retention.ms": "604800000", "segment.ms": "86400000", "segment.bytes": "16777216"}}
	}
	return []TopicSpec{
		log(TopicOrderEvents, &OrderCreated{}, &OrderCancelRequested{}),
		log(TopicOrderCommands, saga.Commands(TopicOrderCommands, Interactions()...)...),
		log(TopicCustomerCommands, saga.Commands(TopicCustomerCommands, Interactions()...)...),
		log(TopicPaymentCommands, saga.Commands(TopicPaymentCommands, Interactions()...)...),
		log(TopicCreateOrderReplies, saga.RepliesOf(Interactions()...)...),
		log(TopicCancelOrderReplies, saga.RepliesOf(Interactions()...)...),
		state(TopicOrderState, &OrderRecord{}),
		state(TopicCustomerState, &CustomerRecord{}),
		state(TopicCustomerReservations, &ReservationRecord{}),
		state(TopicPaymentState, &PaymentRecord{}),
		state(TopicCreateOrderSagas, &saga.SagaInstance{}, &CreateOrderSagaData{}),
		archive(TopicCreateOrderSagasEnded, &saga.SagaInstance{}),
		state(TopicCancelOrderSagas, &saga.SagaInstance{}, &CancelOrderSagaData{}),
		archive(TopicCancelOrderSagasEnded, &saga.SagaInstance{}),
		// make participant adds topic specs above
		state(TopicConsoleStats, &ConsoleStats{}),
		log(TopicDeadLetter), // anything, as it was consumed
	}
}

// ArchiveTopics returns the names of the archive topics (TopicSpec.Archive):
// those whose retention SAGA_RETENTION sets.
func ArchiveTopics() []string {
	var names []string
	for _, t := range Topics() {
		if t.Archive {
			names = append(names, t.Name)
		}
	}
	return names
}

// Records returns the record types written to the given topics: what a
// process that reads them must be able to decode.
func Records(topics ...string) []Record {
	var records []Record
	for _, t := range Topics() {
		if slices.Contains(topics, t.Name) {
			records = append(records, t.Records...)
		}
	}
	return records
}

// Carries reports whether topic takes records of r's type.
func Carries(topic string, r Record) bool {
	return carried()[topic][reflect.TypeOf(r)]
}

// carried is the record types of every topic, built once: Carries runs for
// every reply a participant sends.
var carried = sync.OnceValue(func() map[string]map[reflect.Type]bool {
	m := map[string]map[reflect.Type]bool{}
	for _, t := range Topics() {
		types := map[reflect.Type]bool{}
		for _, r := range t.Records {
			types[reflect.TypeOf(r)] = true
		}
		m[t.Name] = types
	}
	return m
})

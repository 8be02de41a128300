package contracts

// Topic names. Commands go to one topic per participant, keyed by the
// aggregate the participant serializes on; replies go to one topic per saga
// type, keyed by saga id; state lives in compacted topics keyed by aggregate id.
const (
	TopicOrderEvents        = "order.events"        // OrderCreated, keyed by order id
	TopicOrderCommands      = "order.commands"      // ApproveOrder, RejectOrder, keyed by order id
	TopicCustomerCommands   = "customer.commands"   // ReserveCredit, ReleaseCredit, keyed by customer id
	TopicPaymentCommands    = "payment.commands"    // AuthorizePayment, CancelPayment, keyed by order id
	TopicCreateOrderReplies = "createorder.replies" // every reply of the Create Order saga, keyed by saga id

	TopicOrderState       = "order.state"       // compacted: OrderRecord by order id
	TopicCustomerState    = "customer.state"    // compacted: CustomerRecord by customer id
	TopicPaymentState     = "payment.state"     // compacted: PaymentRecord by order id
	TopicCreateOrderSagas = "createorder.sagas" // compacted: SagaInstance by saga id

	// TopicDeadLetter receives every message a consumer could not process
	// (undecodable, unexpected type), with headers naming its origin and the
	// error. Keyed by the original key.
	TopicDeadLetter = "deadletter"
)

// Partitions is the partition count of every topic. Topics keyed by the same
// id have the same count, so an instance that owns partition p of a command
// topic also owns partition p of the matching state topic.
const Partitions = 8

// TopicSpec says how a topic must be created.
type TopicSpec struct {
	Name       string
	Partitions int32
	Compacted  bool
}

// Topics lists every topic the system uses, with how it must be created.
func Topics() []TopicSpec {
	log := func(name string) TopicSpec { return TopicSpec{Name: name, Partitions: Partitions} }
	state := func(name string) TopicSpec { return TopicSpec{Name: name, Partitions: Partitions, Compacted: true} }
	return []TopicSpec{
		log(TopicOrderEvents),
		log(TopicOrderCommands),
		log(TopicCustomerCommands),
		log(TopicPaymentCommands),
		log(TopicCreateOrderReplies),
		state(TopicOrderState),
		state(TopicCustomerState),
		state(TopicPaymentState),
		state(TopicCreateOrderSagas),
		log(TopicDeadLetter),
	}
}

package contracts

// Header names. Every command carries the saga headers; a participant copies
// them onto its reply, so the orchestrator can match the reply to the command
// it is waiting for.
const (
	HeaderSagaID      = "saga_id"
	HeaderSagaType    = "saga_type"
	HeaderStep        = "step"       // step name and direction, e.g. "reserve_credit" or "reserve_credit:compensate"
	HeaderCommandID   = "command_id" // deterministic: saga id + step + direction
	HeaderAttempt     = "attempt"    // 1 for the first send, 2 for the first re-send, ...
	HeaderReplyTo     = "reply_to"   // the topic the participant replies on
	HeaderTraceparent = "traceparent"

	// HeaderPartitionKey is the Kafka record key. The producer's marshaler
	// moves it from the message metadata to the record key.
	HeaderPartitionKey = "partition_key"
)

// HeaderArchivedAt marks a state record that stands for a record moved to
// the state's archive topic: its value is empty and the header holds the
// archived record's offset there (platform/store).
const HeaderArchivedAt = "archived_at"

// Headers a dead-lettered message carries besides its own.
const (
	HeaderDeadLetterTopic     = "dlq_topic"     // where the message was consumed from
	HeaderDeadLetterPartition = "dlq_partition" // its partition there
	HeaderDeadLetterOffset    = "dlq_offset"    // its offset there
	HeaderDeadLetterHandler   = "dlq_handler"   // the handler that gave up on it
	HeaderDeadLetterError     = "dlq_error"     // why
)

// SagaTypeCreateOrder names the Create Order saga in headers and records.
const SagaTypeCreateOrder = "CreateOrder"

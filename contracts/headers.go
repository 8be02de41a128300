package contracts

// Header names besides the saga protocol's (package saga).

// HeaderPartitionKey is the Kafka record key. The producer's marshaler moves
// it from the message metadata to the record key.
const HeaderPartitionKey = "partition_key"

// HeaderArchivedAt marks a state record that stands for a record moved to
// the state's archive topic: its value is empty and the header holds the
// archived record's offset there (platform/store).
const HeaderArchivedAt = "archived_at"

// HeaderEnded marks a state record that is over and is deleted once its
// time is past the store's expiry (platform/store's Expire).
const HeaderEnded = "ended"

// Headers a dead-lettered message carries besides its own.
const (
	HeaderDeadLetterTopic     = "dlq_topic"     // where the message was consumed from
	HeaderDeadLetterPartition = "dlq_partition" // its partition there
	HeaderDeadLetterOffset    = "dlq_offset"    // its offset there
	// HeaderDeadLetterTimestamp is the message's record timestamp, in
	// milliseconds since 1970: a replay writes it with it, so that it is
	// as old as the message it stands for (a start event older than the
	// retention of ended sagas starts nothing: orchestrator/ports).
	HeaderDeadLetterTimestamp = "dlq_timestamp"
	HeaderDeadLetterHandler   = "dlq_handler" // the handler that gave up on it
	HeaderDeadLetterError     = "dlq_error"   // why
	// HeaderDeadLetterValueBytes is set on a dead letter whose value was
	// too large to write again: the letter has none, and this header its
	// size. The value is still at dlq_offset of dlq_topic until that
	// topic's retention.
	HeaderDeadLetterValueBytes = "dlq_value_bytes"
	// HeaderDeadLetterKeyBytes is set on a dead letter whose key was too
	// large to write again (its partition key, the record's key, is its
	// dlq_topic instead): this header is the key's size.
	HeaderDeadLetterKeyBytes = "dlq_key_bytes"
	// HeaderDeadLetterHeaderBytes is set on a dead letter whose headers
	// were too large to write again: each of the message's own is cut to
	// its first 4 KiB, and this header is their size before.
	HeaderDeadLetterHeaderBytes = "dlq_header_bytes"
)

// DeadLetterHeaders are the headers the dead-lettering adds to a message's
// own.
var DeadLetterHeaders = []string{HeaderDeadLetterTopic, HeaderDeadLetterPartition,
	HeaderDeadLetterOffset, HeaderDeadLetterHandler, HeaderDeadLetterError,
	HeaderDeadLetterValueBytes, HeaderDeadLetterKeyBytes, HeaderDeadLetterHeaderBytes, HeaderDeadLetterTimestamp}

// HeaderReplayedFrom marks a dead letter replayed to the topic it came
// from (POST /deadletters/{partition}/{offset}/replay): where it was,
// "deadletter/<partition>/<offset>". The replay drops the dlq_* headers.
const HeaderReplayedFrom = "replayed_from"

// SagaTypeCreateOrder names the Create Order saga in headers and records.
const SagaTypeCreateOrder = "CreateOrder"

// SagaTypeCancelOrder names the Cancel Order saga in headers and records.
const SagaTypeCancelOrder = "CancelOrder"

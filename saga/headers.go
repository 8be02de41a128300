package saga

// Header names of the protocol. Every command carries them; a participant
// copies them onto its reply, but reply_to, so the engine can match the reply
// to the command it waits for.
const (
	HeaderSagaID      = "saga_id"
	HeaderSagaType    = "saga_type"
	HeaderStep        = "step"        // step name and direction, e.g. "reserve_credit" or "reserve_credit:compensate"
	HeaderCommandID   = "command_id"  // deterministic: saga id + step + direction
	HeaderAttempt     = "attempt"     // 1 for the first send, 2 for the first re-send, ...
	HeaderReplyTo     = "reply_to"    // the topic the participant replies on
	HeaderTraceparent = "traceparent" // W3C trace context of the span that sent the record, when its process traces
	HeaderTracestate  = "tracestate"  // its W3C vendor state, when it has any
)

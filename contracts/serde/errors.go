package serde

import (
	"errors"

	"github.com/riferrei/srclient"
)

// ErrUndecodable marks a message that will never decode, however often it is
// retried: bad framing, a schema id the registry does not know, a record with
// no reader type, a writer schema that does not resolve against the reader,
// a payload that does not decode. Callers dead-letter such messages; any
// other Decode error (the registry unreachable or failing) is worth a retry.
var ErrUndecodable = errors.New("undecodable message")

// ErrNotRegistered marks an Encode or Register without AutoRegister whose
// schema is not registered under its subject.
var ErrNotRegistered = errors.New("schema not registered")

// isNotFound reports whether the registry answered that a subject, version or
// schema does not exist: its JSON error, with a code 404xx. A bare 404 (a
// page, or the code 404 alone) comes from a route that is not there, as a
// proxy answers while the registry restarts or for a wrong URL: it says
// nothing of the schema, and is an error to try again.
func isNotFound(err error) bool {
	var regErr srclient.Error
	return errors.As(err, &regErr) && regErr.Code/100 == 404 && regErr.Code != 404
}

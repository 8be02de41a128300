package serde

import (
	"errors"
	"strings"

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
// schema does not exist (HTTP 404, error codes 404xx).
func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	var regErr srclient.Error
	if errors.As(err, &regErr) {
		return regErr.Code == 404 || regErr.Code/100 == 404
	}
	// srclient reports an error body that is not JSON by its status line only.
	return strings.HasPrefix(err.Error(), "404 ")
}

package registry

import (
	"fmt"
	"net/http"
	"strings"
)

// apiError is an error the REST API reports to the client, with the HTTP
// status and the error_code that Confluent's registry uses for it, so that
// clients which switch on error codes behave as they do against Confluent.
type apiError struct {
	status int
	code   int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errNotFound() error {
	return &apiError{http.StatusNotFound, http.StatusNotFound, "HTTP 404 Not Found"}
}

func errMethodNotAllowed() error {
	return &apiError{http.StatusMethodNotAllowed, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed"}
}

func errBadRequest(err error) error {
	return &apiError{http.StatusBadRequest, http.StatusBadRequest, fmt.Sprintf("Invalid request body: %v", err)}
}

func errSubjectNotFound(subject string) error {
	return &apiError{http.StatusNotFound, 40401, fmt.Sprintf("Subject '%s' not found.", subject)}
}

func errVersionNotFound(version int) error {
	return &apiError{http.StatusNotFound, 40402, fmt.Sprintf("Version %d not found.", version)}
}

func errSchemaNotFound(what string) error {
	return &apiError{http.StatusNotFound, 40403, what + " not found."}
}

func errSubjectSoftDeleted(subject string) error {
	return &apiError{http.StatusNotFound, 40404, fmt.Sprintf("Subject '%s' was soft deleted. Set permanent=true to delete permanently.", subject)}
}

func errSubjectNotSoftDeleted(subject string) error {
	return &apiError{http.StatusNotFound, 40405, fmt.Sprintf("Subject '%s' was not deleted first before being permanently deleted.", subject)}
}

func errVersionSoftDeleted(subject string, version int) error {
	return &apiError{http.StatusNotFound, 40406, fmt.Sprintf("Subject '%s' Version %d was soft deleted. Set permanent=true to delete permanently.", subject, version)}
}

func errVersionNotSoftDeleted(subject string, version int) error {
	return &apiError{http.StatusNotFound, 40407, fmt.Sprintf("Subject '%s' Version %d was not deleted first before being permanently deleted.", subject, version)}
}

func errSubjectConfigNotFound(subject string) error {
	return &apiError{http.StatusNotFound, 40408, fmt.Sprintf("Subject '%s' does not have subject-level compatibility configured.", subject)}
}

func errIncompatible(subject string, problems []string) error {
	return &apiError{http.StatusConflict, http.StatusConflict, fmt.Sprintf(
		"Schema being registered is incompatible with an earlier schema for subject '%s', details: [%s]",
		subject, strings.Join(problems, "; "))}
}

func errInvalidSchema(msg string) error {
	return &apiError{http.StatusUnprocessableEntity, 42201, msg}
}

func errInvalidVersion(version string) error {
	return &apiError{http.StatusUnprocessableEntity, 42202, fmt.Sprintf(
		"The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\".", version)}
}

func errInvalidLevel(level string) error {
	return &apiError{http.StatusUnprocessableEntity, 42203, fmt.Sprintf(
		"Invalid compatibility level %q. Valid values are NONE, BACKWARD, FORWARD, FULL, BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE and FULL_TRANSITIVE.", level)}
}

func errNotImportMode(subject string) error {
	return &apiError{http.StatusUnprocessableEntity, 42205, fmt.Sprintf(
		"Subject %s is not in import mode: this development registry gives ids and versions itself, and a registration cannot ask for them.", subject)}
}

func errInvalidMode(mode string) error {
	return &apiError{http.StatusUnprocessableEntity, 42204, fmt.Sprintf("Invalid mode %q: this development registry supports only READWRITE.", mode)}
}

package httpserver

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// WriteJSON writes v as JSON with the given status; a v that JSON cannot
// write (a time past year 9999, say) answers 500 with the reason, not the
// status with an empty body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(map[string]string{"error": "encode the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// WriteError writes {"error": msg} with the given status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, map[string]string{"error": msg})
}

// WriteUnavailable writes a 503 {"error": msg} with Retry-After: 1, for a
// condition that passes within seconds (a partition moving, a peer
// restarting): the client should retry soon rather than give up.
func WriteUnavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	WriteError(w, http.StatusServiceUnavailable, msg)
}

// maxBody bounds a request body; the API's bodies are a few dozen bytes.
const maxBody = 1 << 16

// ErrEmptyBody is DecodeJSON's error for a request with no body, which a
// handler whose body is optional takes for none.
var ErrEmptyBody = errors.New("request body is empty")

// DecodeJSON reads one JSON object from the request body into v, rejecting
// unknown fields, trailing data, bodies over 64 KiB, a member given twice
// in an object and a field of v named in another case than its own (which
// encoding/json would take, the last one given winning). Its error
// message is meant for the client.
func DecodeJSON(r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
		return fmt.Errorf("request body is larger than %d bytes", tooLarge.Limit)
	} else if err != nil {
		return fmt.Errorf("read the request body: %w", err)
	}
	if err := decodeJSON(data, v); err != nil {
		return err
	}
	return exactMembers(data, v)
}

// decodeJSON is DecodeJSON but for exactMembers.
func decodeJSON(data []byte, v any) error {
	body := bufio.NewReader(bytes.NewReader(data))
	if isNull(body) {
		// It decodes as nothing at all: into a struct, as the zero value,
		// a request no field of which was sent.
		return errors.New("request body must be a JSON object")
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return ErrEmptyBody
		case errors.As(err, &typeErr) && typeErr.Field == "":
			return errors.New("request body must be a JSON object")
		case errors.As(err, &typeErr):
			return fmt.Errorf("field %q must be a %s", typeErr.Field, typeErr.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return errors.New(strings.TrimPrefix(err.Error(), "json: "))
		default:
			return fmt.Errorf("malformed JSON: %v", err)
		}
	}
	// Nothing but white space may follow, up to the body's end.
	switch _, err := dec.Token(); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return errors.New("malformed JSON: more than one value in the body")
	default:
		return fmt.Errorf("malformed JSON: %s after the value", strings.TrimSuffix(err.Error(), " looking for beginning of value"))
	}
}

// exactMembers refuses what encoding/json took without a word from data,
// a valid JSON value: an object's member given twice (under one name as
// it matches names, ignoring case), and a member of the top object named
// in another case than the field of v, a pointer to a struct, it fills.
func exactMembers(data []byte, v any) error {
	fields := map[string]string{} // by lower case name
	if t := reflect.TypeOf(v); t != nil && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		for _, f := range reflect.VisibleFields(t.Elem()) {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || f.Anonymous || name == "-" {
				continue
			}
			fields[strings.ToLower(cmp.Or(name, f.Name))] = cmp.Or(name, f.Name)
		}
	}
	type container struct {
		members map[string]bool // an object's, by lower case name; nil for an array
		key     bool            // an object's next token is a member name
	}
	var open []*container
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end (data decoded already)
		}
		var in *container
		if len(open) > 0 {
			in = open[len(open)-1]
		}
		if name, ok := tok.(string); ok && in != nil && in.key {
			folded := strings.ToLower(name)
			if in.members[folded] {
				return fmt.Errorf("field %q is given twice", name)
			}
			in.members[folded] = true
			if exact, ok := fields[folded]; ok && len(open) == 1 && exact != name {
				return fmt.Errorf("unknown field %q (field names are case-sensitive: %q)", name, exact)
			}
			in.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			open = append(open, &container{members: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			open = append(open, &container{})
			continue
		case json.Delim('}'), json.Delim(']'):
			open = open[:len(open)-1]
		}
		if len(open) > 0 && open[len(open)-1].members != nil {
			open[len(open)-1].key = true // a member's value is over
		}
	}
}

// isNull reports whether the body's first value, past white space, is
// null, leaving the body to be read from its start.
func isNull(body *bufio.Reader) bool {
	for {
		b, err := body.ReadByte()
		if err != nil {
			return false
		}
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			_ = body.UnreadByte()
			return b == 'n'
		}
	}
}

// WriteAppError answers an error of the application: 400 if it wraps
// invalid (input that can never succeed), 404 if it wraps notFound, and 503
// otherwise: an error the API does not know is a dependency failing, which a
// retry may cure. Either sentinel may be nil.
func WriteAppError(w http.ResponseWriter, err, invalid, notFound error) {
	switch {
	case invalid != nil && errors.Is(err, invalid):
		WriteError(w, http.StatusBadRequest, err.Error())
	case notFound != nil && errors.Is(err, notFound):
		WriteError(w, http.StatusNotFound, err.Error())
	default: // Kafka or the registry, or a partition that moved: it passes
		WriteUnavailable(w, err.Error())
	}
}

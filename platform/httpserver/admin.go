package httpserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// HeaderOperator names who asks for an admin action, to be recorded with
// it: free text, at most MaxOperator characters.
const HeaderOperator = "X-Operator"

const (
	// DefaultOperator is who asked, for a request without X-Operator.
	DefaultOperator = "admin"
	// MaxOperator is the most characters X-Operator may have.
	MaxOperator = 64
)

// AdminDisabled is the error of every admin action of a process started
// without ADMIN_TOKEN.
const AdminDisabled = "admin actions are disabled: ADMIN_TOKEN is not set"

// Admin returns a handler that runs h only for a request with the admin
// token, "Authorization: Bearer <token>", and hands it who asked (the
// X-Operator header, DefaultOperator without one). With token empty, admin
// actions are disabled: every request answers 403 AdminDisabled. Else a
// request without a bearer token answers 401, one with another token 403,
// and one whose X-Operator is longer than MaxOperator characters or holds
// control characters 400.
//
// Register it on a keyed route (HandleKeyed) to act where the key is owned:
// a forwarded request keeps its headers, and the owner checks the token.
func Admin(token string, h func(w http.ResponseWriter, r *http.Request, operator string)) http.HandlerFunc {
	want := sha256.Sum256([]byte(token))
	return func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			WriteError(w, http.StatusForbidden, AdminDisabled)
			return
		}
		scheme, given, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || given == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="admin"`)
			WriteError(w, http.StatusUnauthorized, "admin actions need the header Authorization: Bearer <ADMIN_TOKEN>")
			return
		}
		// Hashes of equal length, compared in constant time: the time an
		// answer takes tells nothing of the token, not even its length.
		got := sha256.Sum256([]byte(strings.TrimSpace(given)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			WriteError(w, http.StatusForbidden, "wrong admin token")
			return
		}
		operator, err := operatorOf(r)
		if err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		h(w, r, operator)
	}
}

// operatorOf returns who asked, from X-Operator.
func operatorOf(r *http.Request) (string, error) {
	op := strings.TrimSpace(r.Header.Get(HeaderOperator))
	// A browser sends only Latin-1 in a header: a name beyond it comes
	// percent-encoded, as RFC 8187's ext-value (UTF-8''Jos%C3%A9).
	if encoded, ok := strings.CutPrefix(op, "UTF-8''"); ok {
		decoded, err := url.PathUnescape(encoded)
		if err != nil {
			return "", fmt.Errorf("%s: %w", HeaderOperator, err)
		}
		op = decoded
	}
	switch {
	case op == "":
		return DefaultOperator, nil
	case !utf8.ValidString(op) || strings.ContainsFunc(op, unicode.IsControl):
		return "", fmt.Errorf("%s holds invalid UTF-8 or control characters", HeaderOperator)
	case utf8.RuneCountInString(op) > MaxOperator:
		return "", fmt.Errorf("%s is longer than %d characters", HeaderOperator, MaxOperator)
	}
	return op, nil
}

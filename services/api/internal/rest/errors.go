package rest

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxBody bounds every request body: the largest legitimate one is a payment with 4 KiB of
// metadata.
const maxBody = 64 << 10

// apiError is the error body of DESIGN.md: {"error":{"code","message","field"}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// RetryAfter, in seconds, becomes a Retry-After header: set on a 503 so that clients
	// and proxies back off instead of hammering a dependency that is down.
	RetryAfter int `json:"-"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// invalid is a 400 for one field; the message starts with the field's name.
func invalid(field, code, msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Message: field + " " + msg, Field: field}
}

var (
	errUnauthorized = &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Field: "Authorization",
		Message: "Authorization is missing or its credentials are invalid: send Authorization: Bearer <key>"}
	errNotFound = &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such object"}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// An encoding error here means the client went away; the status is already sent.
	_ = json.NewEncoder(w).Encode(v)
}

// removed answers a DELETE (or a revocation) the store carried out with err: 204 and a log line
// with attrs, or the store's error.
func (h *Handler) removed(w http.ResponseWriter, r *http.Request, err error, msg string, attrs ...any) *apiError {
	if err != nil {
		return h.storeError(r, err)
	}
	h.cfg.Log.InfoContext(r.Context(), msg, attrs...)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ctrip-pay"`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

// decode reads one JSON object into v: bodies over maxBody, anything but one object, unknown
// fields (and known ones in another case, which encoding/json would take), fields given twice,
// and strings Postgres could not store — invalid UTF-8, unpaired surrogate escapes, NUL — are
// refused; type errors name the field. An empty body is refused unless allowEmpty.
func decode(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return decodeError(err)
		}
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body could not be read"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) && allowEmpty {
			return nil
		}
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body must hold exactly one JSON object"}
	}
	// null decodes into a struct without an error, as if the body were {}.
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) == 0 || b[0] != '{' {
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body must be a JSON object"}
	}
	// A key that is no field as spelled is refused first, so that what follows names only
	// fields of the request (encoding/json took "event_tYpes" for event_types).
	if e := exactFields(body, v); e != nil {
		return e
	}
	// The decoder has quietly turned invalid UTF-8 and unpaired surrogates into U+FFFD and kept
	// the last of a field given twice: the text itself is checked.
	if path, problem := checkJSONText(body, ""); problem != "" {
		field := strings.TrimPrefix(path, ".")
		if field == "" {
			return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body " + problem}
		}
		top, _, nested := strings.Cut(field, ".")
		if problem == problemDuplicate && !nested {
			return invalid(field, "duplicate_field", problem)
		}
		return invalid(field, "invalid_"+top, problem)
	}
	return nil
}

// exactFields refuses a top-level key that is not exactly one of v's JSON field names:
// encoding/json matches them regardless of case ("AMOUNT" sets amount).
func exactFields(body []byte, v any) *apiError {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil // unreachable: the body decoded as an object above
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		known := false
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			known = known || name == k
		}
		if !known {
			return invalid(k, "unknown_field", "is not a field of this request")
		}
	}
	return nil
}

func decodeError(err error) *apiError {
	var (
		tooBig *http.MaxBytesError
		syn    *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("the body is larger than %d bytes", maxBody)}
	case errors.Is(err, io.EOF):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body is empty; send a JSON object"}
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body is not valid JSON"}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body must be a JSON object"}
		}
		field := typ.Field
		return invalid(field, "invalid_"+strings.ReplaceAll(field, ".", "_"), "must be "+jsonKind(typ.Type)+", not "+typ.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		if name == "" {
			// invalid("") would say " is not a field...", naming nothing.
			return &apiError{Status: http.StatusBadRequest, Code: "unknown_field", Message: `the empty key "" is not a field of this request`}
		}
		return invalid(name, "unknown_field", "is not a field of this request")
	}
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body is not valid JSON"}
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(jsonKind(t.Elem()), "a ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "of another type"
}

// retryAfterUnavailable is the Retry-After, in seconds, of a 503: long enough for a restarted
// Postgres or NATS to come back or fail over, short enough not to stall a checkout.
const retryAfterUnavailable = 5

// errUnavailable answers a request that failed because Postgres or NATS could not be reached:
// the request was fine and the same request will work once the dependency is back, which is
// what a 503 with Retry-After tells clients, where a 500 would tell them we have a bug.
func errUnavailable() *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", RetryAfter: retryAfterUnavailable,
		Message: "a backing service is temporarily unavailable; retry the same request in a few seconds"}
}

// unavailable reports whether err means Postgres or NATS could not be reached (as opposed to a
// query or a request they refused). Only what the store and the publisher return reaches it.
func unavailable(err error) bool {
	var (
		opErr *net.OpError
		pqErr *pq.Error
	)
	switch {
	case errors.As(err, &opErr): // dial refused or timed out, connection reset, broken pipe
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone):
		return true
	case errors.As(err, &pqErr):
		// Class 08 is "connection exception"; 57P01-57P03 are the server shutting down,
		// crashing or still starting up.
		switch pqErr.Code {
		case pqerror.AdminShutdown, pqerror.CrashShutdown, pqerror.CannotConnectNow:
			return true
		}
		return pqErr.Code.Class() == pqerror.ClassConnectionException
	case errors.Is(err, context.DeadlineExceeded):
		// No request context carries a deadline of its own, so this is a store or publish
		// timeout: the dependency is too slow to answer.
		return true
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, jetstream.ErrNoStreamResponse):
		return true
	}
	return false
}

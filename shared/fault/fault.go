// Package fault gives an error its kind — what the caller should do about it — once, for every
// transport: natsbus settles a message by it (ack, terminate, redeliver), the api answers HTTP
// with it (400, 404, 409, 503). Handlers return kinds; they never ack or write a status.
package fault

import (
	"errors"
	"time"
)

// Kind says what the failure means for the input that caused it.
type Kind int

const (
	// KindTransient: the input is fine; retry later (a node, Postgres or NATS briefly
	// unavailable, a concurrent change). An error without a kind is transient.
	KindTransient Kind = iota
	// KindInvalid: the input can never be processed (undecodable, missing fields): a poison
	// message is terminated with the error's reason, a request gets a 4xx.
	KindInvalid
	// KindNotFound: the input names something that does not exist (an unknown payment).
	KindNotFound
	// KindConflict: the work conflicts with a newer state or input. For a message: a newer one
	// (a later head of the same chain) redoes all of it, so it is acked, not retried.
	KindConflict
)

func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindNotFound:
		return "not_found"
	case KindConflict:
		return "conflict"
	}
	return "transient"
}

// Error is an error with a kind and a machine-readable code ("invalid_event",
// "unknown_payment"); Reason() is "<code>: <detail>", the form a terminated message carries.
type Error struct {
	Kind Kind
	Code string
	Err  error
	// RetryAfter, on a transient error, asks for redelivery no sooner than this (0: the
	// consumer's back-off decides).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	switch {
	case e.Err == nil:
		return e.Code
	case e.Code == "":
		return e.Err.Error()
	}
	return e.Code + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Invalid marks err as input that can never be processed.
func Invalid(code string, err error) error { return &Error{Kind: KindInvalid, Code: code, Err: err} }

// NotFound marks err as input naming something that does not exist.
func NotFound(code string, err error) error {
	return &Error{Kind: KindNotFound, Code: code, Err: err}
}

// Transient marks err as retryable.
func Transient(err error) error { return &Error{Kind: KindTransient, Code: "transient", Err: err} }

// TransientAfter marks err as retryable no sooner than after d.
func TransientAfter(d time.Duration, err error) error {
	return &Error{Kind: KindTransient, Code: "transient", Err: err, RetryAfter: d}
}

// Conflict marks err as work that conflicts with a newer state (a concurrent request won).
func Conflict(code string, err error) error {
	return &Error{Kind: KindConflict, Code: code, Err: err}
}

// Superseded marks err as work that a newer input redoes: nothing to retry.
func Superseded(err error) error { return &Error{Kind: KindConflict, Code: "superseded", Err: err} }

// KindOf is the kind of the outermost *Error in err's chain; KindTransient when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindTransient
}

// As returns the outermost *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

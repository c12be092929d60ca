package confirm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Kind says how a failed message is settled.
type Kind int

const (
	// KindTransient: retry later (RPC node, DB or NATS briefly unavailable, a concurrent change).
	KindTransient Kind = iota
	// KindPoison: the message can never be processed; terminate it.
	KindPoison
	// KindSuperseded: the work failed, but a newer message of the same kind (a later head of
	// the same chain) redoes all of it; retrying this one only adds load.
	KindSuperseded
)

// Error carries a Kind and a reason "<code>: <detail>".
type Error struct {
	Kind   Kind
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}
func (e *Error) Unwrap() error { return e.Err }

// Poison marks err as a message that must be terminated.
func Poison(code string, err error) error {
	return &Error{Kind: KindPoison, Reason: fmt.Sprintf("%s: %v", code, err)}
}

// Transient marks err as retryable.
func Transient(err error) error { return &Error{Kind: KindTransient, Reason: "transient", Err: err} }

// Superseded marks err as covered by a newer message.
func Superseded(err error) error { return &Error{Kind: KindSuperseded, Reason: "superseded", Err: err} }

// Poison reason codes.
const (
	ReasonInvalidEvent   = "invalid_event"
	ReasonUnknownPayment = "unknown_payment"
	ReasonUnknownChain   = "unknown_chain"
)

// maxRetryDelay caps the NakWithDelay back-off.
const maxRetryDelay = 30 * time.Second

// settle is the one place that maps a handler's outcome to ack / nak / term: nil or
// superseded → Ack, poison → Term with reason, anything else → NakWithDelay growing with the
// delivery count. A plain Ack: every handler is idempotent (guarded transitions, outbox rows
// keyed by Nats-Msg-Id), so a lost ack costs one harmless redelivery.
func settle(ctx context.Context, msg jetstream.Msg, err error, log *slog.Logger) {
	var e *Error
	switch {
	case err == nil:
		if aerr := msg.Ack(); aerr != nil {
			log.WarnContext(ctx, "ack failed", "subject", msg.Subject(), "err", aerr)
		}
	case errors.As(err, &e) && e.Kind == KindPoison:
		log.ErrorContext(ctx, "terminating poison message", "subject", msg.Subject(), "reason", e.Reason)
		if terr := msg.TermWithReason(truncate(e.Reason, 1024)); terr != nil {
			log.WarnContext(ctx, "term failed", "subject", msg.Subject(), "err", terr)
		}
	case errors.As(err, &e) && e.Kind == KindSuperseded:
		log.WarnContext(ctx, "failed, a newer message redoes the work", "subject", msg.Subject(), "err", err)
		if aerr := msg.Ack(); aerr != nil {
			log.WarnContext(ctx, "ack failed", "subject", msg.Subject(), "err", aerr)
		}
	default:
		delay := time.Second
		if md, merr := msg.Metadata(); merr == nil {
			delay = min(time.Duration(md.NumDelivered)*time.Second, maxRetryDelay)
		}
		log.WarnContext(ctx, "transient failure, retrying", "subject", msg.Subject(), "err", err, "delay", delay)
		if nerr := msg.NakWithDelay(delay); nerr != nil {
			log.WarnContext(ctx, "nak failed", "subject", msg.Subject(), "err", nerr)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

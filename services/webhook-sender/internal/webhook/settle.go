package webhook

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
	// KindTransient: retry later (DB or NATS briefly unavailable).
	KindTransient Kind = iota
	// KindPoison: the message can never be processed; terminate it (→ dead letter).
	KindPoison
)

// Error carries a Kind and, for poison, the reason recorded with the dead letter.
type Error struct {
	Kind   Kind
	Reason string // "<code>: <detail>", e.g. "poison: invalid JSON"
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}
func (e *Error) Unwrap() error { return e.Err }

// Poison marks err as a message that must be terminated with reason.
func Poison(code string, err error) error {
	return &Error{Kind: KindPoison, Reason: fmt.Sprintf("%s: %v", code, err)}
}

// Transient marks err as retryable.
func Transient(err error) error { return &Error{Kind: KindTransient, Reason: "transient", Err: err} }

// Term reason codes. The DLQ processor splits "<code>: <detail>" into Dlq-Reason and
// Dlq-Last-Error.
const (
	ReasonMaxDeliveries    = "max_deliveries"
	ReasonEndpointGone     = "endpoint_gone"
	ReasonEndpointDisabled = "endpoint_disabled"
	ReasonEndpointUnknown  = "endpoint_unknown"
	ReasonPoison           = "poison"
)

// settle is the one place that maps a handler's outcome to ack / nak / term for the stages
// whose consumers have no BackOff (fan-out, DLQ processor): nil → Ack, poison → Term with
// reason, anything else → NakWithDelay growing with the delivery count.
//
// A plain Ack, not DoubleAck: both stages are idempotent (a redelivered event republishes into
// the duplicate window; a redelivered advisory finds its dead letter already published), so a
// lost ack costs one harmless redelivery, while waiting for the server's confirmation cost a
// fifth of the fan-out's throughput (BenchmarkWebhookThroughput).
func settle(ctx context.Context, msg jetstream.Msg, err error, log *slog.Logger) {
	if err == nil {
		if aerr := msg.Ack(); aerr != nil {
			// The server will redeliver; handlers are idempotent.
			log.WarnContext(ctx, "ack failed", "err", aerr)
		}
		return
	}
	var e *Error
	if errors.As(err, &e) && e.Kind == KindPoison {
		log.ErrorContext(ctx, "terminating poison message", "subject", msg.Subject(), "reason", e.Reason)
		if terr := msg.TermWithReason(truncate(e.Reason, 1024)); terr != nil {
			log.WarnContext(ctx, "term failed", "err", terr)
		}
		return
	}
	delay := time.Second
	if md, merr := msg.Metadata(); merr == nil {
		delay = min(time.Duration(md.NumDelivered)*time.Second, 30*time.Second)
	}
	log.WarnContext(ctx, "transient failure, retrying", "subject", msg.Subject(), "err", err, "delay", delay)
	if nerr := msg.NakWithDelay(delay); nerr != nil {
		log.WarnContext(ctx, "nak failed", "err", nerr)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

package sweep

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
	// KindTransient: retry later (RPC node, DB or NATS briefly unavailable, receipt not yet in).
	KindTransient Kind = iota
	// KindPoison: the message can never be processed (undecodable, unknown payment): terminate it.
	KindPoison
)

// Error carries a Kind and a reason.
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
func Poison(err error) error { return &Error{Kind: KindPoison, Reason: "poison", Err: err} }

// Transient marks err as retryable.
func Transient(err error) error { return &Error{Kind: KindTransient, Reason: "transient", Err: err} }

// failure is a sweep that cannot succeed as things stand (no treasury, dust, a reverted
// transfer): Sweep reports it as payments.sweep_failed and the message is acked. Code is the
// machine-readable part of the reason ("dust", "no_treasury", ...).
type failure struct {
	Code   string
	Detail string
}

func (f *failure) Error() string { return f.Code + ": " + f.Detail }

func fail(code, format string, args ...any) error {
	return &failure{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// settle is the one place that maps a handler's outcome to ack / nak / term: nil → Ack, poison →
// Term with reason, anything else → NakWithDelay growing with the delivery count. The consumer
// has no BackOff, so the delay given here is the delay applied.
func settle(ctx context.Context, msg jetstream.Msg, err error, log *slog.Logger) {
	if err == nil {
		if aerr := msg.Ack(); aerr != nil {
			// The server will redeliver; the handler is idempotent (a swept payment is acked).
			log.WarnContext(ctx, "ack failed", "err", aerr)
		}
		return
	}
	var e *Error
	if errors.As(err, &e) && e.Kind == KindPoison {
		log.ErrorContext(ctx, "terminating poison message", "subject", msg.Subject(), "err", err)
		if terr := msg.TermWithReason(truncate(err.Error(), 1024)); terr != nil {
			log.WarnContext(ctx, "term failed", "err", terr)
		}
		return
	}
	delay := 2 * time.Second
	if md, merr := msg.Metadata(); merr == nil {
		delay = min(time.Duration(md.NumDelivered)*2*time.Second, time.Minute)
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

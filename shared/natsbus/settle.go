package natsbus

import (
	"context"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/fault"
)

// Action is how a message is settled.
type Action int

const (
	// Ack: done (also a failure a newer message redoes).
	Ack Action = iota
	// Term: it can never be processed; terminated with Reason (the MSG_TERMINATED advisory
	// carries it, and a dead letter records it).
	Term
	// Redeliver: NakWithDelay(Delay).
	Redeliver
	// Later: neither acked nor nacked, but its ack timer restarted (InProgress), so the server
	// redelivers it one step of the consumer's BackOff from now. A plain Nak would ignore the
	// BackOff and redeliver at once.
	Later
)

func (a Action) String() string {
	return [...]string{"ack", "term", "redeliver", "later"}[a]
}

// Settlement is what to do with a handled message.
type Settlement struct {
	Action Action
	Reason string        // Term
	Delay  time.Duration // Redeliver
}

// Backoff is the redelivery delay of a transient failure on a consumer without a BackOff
// schedule: Step × the delivery count, at most Max.
type Backoff struct {
	Step, Max time.Duration
}

// DefaultBackoff: 1s, 2s, 3s … up to 30s.
var DefaultBackoff = Backoff{Step: time.Second, Max: 30 * time.Second}

func (b Backoff) delay(delivered uint64) time.Duration {
	if b.Step <= 0 {
		b = DefaultBackoff
	}
	return min(time.Duration(max(delivered, 1))*b.Step, b.Max)
}

// maxReason bounds a Term reason (it travels in an advisory and a header).
const maxReason = 1024

// Decide is the one mapping from a handler's error to a settlement, by the error's fault kind:
// nil → Ack; invalid or not found → Term with the error as reason; conflict (superseded) → Ack;
// transient (or no kind) → Redeliver after the error's RetryAfter, else after b's delay for
// the delivery count. A plain Ack: every handler is idempotent, so a lost ack costs one
// harmless redelivery.
func Decide(err error, delivered uint64, b Backoff) Settlement {
	if err == nil {
		return Settlement{Action: Ack}
	}
	switch fault.KindOf(err) {
	case fault.KindInvalid, fault.KindNotFound:
		return Settlement{Action: Term, Reason: Truncate(err.Error(), maxReason)}
	case fault.KindConflict:
		return Settlement{Action: Ack}
	}
	if e, ok := fault.As(err); ok && e.RetryAfter > 0 {
		return Settlement{Action: Redeliver, Delay: e.RetryAfter}
	}
	return Settlement{Action: Redeliver, Delay: b.delay(delivered)}
}

// Apply settles msg as s says. A failed ack, nak or term is logged, not returned: the server
// redelivers, and handlers are idempotent.
func Apply(ctx context.Context, msg jetstream.Msg, s Settlement, log *slog.Logger) {
	var err error
	switch s.Action {
	case Ack:
		err = msg.Ack()
	case Term:
		err = msg.TermWithReason(Truncate(s.Reason, maxReason))
	case Redeliver:
		err = msg.NakWithDelay(s.Delay)
	case Later:
		err = msg.InProgress()
	}
	if err != nil {
		log.WarnContext(ctx, s.Action.String()+" failed", "subject", msg.Subject(), "err", err)
	}
}

// Settle decides, logs the decision and applies it: the settlement of a message whose handler
// returned err.
func Settle(ctx context.Context, msg jetstream.Msg, err error, b Backoff, log *slog.Logger) {
	var delivered uint64 = 1
	if md, merr := msg.Metadata(); merr == nil {
		delivered = md.NumDelivered
	}
	s := Decide(err, delivered, b)
	switch {
	case s.Action == Term:
		log.ErrorContext(ctx, "terminating poison message", "subject", msg.Subject(), "reason", s.Reason)
	case s.Action == Redeliver:
		log.WarnContext(ctx, "transient failure, retrying", "subject", msg.Subject(), "err", err, "delay", s.Delay)
	case err != nil:
		log.WarnContext(ctx, "failed, a newer message redoes the work", "subject", msg.Subject(), "err", err)
	}
	Apply(ctx, msg, s, log)
}

// Truncate cuts s to at most n bytes on a rune boundary: a reason, an error or a header value
// bounded for a message, a log line or a column.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

package confirm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/periodic"
)

// ExpireDue expires the payments past their deadline without their full amount detected and
// returns how many it expired.
func (c *Confirmer) ExpireDue(ctx context.Context) (int, error) {
	const batch = 100
	n := 0
	for {
		ids, err := c.payments.DueForExpiry(ctx, batch)
		if err != nil {
			return n, err
		}
		var errs []error
		expiredNow := 0
		for _, id := range ids {
			expired := false
			err := c.update(ctx, id, func(st *PaymentState) (Changes, error) {
				pl := newPlan(st)
				// Totals first: a transfer the scanner recorded whose detected event is still
				// queued counts.
				c.reconcile(ctx, pl, 0, "")
				if !expires(st.Status, st.Amount, st.Received, st.ExpiresAt, c.now()) {
					return pl.ch, nil
				}
				reason := fmt.Sprintf("expired at %s with %s of %s base units received",
					st.ExpiresAt.UTC().Format(time.RFC3339), st.Received, st.Amount)
				from := st.Status
				st.Status = event.StatusExpired
				out, id, err := c.paymentEvent(ctx, st, event.SubjectExpired, st.ID+".expired", 0, "")
				if err != nil {
					return Changes{}, err
				}
				pl.ch.Transitions = append(pl.ch.Transitions, Transition{From: from, To: event.StatusExpired, Reason: reason, EventID: id})
				pl.ch.Events = append(pl.ch.Events, out)
				expired = true
				return pl.ch, nil
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("payment %s: %w", id, err))
				continue
			}
			if expired {
				n++
				expiredNow++
				c.log.InfoContext(ctx, "payment expired", "payment_id", id)
			}
		}
		if len(errs) > 0 {
			return n, errors.Join(errs...)
		}
		// Another batch only if this one was full and all of it expired: a payment the query
		// lists but the update keeps (its received total was stale) must not loop here.
		if len(ids) < batch || expiredNow < len(ids) {
			return n, nil
		}
	}
}

// RunExpiry runs ExpireDue every interval until ctx is cancelled.
func (c *Confirmer) RunExpiry(ctx context.Context, interval time.Duration) {
	periodic.Every(ctx, interval, func(ctx context.Context) bool {
		ctx, span := c.tracer.Start(ctx, "confirmer.expire")
		n, err := c.ExpireDue(ctx)
		span.SetAttributes(attribute.Int("expired", n))
		natsbus.EndSpan(span, err)
		if err != nil && ctx.Err() == nil {
			c.log.WarnContext(ctx, "expiry pass", "err", err, "expired", n)
		}
		return true
	})
}

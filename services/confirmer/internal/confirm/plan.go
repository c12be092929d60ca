package confirm

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
)

// update runs one payment update, then counts its transitions and wakes the relay.
func (c *Confirmer) update(ctx context.Context, paymentID string, decide func(*PaymentState) (Changes, error)) error {
	var made Changes
	err := c.payments.UpdatePayment(ctx, paymentID, func(st *PaymentState) (Changes, error) {
		ch, err := decide(st)
		made = ch
		return ch, err
	})
	if err != nil {
		if errors.Is(err, ErrUnknownPayment) {
			return err
		}
		return fault.Transient(err)
	}
	for _, t := range made.Transitions {
		c.transitions.Add(ctx, 1, metric.WithAttributes(attribute.String("from", t.From), attribute.String("to", t.To)))
		c.log.InfoContext(ctx, "payment status changed", "payment_id", paymentID, "from", t.From, "to", t.To,
			"reason", t.Reason, "event_id", t.EventID)
	}
	if len(made.Events) > 0 {
		c.wrote()
	}
	return nil
}

// plan collects the changes of one update, applying them to the loaded state as it goes so
// that totals and events see the outcome.
type plan struct {
	st *PaymentState
	ch Changes
}

func newPlan(st *PaymentState) *plan { return &plan{st: st} }

func (p *plan) setTransfer(t *Transfer, to string, reported bool) {
	p.ch.Transfers = append(p.ch.Transfers, TransferUpdate{
		Key: t.TransferKey, From: t.Status, BlockHash: t.BlockHash, To: to, ReorgReported: reported,
	})
	t.Status, t.ReorgReported = to, reported
}

// keepTrace stores the trace context of ctx (the detection's) if the payment has none yet.
func (p *plan) keepTrace(ctx context.Context) {
	if p.st.TraceContext != nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	h := nats.Header{}
	natsbus.Inject(ctx, h)
	tc := map[string]string{}
	for k := range h {
		tc[k] = h.Get(k)
	}
	p.st.TraceContext, p.ch.TraceContext = tc, tc
}

func (p *plan) record(t Transfer) {
	t.Status, t.ReorgReported = event.TransferDetected, false
	p.ch.Record = &t
	if got := p.st.transfer(t.TransferKey); got != nil {
		*got = t
		return
	}
	p.st.Transfers = append(p.st.Transfers, t)
}

// reconcile brings the payment's totals and status in line with its transfers. A transition to
// confirmed writes payments.confirmed to the outbox. cause is the id of the event that caused
// the change, for the audit row, when there is no outgoing event.
func (c *Confirmer) reconcile(ctx context.Context, pl *plan, head uint64, cause string) {
	st := pl.st
	received, confirmed := st.totals()
	if received.Cmp(st.Received) != 0 {
		pl.ch.Received = received
	}
	if confirmed.Cmp(st.Confirmed) != 0 {
		pl.ch.Confirmed = confirmed
	}
	st.Received, st.Confirmed = received, confirmed
	to, reason := nextStatus(st.Status, st.Amount, received, confirmed)
	if to == "" {
		return
	}
	tr := Transition{From: st.Status, To: to, Reason: reason, EventID: cause}
	st.Status = to
	if to == event.StatusConfirmed {
		// A reorg can undo a confirmation; the next one is a new event with its own id.
		msgID := st.ID + ".confirmed"
		if st.TimesConfirmed > 0 {
			msgID = fmt.Sprintf("%s.confirmed.%d", st.ID, st.TimesConfirmed+1)
		}
		out, id, err := c.paymentEvent(ctx, st, event.SubjectConfirmed, msgID, head, "")
		if err != nil {
			// Only a marshalling failure of our own struct; refuse the transition rather than
			// confirm silently.
			c.log.ErrorContext(ctx, "building payments.confirmed", "payment_id", st.ID, "err", err)
			st.Status = tr.From
			return
		}
		tr.EventID = id
		pl.ch.Events = append(pl.ch.Events, out)
	}
	pl.ch.Transitions = append(pl.ch.Transitions, tr)
}

package sweep

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
)

// leftoverBatch is how many payments one SweepLeftovers pass takes on.
const leftoverBatch = 50

// SweepLeftovers is the pass that leaves no wei at a deposit address: value that reaches an
// address whatever its payment's status — the partial value of a payment that expired short,
// value paid after the deadline, value paid after the payment was swept — is swept to the
// treasury once the confirmer has confirmed it, each time in a further sweep round recorded and
// re-priced like the first. The payment's status stays (an expired payment is never
// confirmed); payments.swept tells the merchant what moved and that it came late or short. It
// returns how many payments it swept; a payment that fails is retried on the next pass.
func (s *Sweeper) SweepLeftovers(ctx context.Context) (int, error) {
	ids, err := s.Payments.ValueLeft(ctx, leftoverBatch)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	// The pass's span: each payment's round continues that payment's trace, linked to it.
	ctx, pass := s.Tracer.Start(ctx, "sweeper.leftovers", trace.WithAttributes(attribute.Int("payments", len(ids))))
	defer pass.End()
	n := 0
	var errs []error
	for _, id := range ids {
		swept, err := s.sweepLeftover(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("payment %s: %w", id, err))
		}
		if swept {
			n++
		}
	}
	return n, errors.Join(errs...)
}

func (s *Sweeper) sweepLeftover(ctx context.Context, id string) (swept bool, err error) {
	p, err := s.Payments.Payment(ctx, id)
	if err != nil {
		return false, err
	}
	ctx, span := natsbus.StartSpanFor(ctx, s.Tracer, p.TraceContext, "sweeper.sweep_round",
		trace.WithAttributes(attribute.String("payment.id", id), attribute.Int("sweep.round", p.SweepRounds)))
	defer func() { natsbus.EndSpan(span, err) }()
	if (p.Status != event.StatusExpired && p.Status != event.StatusSwept) || orZero(p.Confirmed).Cmp(orZero(p.CoveredBaseUnits)) <= 0 {
		return false, nil // swept by another replica meanwhile, or no longer terminal
	}
	all, err := s.Ledger.Sweeps(ctx, id)
	if err != nil {
		return false, err
	}
	round := p.SweepRounds
	log := s.Log.With("payment_id", id, "round", round, "status", p.Status)
	j := &job{s: s, p: p, in: event.Payment{PaymentID: id}, round: round, recorded: ofRound(all, round), log: log}
	txs, err := j.run(ctx)
	var f *failure
	switch {
	case errors.As(err, &f) && (f.Code == "empty" || f.Code == "dust") && len(j.recorded) == 0:
		// Nothing to move: an earlier round's sweep took the value along before it was
		// confirmed, or what is left does not pay its own fee. The round accounts for it.
		log.InfoContext(ctx, "nothing left to sweep", "why", f.Error())
		_, err := s.Payments.MarkSwept(ctx, Round{PaymentID: id, Round: round, Swept: new(big.Int), Covered: orZero(p.Confirmed)})
		return false, err
	case errors.As(err, &f):
		// Retried on the next pass; the payment's status is terminal, so no payments.sweep_failed.
		log.ErrorContext(ctx, "leftover sweep failed", "reason", f.Error())
		return false, err
	case err != nil:
		return false, err
	}
	if err := s.markSwept(ctx, j, txs); err != nil {
		return false, err
	}
	return true, nil
}

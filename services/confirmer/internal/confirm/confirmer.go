package confirm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/outbox"
)

// Chain is a configured chain and its RPC node.
type Chain struct {
	chains.Chain
	RPC ChainReader
}

// Config wires a Confirmer.
type Config struct {
	Payments  PaymentStore
	Transfers TransferFinder
	Chains    []Chain
	Tracer    trace.Tracer
	Meter     metric.Meter
	Log       *slog.Logger
	// OutboxWake, when set, is called after a commit that wrote outbox messages (wakes the
	// relay).
	OutboxWake func()
	// RPCTimeout bounds each RPC call; default 10s.
	RPCTimeout time.Duration
	// Now is the clock for expiry; default time.Now.
	Now func() time.Time
}

// Confirmer handles the confirmer's messages and runs expiry.
type Confirmer struct {
	payments    PaymentStore
	transfers   TransferFinder
	chains      map[int64]Chain
	tracer      trace.Tracer
	log         *slog.Logger
	wrote       func()
	rpcTimeout  time.Duration
	now         func() time.Time
	transitions metric.Int64Counter

	mu     sync.Mutex
	latest map[int64]uint64 // highest head seen per chain
}

// New builds a Confirmer.
func New(cfg Config) (*Confirmer, error) {
	c := &Confirmer{
		payments: cfg.Payments, transfers: cfg.Transfers, chains: map[int64]Chain{},
		tracer: cfg.Tracer, log: cfg.Log, wrote: cfg.OutboxWake, rpcTimeout: cfg.RPCTimeout, now: cfg.Now,
		latest: map[int64]uint64{},
	}
	for _, ch := range cfg.Chains {
		c.chains[ch.ID] = ch
	}
	if c.rpcTimeout <= 0 {
		c.rpcTimeout = 10 * time.Second
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.wrote == nil {
		c.wrote = func() {}
	}
	var err error
	if c.transitions, err = cfg.Meter.Int64Counter("confirmer.payment_transitions",
		metric.WithDescription("Payment status transitions made by the confirmer")); err != nil {
		return nil, err
	}
	return c, nil
}

// HandlePaymentMsg is the port of the PAYMENTS consumer (payments.detected): it decodes the
// message and hands the envelope to HandleDetected; natsbus settles the message by the error.
func (c *Confirmer) HandlePaymentMsg(ctx context.Context, msg jetstream.Msg) error {
	if msg.Subject() != event.SubjectDetected {
		// Only payments.detected is ours; the consumer's filter should not have delivered it.
		c.log.WarnContext(ctx, "ignoring unexpected subject", "subject", msg.Subject())
		return nil
	}
	var env event.Envelope
	if err := json.Unmarshal(msg.Data(), &env); err != nil {
		return fault.Invalid(ReasonInvalidEvent, err)
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("event_id", env.ID))
	return c.HandleDetected(ctx, env)
}

// HandleChainMsg is the port of the CHAIN consumer (chain.<id>.head, chain.<id>.reorg): it
// decodes the message and hands it to HandleHead or HandleReorg.
func (c *Confirmer) HandleChainMsg(ctx context.Context, msg jetstream.Msg) error {
	parts := strings.Split(msg.Subject(), ".")
	if len(parts) != 3 || parts[0] != "chain" {
		return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("subject %q", msg.Subject()))
	}
	chainID, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("subject %q: %w", msg.Subject(), err))
	}
	switch parts[2] {
	case "head":
		var h event.ChainHead
		if err := json.Unmarshal(msg.Data(), &h); err != nil {
			return fault.Invalid(ReasonInvalidEvent, err)
		}
		if h.ChainID != chainID {
			return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("chain %d head on subject %s", h.ChainID, msg.Subject()))
		}
		return c.HandleHead(ctx, h)
	case "reorg":
		var r event.ChainReorg
		if err := json.Unmarshal(msg.Data(), &r); err != nil {
			return fault.Invalid(ReasonInvalidEvent, err)
		}
		if r.ChainID != chainID {
			return fault.Invalid(ReasonInvalidEvent, fmt.Errorf("chain %d reorg on subject %s", r.ChainID, msg.Subject()))
		}
		return c.HandleReorg(ctx, r)
	}
	c.log.WarnContext(ctx, "ignoring unexpected subject", "subject", msg.Subject())
	return nil
}

// ChainLane keeps the heads and reorgs of one chain in order.
func ChainLane(msg jetstream.Msg) string {
	parts := strings.Split(msg.Subject(), ".")
	if len(parts) > 1 {
		return parts[1]
	}
	return msg.Subject()
}

// HandleDetected records what the scanner saw: it recomputes the payment's received value and
// moves a pending payment to detected. The scanner's payments.detected is itself the
// merchant's event, so nothing is published.
//
// The scanner inserted the transfer row before publishing. When the row is missing, reorged,
// or in another block than the event names, the event's block is checked against the chain:
// an event about an orphaned block (a stale redelivery) changes nothing; a transfer re-included
// in a canonical block after a reorg is recorded in that block once the reorg message has been
// handled (until then the event is retried, so that payments.reorged goes out first).
func (c *Confirmer) HandleDetected(ctx context.Context, env event.Envelope) error {
	if err := env.Validate(); err != nil {
		return fault.Invalid(ReasonInvalidEvent, err)
	}
	var p event.Payment
	if err := json.Unmarshal(env.Data, &p); err != nil {
		return fault.Invalid(ReasonInvalidEvent, err)
	}
	if p.PaymentID == "" {
		return fault.Invalid(ReasonInvalidEvent, errors.New("missing payment_id"))
	}
	log := c.log.With("payment_id", p.PaymentID, "event_id", env.ID)
	var seen *Transfer
	if len(p.Transactions) > 0 {
		t, err := transferFromEvent(p, p.Transactions[0])
		if err != nil {
			return fault.Invalid(ReasonInvalidEvent, err)
		}
		seen = &t
	}
	differs := false
	err := c.update(ctx, p.PaymentID, func(st *PaymentState) (Changes, error) {
		differs = seen != nil && !onRecord(st, *seen)
		pl := newPlan(st)
		pl.keepTrace(ctx)
		c.reconcile(ctx, pl, 0, env.ID)
		return pl.ch, nil
	})
	if errors.Is(err, ErrUnknownPayment) {
		return fault.NotFound(ReasonUnknownPayment, errors.New(p.PaymentID))
	}
	if err != nil || !differs {
		return err
	}
	chain, ok := c.chains[seen.ChainID]
	if !ok {
		return fault.Invalid(ReasonUnknownChain, fmt.Errorf("chain %d", seen.ChainID))
	}
	if seen.BlockHash == "" {
		log.WarnContext(ctx, "detected transfer differs from the record and the event names no block", "tx_hash", seen.TxHash)
		return nil
	}
	canonical, err := c.canonical(ctx, chain, seen.BlockNumber, seen.BlockHash)
	if err != nil {
		return fault.Transient(err)
	}
	if !canonical {
		log.InfoContext(ctx, "detected event names a block that is no longer canonical; ignored",
			"tx_hash", seen.TxHash, "block_number", seen.BlockNumber, "block_hash", seen.BlockHash)
		return nil
	}
	return c.update(ctx, p.PaymentID, func(st *PaymentState) (Changes, error) {
		pl := newPlan(st)
		got := st.transfer(seen.TransferKey)
		sameBlock := got != nil && sameHash(got.BlockHash, seen.BlockHash)
		switch {
		case got == nil || (got.Status == event.TransferReorged && (got.ReorgReported || sameBlock)):
			pl.record(*seen)
			log.InfoContext(ctx, "transfer recorded in the block the scanner reports", "tx_hash", seen.TxHash,
				"log_index", seen.LogIndex, "block_number", seen.BlockNumber, "block_hash", seen.BlockHash)
		case !sameBlock:
			// Moved to another block: the reorg message reports it leaving the old one first.
			return Changes{}, fmt.Errorf("transfer %s moved from block %d to %d: waiting for the reorg of block %d",
				seen.TxHash, got.BlockNumber, seen.BlockNumber, got.BlockNumber)
		}
		c.reconcile(ctx, pl, 0, env.ID)
		return pl.ch, nil
	})
}

// onRecord: the transfer is on record for the payment, not reorged, in the block the event
// names.
func onRecord(st *PaymentState, t Transfer) bool {
	got := st.transfer(t.TransferKey)
	return got != nil && got.Status != event.TransferReorged && sameHash(got.BlockHash, t.BlockHash)
}

func transferFromEvent(p event.Payment, tx event.Transaction) (Transfer, error) {
	if tx.TxHash == "" {
		return Transfer{}, errors.New("transaction without tx_hash")
	}
	value, ok := new(big.Int).SetString(tx.ValueBaseUnits, 10)
	if !ok || value.Sign() < 0 {
		return Transfer{}, fmt.Errorf("transaction %s: value_base_units %q", tx.TxHash, tx.ValueBaseUnits)
	}
	logIndex := int64(-1)
	if tx.LogIndex != nil {
		logIndex = *tx.LogIndex
	}
	return Transfer{
		TransferKey: TransferKey{ChainID: p.ChainID, TxHash: tx.TxHash, LogIndex: logIndex},
		PaymentID:   p.PaymentID, TokenContract: p.TokenContract, Value: value,
		BlockNumber: tx.BlockNumber, BlockHash: tx.BlockHash, Status: event.TransferDetected,
	}, nil
}

// HandleHead counts confirmations: every detected transfer of the chain with enough blocks on
// top is re-verified against the chain at this moment and confirmed, or marked reorged if its
// block left the canonical chain; then each touched payment's status follows its totals.
func (c *Confirmer) HandleHead(ctx context.Context, h event.ChainHead) error {
	chain, ok := c.chains[h.ChainID]
	if !ok {
		return fault.Invalid(ReasonUnknownChain, fmt.Errorf("chain %d", h.ChainID))
	}
	c.observeHead(h.ChainID, h.Number)
	upTo, ok := confirmableUpTo(h.Number, chain.Confirmations)
	if !ok {
		return nil
	}
	cands, err := c.transfers.ToConfirm(ctx, h.ChainID, upTo)
	if err != nil {
		return c.headFailed(h, err)
	}
	if len(cands) == 0 {
		return nil
	}
	// A redelivered head may be stale (a reorg shortened the chain since): never count
	// confirmations above the node's own tip.
	tip, err := c.tip(ctx, chain)
	if err != nil {
		return c.headFailed(h, err)
	}
	head := min(h.Number, tip)
	var errs []error
	for _, group := range byPayment(cands) {
		verdicts := map[TransferKey]verdict{}
		for _, t := range group {
			if confirmations(head, t.BlockNumber) < chain.Confirmations {
				continue
			}
			v, err := c.verify(ctx, chain, t)
			if err != nil {
				errs = append(errs, fmt.Errorf("verify %s:%d: %w", t.TxHash, t.LogIndex, err))
				continue
			}
			verdicts[t.TransferKey] = v
		}
		if len(verdicts) == 0 {
			continue
		}
		paymentID := group[0].PaymentID
		log := c.log.With("payment_id", paymentID, "chain_id", h.ChainID)
		err := c.update(ctx, paymentID, func(st *PaymentState) (Changes, error) {
			pl := newPlan(st)
			for _, t := range group {
				v, ok := verdicts[t.TransferKey]
				got := st.transfer(t.TransferKey)
				// Decided on the row as read before the RPC calls; if it moved since, the next
				// head decides again.
				if !ok || got == nil || got.Status != event.TransferDetected || got.BlockHash != t.BlockHash {
					continue
				}
				switch v.outcome {
				case verified:
					pl.setTransfer(got, event.TransferConfirmed, false)
					log.InfoContext(ctx, "transfer confirmed", "tx_hash", t.TxHash, "log_index", t.LogIndex,
						"block_number", t.BlockNumber, "confirmations", confirmations(head, t.BlockNumber))
				case orphaned:
					pl.setTransfer(got, event.TransferReorged, false)
					log.WarnContext(ctx, "transfer's block left the canonical chain", "tx_hash", t.TxHash,
						"log_index", t.LogIndex, "block_number", t.BlockNumber, "block_hash", t.BlockHash)
				case invalid:
					// The block is canonical but holds no such transfer: it never paid anything.
					pl.setTransfer(got, event.TransferFailed, false)
					log.ErrorContext(ctx, "transfer not on the chain as recorded; not counted", "tx_hash", t.TxHash,
						"log_index", t.LogIndex, "block_number", t.BlockNumber, "why", v.why)
				}
			}
			c.reconcile(ctx, pl, head, "")
			return pl.ch, nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("payment %s: %w", paymentID, err))
		}
	}
	if len(errs) > 0 {
		return c.headFailed(h, errors.Join(errs...))
	}
	return nil
}

// observeHead remembers the highest head seen per chain.
func (c *Confirmer) observeHead(chainID int64, number uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if number > c.latest[chainID] {
		c.latest[chainID] = number
	}
}

// headFailed: every head redoes all the work of the heads before it, so a failed head that a
// newer one has already followed is acked instead of retried; only the newest is retried.
func (c *Confirmer) headFailed(h event.ChainHead, err error) error {
	c.mu.Lock()
	newer := c.latest[h.ChainID] > h.Number
	c.mu.Unlock()
	if newer {
		return fault.Superseded(err)
	}
	return fault.Transient(err)
}

// HandleReorg brings the chain's transfers above the common ancestor in line with the
// canonical chain: those whose block left it are marked reorged, their payments step back and
// payments.reorged is published once per payment and reorg (Nats-Msg-Id
// <payment_id>.reorged.<common_ancestor_hash>), naming also the transfers a head already found
// orphaned; reorged ones whose block is canonical again (the chain flipped back) count again.
func (c *Confirmer) HandleReorg(ctx context.Context, r event.ChainReorg) error {
	chain, ok := c.chains[r.ChainID]
	if !ok {
		return fault.Invalid(ReasonUnknownChain, fmt.Errorf("chain %d", r.ChainID))
	}
	c.mu.Lock()
	// Heads of the new branch may be lower than the old branch's: let them retry again.
	c.latest[r.ChainID] = min(c.latest[r.ChainID], r.NewHeadNumber)
	c.mu.Unlock()
	cands, err := c.transfers.Above(ctx, r.ChainID, r.CommonAncestorNumber)
	if err != nil {
		return fault.Transient(err)
	}
	canonicalAt := map[uint64]string{} // block number → canonical hash ("" beyond the tip)
	var touched []Transfer
	canonical := map[TransferKey]bool{}
	for _, t := range cands {
		hash, seen := canonicalAt[t.BlockNumber]
		if !seen {
			hash, err = c.canonicalHash(ctx, chain, t.BlockNumber)
			if err != nil {
				return fault.Transient(err)
			}
			canonicalAt[t.BlockNumber] = hash
		}
		onChain := sameHash(hash, t.BlockHash)
		if t.Status == event.TransferFailed {
			if !onChain {
				// Its block left the chain: the transaction may succeed where it lands now. It
				// never counted, so it leaves quietly (reorged and reported) and the scanner's
				// detection in the new block records it afresh.
				touched = append(touched, t)
				canonical[t.TransferKey] = false
			}
			continue
		}
		if onChain && t.Status == event.TransferReorged {
			// Back on the chain, unless it was never really there (a failed transaction the
			// head found, also kept as reorged): it counts again only if it verifies.
			v, err := c.verify(ctx, chain, t)
			if err != nil {
				return fault.Transient(err)
			}
			onChain = v.outcome == verified
			if !onChain {
				continue
			}
		} else if onChain || (t.Status == event.TransferReorged && t.ReorgReported) {
			continue
		}
		touched = append(touched, t)
		canonical[t.TransferKey] = onChain
	}
	var errs []error
	for _, group := range byPayment(touched) {
		paymentID := group[0].PaymentID
		log := c.log.With("payment_id", paymentID, "chain_id", r.ChainID)
		err := c.update(ctx, paymentID, func(st *PaymentState) (Changes, error) {
			pl := newPlan(st)
			var left []string
			for _, t := range group {
				got := st.transfer(t.TransferKey)
				if got == nil || got.BlockHash != t.BlockHash {
					continue
				}
				if canonical[t.TransferKey] {
					if got.Status == event.TransferReorged {
						pl.setTransfer(got, event.TransferDetected, false)
						log.InfoContext(ctx, "reorged transfer's block is canonical again", "tx_hash", t.TxHash,
							"log_index", t.LogIndex, "block_number", t.BlockNumber)
					}
					continue
				}
				if got.Status == event.TransferReorged && got.ReorgReported {
					continue
				}
				if got.Status == event.TransferFailed {
					pl.setTransfer(got, event.TransferReorged, true) // not named: it never counted
					continue
				}
				pl.setTransfer(got, event.TransferReorged, true)
				left = append(left, fmt.Sprintf("%s (log %d, block %d)", t.TxHash, t.LogIndex, t.BlockNumber))
			}
			from := st.Status
			c.reconcile(ctx, pl, r.NewHeadNumber, "")
			if len(left) == 0 {
				return pl.ch, nil
			}
			reason := fmt.Sprintf("chain %d reorganised above block %d (%s): transfer(s) %s left the canonical chain",
				r.ChainID, r.CommonAncestorNumber, r.CommonAncestorHash, strings.Join(left, ", "))
			if st.Status != from {
				reason += fmt.Sprintf("; payment stepped back from %s to %s", from, st.Status)
			}
			if st.Status == event.StatusSwept && st.Confirmed.Cmp(st.Amount) < 0 {
				reason += "; the payment was already swept"
				log.ErrorContext(ctx, "reorg took confirmed value out of a swept payment: funds already moved",
					"confirmed", st.Confirmed.String(), "amount", st.Amount.String())
			}
			out, id, err := c.paymentEvent(ctx, st, event.SubjectReorged, paymentID+".reorged."+r.CommonAncestorHash, r.NewHeadNumber, reason)
			if err != nil {
				return Changes{}, err
			}
			for i := range pl.ch.Transitions {
				pl.ch.Transitions[i].EventID = id
			}
			pl.ch.Events = append(pl.ch.Events, out)
			log.WarnContext(ctx, "payment reorged", "reason", reason)
			return pl.ch, nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("payment %s: %w", paymentID, err))
		}
	}
	if len(errs) > 0 {
		return fault.Transient(errors.Join(errs...))
	}
	return nil
}

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
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ctx, span := c.tracer.Start(ctx, "confirmer.expire")
		n, err := c.ExpireDue(ctx)
		span.SetAttributes(attribute.Int("expired", n))
		natsbus.EndSpan(span, err)
		if err != nil && ctx.Err() == nil {
			c.log.WarnContext(ctx, "expiry pass", "err", err, "expired", n)
		}
	}
}

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

// PaymentData is the data of the events the confirmer publishes: event.Payment plus how the
// received value compares with the amount. Overpaid and underpaid compare
// amount_received_base_units (detected and not reorged) with amount_base_units; at most one of
// them is non-zero.
type PaymentData struct {
	event.Payment
	AmountConfirmedBaseUnits string `json:"amount_confirmed_base_units"`
	OverpaidBaseUnits        string `json:"overpaid_base_units"`
	UnderpaidBaseUnits       string `json:"underpaid_base_units"`
	Reason                   string `json:"reason,omitempty"`
}

// paymentEvent builds the outbox message for subject about st; head (0: unknown) gives the
// confirmations.
func (c *Confirmer) paymentEvent(ctx context.Context, st *PaymentState, subject, msgID string, head uint64, reason string) (outbox.Message, string, error) {
	over, under := new(big.Int), new(big.Int)
	switch diff := new(big.Int).Sub(st.Received, st.Amount); diff.Sign() {
	case 1:
		over = diff
	case -1:
		under = diff.Neg(diff)
	}
	data := PaymentData{
		Payment: event.NewPayment(event.PaymentRow{
			ID: st.ID, MerchantID: st.MerchantID, Status: st.Status, ChainID: st.ChainID, Chain: c.chains[st.ChainID].Name,
			Address: st.Address, Token: st.Token, TokenContract: st.TokenContract, Decimals: st.Decimals,
			Amount: st.Amount, Received: st.Received, Confirmations: int64(minConfirmations(st.Transfers, head)),
			Transactions: transactions(st.Transfers), Metadata: st.Metadata, ExpiresAt: st.ExpiresAt,
		}),
		AmountConfirmedBaseUnits: st.Confirmed.String(),
		OverpaidBaseUnits:        over.String(),
		UnderpaidBaseUnits:       under.String(),
		Reason:                   reason,
	}
	// The event continues the payment's trace (from its detection) and links to the span that
	// caused it (a chain head, a reorg, the expiry pass).
	parent := ctx
	if st.TraceContext != nil {
		carrier := nats.Header{}
		for k, v := range st.TraceContext {
			carrier.Set(k, v)
		}
		parent = natsbus.Extract(context.Background(), carrier)
	}
	pctx, span := c.tracer.Start(parent, "confirmer publish "+subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithLinks(trace.LinkFromContext(ctx)), trace.WithAttributes(attribute.String("payment_id", st.ID)))
	defer span.End()
	m, err := outbox.NewMessage(pctx, subject, msgID, data)
	if err != nil {
		return outbox.Message{}, "", err
	}
	span.SetAttributes(attribute.String("event_id", m.EventID))
	return m, m.EventID, nil
}

// minConfirmations is the confirmations of the least confirmed counted transfer at head.
func minConfirmations(ts []Transfer, head uint64) uint64 {
	if head == 0 {
		return 0
	}
	var out uint64
	first := true
	for _, t := range ts {
		if t.Status != event.TransferConfirmed {
			continue
		}
		if n := confirmations(head, t.BlockNumber); first || n < out {
			out, first = n, false
		}
	}
	return out
}

func transactions(ts []Transfer) []event.Transaction {
	out := make([]event.Transaction, 0, len(ts))
	for _, t := range ts {
		li := t.LogIndex
		out = append(out, event.Transaction{
			TxHash: t.TxHash, LogIndex: &li, BlockNumber: t.BlockNumber, BlockHash: t.BlockHash,
			ValueBaseUnits: t.Value.String(), Status: t.Status,
		})
	}
	return out
}

// byPayment groups transfers by payment, keeping the order of first appearance.
func byPayment(ts []Transfer) [][]Transfer {
	idx := map[string]int{}
	var out [][]Transfer
	for _, t := range ts {
		i, ok := idx[t.PaymentID]
		if !ok {
			i = len(out)
			idx[t.PaymentID] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], t)
	}
	return out
}

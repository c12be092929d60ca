package sweep

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/core/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
)

// repricer records a replacement for latest, the waiting latest version of a transaction
// (through j.record), or records nothing when no replacement is possible or useful now (the
// sweep goes on waiting). An error ends this delivery: a *failure the sweep, anything else is
// transient, and the next delivery re-broadcasts the latest version and re-prices at once.
type repricer func(ctx context.Context, latest Tx) error

// land gets one transaction mined, in whichever of its recorded versions vs (one nonce of one
// sender, in Seq order) the chain takes. It broadcasts the latest version — the same raw bytes
// however often it is called — and waits for a receipt of any version; when the latest has
// waited RepriceAfter since its broadcast, reprice records a replacement, which is broadcast in
// turn. before, if set, runs before every broadcast (a token transfer's gas top-ups). A
// reverted transaction is a failure; no receipt within ReceiptTimeout is an error (transient:
// the next delivery re-broadcasts the latest version and waits again).
//
// Each transaction is a span ("sweeper.transaction <kind>"), with an event per version
// broadcast, per replacement signed and for the version mined; its status is Error when the
// delivery ends without a receipt or the transaction reverted.
func (j *job) land(ctx context.Context, vs []Tx, reprice repricer, before func(context.Context) error) (m mined, err error) {
	first := vs[0]
	ctx, span := j.s.Tracer.Start(ctx, "sweeper.transaction "+first.Kind, trace.WithAttributes(
		attribute.String("payment.id", j.p.ID), attribute.String("sweep.kind", first.Kind), attribute.Int("sweep.round", j.round),
		attribute.Int("sweep.seq", first.Seq), attribute.String("sweep.from", first.From.Hex()), attribute.Int64("sweep.nonce", int64(first.Nonce))))
	defer func() {
		if m.receipt != nil {
			span.SetAttributes(attribute.String("sweep.tx_hash", m.tx.Hash.Hex()), attribute.Int64("sweep.block_number", m.receipt.BlockNumber.Int64()),
				attribute.Int64("sweep.gas_used", int64(m.receipt.GasUsed)), attribute.Int("sweep.versions", len(m.others)+1))
		}
		natsbus.EndSpan(span, err)
	}()
	awaiting := false // a version is mined but not yet final: no broadcast, await its depth
	for _, v := range vs {
		switch v.Status {
		case StatusFailed:
			return mined{tx: v, others: without(vs, v)}, revertFailure(v)
		case StatusMined:
			r, err := j.net.Client.TransactionReceipt(ctx, v.Hash)
			if err == nil {
				deep, err := j.final(ctx, r)
				if err != nil {
					return mined{}, err
				}
				if deep {
					return j.settled(ctx, v, vs, r)
				}
				awaiting = true
				continue
			}
			if !errors.Is(err, ethereum.NotFound) {
				return mined{}, fmt.Errorf("receipt %s: %w", v.Hash.Hex(), err)
			}
			j.log.WarnContext(ctx, "mined sweep transaction lost its receipt (reorg?), re-broadcasting", "tx_hash", v.Hash.Hex())
		}
	}
	latest := vs[len(vs)-1]
	if !awaiting {
		if m, done, err := j.broadcast(ctx, &latest, vs, before); done || err != nil {
			return m, err
		}
	}
	repriceAt := latest.BroadcastAt.Add(j.s.RepriceAfter)
	deadline := time.Now().Add(j.s.ReceiptTimeout)
	t := time.NewTicker(j.s.PollInterval)
	defer t.Stop()
	// reorged: a version had a receipt and has none now, its block reorged out; lastSent is
	// when it was last broadcast again since.
	var receipted, reorged bool
	var lastSent time.Time
	for {
		v, r, lastErr := j.anyReceipt(ctx, vs)
		switch {
		case r != nil:
			receipted, reorged = true, false
			deep, err := j.final(ctx, r)
			if err != nil {
				return mined{}, err
			}
			if deep {
				return j.settled(ctx, v, vs, r)
			}
			// Mined: no re-pricing and no receipt deadline while it gets deep.
			select {
			case <-ctx.Done():
				return mined{}, ctx.Err()
			case <-t.C:
			}
			continue
		case receipted && !reorged:
			reorged = true
			j.log.WarnContext(ctx, "sweep transaction's block was reorged out, re-broadcasting", "kind", latest.Kind, "tx_hash", latest.Hash.Hex())
			span.AddEvent("reorged", trace.WithAttributes(attribute.String("sweep.tx_hash", latest.Hash.Hex())))
			fallthrough
		case reorged && time.Since(lastSent) >= reorgResend:
			// The block that held it left the chain, and the node's pool need not take the
			// transaction back (a token transfer whose gas top-up was orphaned with it is
			// invalid when the pool re-checks it) or may drop it again: the same bytes are
			// broadcast again, every reorgResend until a version has a receipt.
			lastSent = time.Now()
			m, done, err := j.broadcast(ctx, &latest, vs, before)
			if err != nil && isNonceTooLow(err) {
				// A version is in the new branch already, and the node's receipt index has not
				// caught up with the reorg yet: the next polls find its receipt (or the
				// receipt deadline ends the delivery).
				break
			}
			if done || err != nil {
				return m, err
			}
		}
		now := time.Now()
		if now.After(deadline) {
			return mined{}, fmt.Errorf("%s transaction %s: no receipt after %v: %w", latest.Kind, latest.Hash.Hex(), j.s.ReceiptTimeout, lastErr)
		}
		if !now.Before(repriceAt) {
			repriceAt = now.Add(j.s.RepriceAfter)
			// Another handler may have re-priced meanwhile: then its version is the latest.
			recorded, err := j.reload(ctx)
			if err != nil {
				return mined{}, err
			}
			if cur := versions(recorded, latest); cur[len(cur)-1].Seq == latest.Seq {
				if err := reprice(ctx, latest); err != nil {
					return mined{}, err
				}
			}
			if cur := versions(j.recorded, latest); cur[len(cur)-1].Seq != latest.Seq {
				vs, latest = cur, cur[len(cur)-1]
				span.AddEvent("replaced", trace.WithAttributes(attribute.String("sweep.tx_hash", latest.Hash.Hex()),
					attribute.Int("sweep.seq", latest.Seq)))
				if m, done, err := j.broadcast(ctx, &latest, vs, before); done || err != nil {
					return m, err
				}
				repriceAt = latest.BroadcastAt.Add(j.s.RepriceAfter)
			}
		}
		select {
		case <-ctx.Done():
			return mined{}, ctx.Err()
		case <-t.C:
		}
	}
}

// broadcast sends latest, a version of the transaction vs, after running before (if set).
// done reports that instead a version was found mined: m is it.
func (j *job) broadcast(ctx context.Context, latest *Tx, vs []Tx, before func(context.Context) error) (m mined, done bool, err error) {
	if before != nil {
		if err := before(ctx); err != nil {
			return mined{}, false, err
		}
	}
	var signed types.Transaction
	if err := signed.UnmarshalBinary(latest.Raw); err != nil {
		return mined{}, false, fmt.Errorf("recorded transaction %s: %w", latest.Hash.Hex(), err)
	}
	if signed.Hash() != latest.Hash {
		return mined{}, false, fmt.Errorf("recorded transaction %s decodes to %s", latest.Hash.Hex(), signed.Hash().Hex())
	}
	err = j.send(ctx, &signed)
	switch {
	case err == nil, isAlreadyKnown(err):
	case isReplacementUnderpriced(err):
		// The node holds an earlier version and wants a larger raise than ours (a stricter
		// client than geth): that version may still be mined, and the next re-pricing raises
		// from this one.
		j.log.WarnContext(ctx, "node keeps an earlier version of the sweep transaction", "kind", latest.Kind,
			"tx_hash", latest.Hash.Hex(), "nonce", latest.Nonce, "err", err)
	case isNonceTooLow(err):
		// Either a version of this transaction was mined (a crash after broadcast, or an
		// earlier version won over its replacement) or another one used the nonce; only a
		// receipt for one of our hashes tells which.
		_, r, rerr := j.anyReceipt(ctx, vs)
		if r != nil {
			return mined{}, false, nil // land awaits its depth
		}
		return mined{}, false, fmt.Errorf("%s transaction %s: nonce %d of %s is used and no version of it has a receipt (%v): %w",
			latest.Kind, latest.Hash.Hex(), latest.Nonce, latest.From.Hex(), rerr, err)
	default:
		return mined{}, false, fmt.Errorf("broadcast %s transaction %s: %w", latest.Kind, latest.Hash.Hex(), err)
	}
	if latest.Status == StatusSigned {
		if err := j.s.Ledger.SetStatus(ctx, latest.ID, StatusBroadcast, ""); err != nil {
			return mined{}, false, err
		}
		latest.Status = StatusBroadcast
	}
	if latest.BroadcastAt.IsZero() {
		latest.BroadcastAt = time.Now()
	}
	j.log.InfoContext(ctx, "sweep transaction broadcast", "kind", latest.Kind, "seq", latest.Seq, "tx_hash", latest.Hash.Hex(), "nonce", latest.Nonce)
	trace.SpanFromContext(ctx).AddEvent("broadcast", trace.WithAttributes(attribute.String("sweep.tx_hash", latest.Hash.Hex()),
		attribute.Int("sweep.seq", latest.Seq)))
	return mined{}, false, nil
}

// anyReceipt returns the first version of vs (latest first) that has a receipt, or a nil
// receipt and the last error seen (ethereum.NotFound when the node simply has none).
func (j *job) anyReceipt(ctx context.Context, vs []Tx) (Tx, *types.Receipt, error) {
	var lastErr error = ethereum.NotFound
	for i := len(vs) - 1; i >= 0; i-- {
		r, err := j.net.Client.TransactionReceipt(ctx, vs[i].Hash)
		if err == nil {
			return vs[i], r, nil
		}
		lastErr = err
	}
	return Tx{}, nil, lastErr
}

// send submits tx, retrying "insufficient funds" for a while: right after the gas top-up is
// mined, its receipt is served before the node's transaction pool has caught up with the new
// balance (geth resets the pool asynchronously), and the token transfer is refused.
func (j *job) send(ctx context.Context, tx *types.Transaction) error {
	deadline := time.Now().Add(min(j.s.ReceiptTimeout, 30*time.Second))
	for {
		err := j.net.Client.SendTransaction(ctx, tx)
		if err == nil || !isInsufficientFunds(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(j.s.PollInterval):
		}
	}
}

// reorgResend is how often a sweep transaction reorged out of the chain is broadcast again
// until it has a receipt again.
const reorgResend = time.Second

// final reports whether the receipt r is as deep as the chain's confirmations ask (1: mined)
// and its block still canonical. Until then a sweep is not recorded as mined, and its payment
// not as swept: a reorg shallower than the confirmation depth may still take the transaction
// out again, and the node's pool need not put it back.
func (j *job) final(ctx context.Context, r *types.Receipt) (bool, error) {
	need := max(j.net.Chain.Confirmations, 1)
	head, err := j.net.Client.HeaderByNumber(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("head: %w", err)
	}
	block := r.BlockNumber.Uint64()
	if head.Number.Uint64() < block+need-1 {
		return false, nil
	}
	h, err := j.net.Client.HeaderByNumber(ctx, r.BlockNumber)
	if err != nil {
		return false, fmt.Errorf("block %d: %w", block, err)
	}
	return h.Hash() == r.BlockHash, nil
}

// settled records the receipt's outcome for tx, a version of the transaction vs: the ledger
// marks the other versions replaced or dropped.
func (j *job) settled(ctx context.Context, tx Tx, vs []Tx, r *types.Receipt) (mined, error) {
	others := without(vs, tx)
	if r.Status != types.ReceiptStatusSuccessful {
		tx.Status, tx.Error = StatusFailed, fmt.Sprintf("reverted in block %d", r.BlockNumber)
		if err := j.s.Ledger.SetStatus(ctx, tx.ID, tx.Status, tx.Error); err != nil {
			return mined{}, err
		}
		j.s.metrics.spent(ctx, j, tx, r)
		return mined{tx: tx, receipt: r, others: others}, revertFailure(tx)
	}
	if tx.Status != StatusMined {
		if err := j.s.Ledger.SetStatus(ctx, tx.ID, StatusMined, ""); err != nil {
			return mined{}, err
		}
		j.s.metrics.spent(ctx, j, tx, r)
		tx.Status = StatusMined
	}
	j.log.InfoContext(ctx, "sweep transaction mined", "kind", tx.Kind, "seq", tx.Seq, "tx_hash", tx.Hash.Hex(),
		"block", r.BlockNumber.Uint64(), "gas_used", r.GasUsed, "versions", len(vs))
	trace.SpanFromContext(ctx).AddEvent("mined", trace.WithAttributes(attribute.String("sweep.tx_hash", tx.Hash.Hex()),
		attribute.Int64("sweep.block_number", r.BlockNumber.Int64())))
	return mined{tx: tx, receipt: r, others: others}, nil
}

func without(vs []Tx, tx Tx) []Tx {
	var out []Tx
	for _, v := range vs {
		if v.ID != tx.ID {
			out = append(out, v)
		}
	}
	return out
}

func revertFailure(tx Tx) error {
	return fail(tx.Kind+"_reverted", "%s transaction %s reverted (%s)", tx.Kind, tx.Hash.Hex(), tx.Error)
}

// Node errors arrive as JSON-RPC messages; these are geth's texts (txpool.ErrAlreadyKnown,
// core.ErrNonceTooLow, txpool.ErrReplaceUnderpriced), which other clients share.
func isAlreadyKnown(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "already known") || strings.Contains(m, "known transaction")
}

func isNonceTooLow(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "nonce too low")
}

func isReplacementUnderpriced(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "replacement transaction underpriced")
}

func isInsufficientFunds(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "insufficient funds")
}

func isRevert(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "execution reverted")
}

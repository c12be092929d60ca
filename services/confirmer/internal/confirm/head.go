package confirm

import (
	"context"
	"errors"
	"fmt"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
)

// HandleHead counts confirmations: every detected transfer of the chain with enough blocks on
// top is re-verified against the chain at this moment and confirmed, or marked reorged if its
// block left the canonical chain; then each touched payment's status follows its totals.
func (c *Confirmer) HandleHead(ctx context.Context, h event.ChainHead) error {
	chain, err := c.chain(h.ChainID)
	if err != nil {
		return err
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

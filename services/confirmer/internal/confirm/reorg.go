package confirm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
)

// HandleReorg brings the chain's transfers above the common ancestor in line with the
// canonical chain: those whose block left it are marked reorged, their payments step back and
// payments.reorged is published once per payment and reorg (Nats-Msg-Id
// <payment_id>.reorged.<common_ancestor_hash>), naming also the transfers a head already found
// orphaned; reorged ones whose block is canonical again (the chain flipped back) count again.
func (c *Confirmer) HandleReorg(ctx context.Context, r event.ChainReorg) error {
	chain, err := c.chain(r.ChainID)
	if err != nil {
		return err
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

package confirm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
)

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
	// Postgres' text refuses NUL: such an id would fail every redelivery as a database error.
	if strings.ContainsRune(p.PaymentID, 0) {
		return fault.Invalid(ReasonInvalidEvent, errors.New("payment_id holds a NUL character"))
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
	chain, err := c.chain(seen.ChainID)
	if err != nil {
		return err
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
	if strings.ContainsRune(tx.TxHash, 0) || strings.ContainsRune(tx.BlockHash, 0) ||
		(p.TokenContract != nil && strings.ContainsRune(*p.TokenContract, 0)) {
		return Transfer{}, fmt.Errorf("transaction %q: a hash or contract holds a NUL character", tx.TxHash)
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

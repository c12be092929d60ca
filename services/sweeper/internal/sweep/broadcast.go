package sweep

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// push broadcasts a recorded transaction — the same raw bytes however often it is called —
// and waits for its receipt. A reverted transaction is a failure; no receipt within
// ReceiptTimeout is an error (transient: the next delivery re-broadcasts and waits again).
func (j *job) push(ctx context.Context, tx Tx) (mined, error) {
	c := j.net.Client
	switch tx.Status {
	case StatusFailed:
		return mined{tx: tx}, revertFailure(tx)
	case StatusMined:
		r, err := c.TransactionReceipt(ctx, tx.Hash)
		if err == nil {
			return j.settled(ctx, tx, r)
		}
		if !errors.Is(err, ethereum.NotFound) {
			return mined{}, fmt.Errorf("receipt %s: %w", tx.Hash.Hex(), err)
		}
		j.log.WarnContext(ctx, "mined sweep transaction lost its receipt (reorg?), re-broadcasting", "tx_hash", tx.Hash.Hex())
	}

	var signed types.Transaction
	if err := signed.UnmarshalBinary(tx.Raw); err != nil {
		return mined{}, fmt.Errorf("recorded transaction %s: %w", tx.Hash.Hex(), err)
	}
	if signed.Hash() != tx.Hash {
		return mined{}, fmt.Errorf("recorded transaction %s decodes to %s", tx.Hash.Hex(), signed.Hash().Hex())
	}
	err := j.send(ctx, &signed)
	switch {
	case err == nil, isAlreadyKnown(err):
	case isNonceTooLow(err):
		// Either this very transaction was mined (a crash after broadcast) or another one used
		// the nonce; only a receipt for our hash tells which.
		r, rerr := c.TransactionReceipt(ctx, tx.Hash)
		if rerr == nil {
			return j.settled(ctx, tx, r)
		}
		return mined{}, fmt.Errorf("%s transaction %s: nonce %d of %s is used and this transaction has no receipt (%v): %w",
			tx.Kind, tx.Hash.Hex(), tx.Nonce, tx.From.Hex(), rerr, err)
	default:
		return mined{}, fmt.Errorf("broadcast %s transaction %s: %w", tx.Kind, tx.Hash.Hex(), err)
	}
	if tx.Status == StatusSigned {
		if err := j.s.Ledger.SetStatus(ctx, tx.ID, StatusBroadcast, ""); err != nil {
			return mined{}, err
		}
	}
	j.log.InfoContext(ctx, "sweep transaction broadcast", "kind", tx.Kind, "tx_hash", tx.Hash.Hex(), "nonce", tx.Nonce)
	r, err := j.waitReceipt(ctx, tx.Hash)
	if err != nil {
		return mined{}, fmt.Errorf("%s transaction %s: %w", tx.Kind, tx.Hash.Hex(), err)
	}
	return j.settled(ctx, tx, r)
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

// settled records the receipt's outcome.
func (j *job) settled(ctx context.Context, tx Tx, r *types.Receipt) (mined, error) {
	if r.Status != types.ReceiptStatusSuccessful {
		tx.Status, tx.Error = StatusFailed, fmt.Sprintf("reverted in block %d", r.BlockNumber)
		if err := j.s.Ledger.SetStatus(ctx, tx.ID, tx.Status, tx.Error); err != nil {
			return mined{}, err
		}
		return mined{tx: tx, receipt: r}, revertFailure(tx)
	}
	if tx.Status != StatusMined {
		if err := j.s.Ledger.SetStatus(ctx, tx.ID, StatusMined, ""); err != nil {
			return mined{}, err
		}
		tx.Status = StatusMined
	}
	j.log.InfoContext(ctx, "sweep transaction mined", "kind", tx.Kind, "tx_hash", tx.Hash.Hex(),
		"block", r.BlockNumber.Uint64(), "gas_used", r.GasUsed)
	return mined{tx: tx, receipt: r}, nil
}

func revertFailure(tx Tx) error {
	return fail(tx.Kind+"_reverted", "%s transaction %s reverted (%s)", tx.Kind, tx.Hash.Hex(), tx.Error)
}

// waitReceipt polls for the receipt until ReceiptTimeout. RPC errors while polling are retried
// until then.
func (j *job) waitReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	timeout := j.s.ReceiptTimeout
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(j.s.PollInterval)
	defer t.Stop()
	var lastErr error = ethereum.NotFound
	for {
		r, err := j.net.Client.TransactionReceipt(ctx, hash)
		if err == nil {
			return r, nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no receipt after %v: %w", timeout, lastErr)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// Node errors arrive as JSON-RPC messages; these are geth's texts (txpool.ErrAlreadyKnown,
// core.ErrNonceTooLow), which other clients share.
func isAlreadyKnown(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "already known") || strings.Contains(m, "known transaction")
}

func isNonceTooLow(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "nonce too low")
}

func isInsufficientFunds(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "insufficient funds")
}

func isRevert(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "execution reverted")
}

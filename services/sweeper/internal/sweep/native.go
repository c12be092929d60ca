package sweep

import (
	"context"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/core/types"
)

// sweepNative sends the deposit address's whole balance minus the exact fee to the treasury.
func (j *job) sweepNative(ctx context.Context) ([]mined, error) {
	txs, err := j.recordedOrSigned(ctx, TxNative, j.signNative)
	if err != nil {
		return nil, err
	}
	m, err := j.land(ctx, txs, j.repriceNative, nil)
	if err != nil {
		return nil, err
	}
	return []mined{m}, nil
}

// recordedOrSigned is the recorded versions of the sweep's transaction of kind, or, when it has
// none yet (the first delivery), what sign records.
func (j *job) recordedOrSigned(ctx context.Context, kind string, sign func(context.Context) ([]Tx, error)) ([]Tx, error) {
	if txs := ofKind(j.recorded, kind); len(txs) > 0 {
		return txs, nil
	}
	recorded, err := sign(ctx)
	if err != nil {
		return nil, err
	}
	txs := ofKind(recorded, kind)
	if len(txs) == 0 {
		return nil, fmt.Errorf("%s sweep was not recorded", kind)
	}
	return txs, nil
}

// signNative builds value = balance − gas × feeCap, so that the deposit address can pay the
// fee however the base fee moves up to feeCap; what is not spent of it (gas × (feeCap −
// effective price)) stays behind as the only remainder.
func (j *job) signNative(ctx context.Context) ([]Tx, error) {
	c := j.net.Client
	balance, err := c.BalanceAt(ctx, j.deposit, nil)
	if err != nil {
		return nil, fmt.Errorf("balance of %s: %w", j.deposit.Hex(), err)
	}
	if balance.Sign() == 0 {
		return nil, fail("empty", "deposit address %s holds no %s", j.deposit.Hex(), j.net.Chain.Native.Symbol)
	}
	tip, feeCap, err := j.fees(ctx)
	if err != nil {
		return nil, err
	}
	gas := uint64(nativeTransferGas)
	code, err := c.CodeAt(ctx, j.treasury, nil)
	if err != nil {
		return nil, fmt.Errorf("code at treasury: %w", err)
	}
	if len(code) > 0 {
		// A contract treasury (a multisig) runs code on receipt: 21000 is not enough.
		if gas, err = c.EstimateGas(ctx, ethereum.CallMsg{From: j.deposit, To: &j.treasury, Value: balance}); err != nil {
			if isRevert(err) {
				return nil, fail("treasury_rejects", "the treasury contract %s refuses the transfer: %v", j.treasury.Hex(), err)
			}
			return nil, fmt.Errorf("estimate gas: %w", err)
		}
	}
	value, err := nativeValue(balance, gas, feeCap)
	if err != nil {
		return nil, err
	}
	nonce, err := c.PendingNonceAt(ctx, j.deposit)
	if err != nil {
		return nil, fmt.Errorf("pending nonce: %w", err)
	}
	return j.record(ctx, []Draft{{
		Kind: TxNative, From: j.deposit, To: j.treasury, Value: value, PendingNonce: nonce,
		Sign: func(n uint64) (*types.Transaction, error) {
			return types.SignNewTx(j.key, j.signer, dynamicFeeTx(j.p.ChainID, n, gas, tip, feeCap, j.treasury, value, nil))
		},
	}})
}

// nativeValue is balance − gas × feeCap, or the dust failure when that leaves nothing.
func nativeValue(balance *big.Int, gas uint64, feeCap *big.Int) (*big.Int, error) {
	fee := new(big.Int).Mul(new(big.Int).SetUint64(gas), feeCap)
	value := new(big.Int).Sub(balance, fee)
	if value.Sign() <= 0 {
		return nil, fail("dust", "balance %s wei does not cover the fee of %d gas at %s wei", balance, gas, feeCap)
	}
	return value, nil
}

// repriceNative replaces the waiting native transfer latest: the same nonce, gas and
// recipient, higher fees, and value = balance − gas × the new fee cap.
func (j *job) repriceNative(ctx context.Context, latest Tx) error {
	r, err := j.replacementOf(ctx, latest)
	if r == nil || err != nil {
		return err
	}
	old, tip, feeCap := r.old, r.tip, r.feeCap
	balance, err := j.depositBalance(ctx, r.at)
	if err != nil {
		return err
	}
	value, err := nativeValue(balance, old.Gas(), feeCap)
	if err != nil {
		return err
	}
	to := *old.To()
	_, err = j.record(ctx, []Draft{{
		Kind: TxNative, Seq: nextSeq(j.recorded, TxNative), From: j.deposit, To: to, Value: value, Replaces: &latest,
		Sign: func(n uint64) (*types.Transaction, error) {
			return types.SignNewTx(j.key, j.signer, dynamicFeeTx(j.p.ChainID, n, old.Gas(), tip, feeCap, to, value, nil))
		},
	}})
	return err
}

package sweep

import (
	"context"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// sweepToken tops the deposit address up with exactly the gas its token transfer needs, then
// transfers the full token balance to the treasury. Both transactions are signed and recorded
// together, before either is sent: the top-up is sized from the token transfer's gas and fee
// cap, so after a crash both are re-sent as they were. A re-priced token transfer that needs
// more gas is recorded with a further top-up of the difference, landed before it is sent.
func (j *job) sweepToken(ctx context.Context) ([]mined, error) {
	tokens, err := j.recordedOrSigned(ctx, TxToken, j.signToken)
	if err != nil {
		return nil, err
	}
	if err := j.landTopups(ctx); err != nil {
		return j.topups, err
	}
	m, err := j.land(ctx, tokens, j.repriceToken, j.landTopups)
	if err != nil {
		return j.topups, err
	}
	return append(j.topups, m), nil
}

// landTopups lands every recorded gas top-up not landed yet, in the order they were recorded,
// so that the token transfer is only sent once the deposit address holds its gas.
func (j *job) landTopups(ctx context.Context) error {
	for _, vs := range byNonce(ofKind(j.recorded, TxGasTopup)) {
		if j.topupLanded(vs[0]) {
			continue
		}
		m, err := j.land(ctx, vs, j.repriceTopup, nil)
		if err != nil {
			return err
		}
		j.topups = append(j.topups, m)
	}
	return nil
}

func (j *job) topupLanded(tx Tx) bool {
	for _, m := range j.topups {
		if m.tx.From == tx.From && m.tx.Nonce == tx.Nonce {
			return true
		}
	}
	return false
}

func (j *job) signToken(ctx context.Context) ([]Tx, error) {
	c := j.net.Client
	contract := common.HexToAddress(*j.p.TokenContract)
	amount, err := tokenBalance(ctx, c, contract, j.deposit)
	if err != nil {
		return nil, err
	}
	if amount.Sign() == 0 {
		return nil, fail("empty", "deposit address %s holds no %s", j.deposit.Hex(), j.p.Token)
	}
	data := transferCalldata(j.treasury, amount)
	// Estimated, never assumed: a transfer to a treasury that has never held the token writes
	// a fresh storage slot and costs far more than the textbook 65k.
	gas, err := c.EstimateGas(ctx, ethereum.CallMsg{From: j.deposit, To: &contract, Data: data})
	if err != nil {
		if isRevert(err) {
			return nil, fail("token_transfer_reverted", "transfer of %s %s to %s would revert: %v", amount, j.p.Token, j.treasury.Hex(), err)
		}
		return nil, fmt.Errorf("estimate token transfer gas: %w", err)
	}
	tip, feeCap, err := j.fees(ctx)
	if err != nil {
		return nil, err
	}
	ethBalance, err := c.BalanceAt(ctx, j.deposit, nil)
	if err != nil {
		return nil, fmt.Errorf("balance of %s: %w", j.deposit.Hex(), err)
	}
	depositNonce, err := c.PendingNonceAt(ctx, j.deposit)
	if err != nil {
		return nil, fmt.Errorf("pending nonce: %w", err)
	}
	need := new(big.Int).Mul(new(big.Int).SetUint64(gas), feeCap)
	need.Sub(need, ethBalance)

	var drafts []Draft
	if need.Sign() > 0 {
		d, err := j.topupDraft(ctx, need, tip, feeCap, 0)
		if err != nil {
			return nil, err
		}
		drafts = append(drafts, d)
	}
	drafts = append(drafts, Draft{
		Kind: TxToken, From: j.deposit, To: j.treasury, Value: amount, PendingNonce: depositNonce,
		Sign: func(n uint64) (*types.Transaction, error) {
			return types.SignNewTx(j.key, j.signer, dynamicFeeTx(j.p.ChainID, n, gas, tip, feeCap, contract, new(big.Int), data))
		},
	})
	j.log.InfoContext(ctx, "token sweep planned", "token", j.p.Token, "amount", amount.String(), "gas", gas,
		"fee_cap", feeCap.String(), "eth_balance", ethBalance.String(), "top_up", need.String())
	return j.record(ctx, drafts)
}

// topupDraft is a new gas top-up of need wei from the gas tank to the deposit address, the
// seq-th top-up of the payment.
func (j *job) topupDraft(ctx context.Context, need, tip, feeCap *big.Int, seq int) (Draft, error) {
	c := j.net.Client
	if j.s.GasTank == nil {
		return Draft{}, fail("no_gas_tank", "deposit address %s needs %s wei of gas and no GAS_TANK_PRIVATE_KEY is configured", j.deposit.Hex(), need)
	}
	tank := crypto.PubkeyToAddress(j.s.GasTank.PublicKey)
	// Checked before signing, so no unsendable top-up holds a gas-tank nonce. Transient: the
	// sweep resumes once an operator refills the tank.
	if err := j.tankCovers(ctx, tank, need, feeCap); err != nil {
		return Draft{}, err
	}
	tankNonce, err := c.PendingNonceAt(ctx, tank)
	if err != nil {
		return Draft{}, fmt.Errorf("gas tank pending nonce: %w", err)
	}
	deposit := j.deposit
	return Draft{
		Kind: TxGasTopup, Seq: seq, From: tank, To: deposit, Value: need, PendingNonce: tankNonce,
		Sign: func(n uint64) (*types.Transaction, error) {
			return types.SignNewTx(j.s.GasTank, j.signer, dynamicFeeTx(j.p.ChainID, n, nativeTransferGas, tip, feeCap, deposit, need, nil))
		},
	}, nil
}

// tankCovers checks that the gas tank can pay value plus a transfer's gas at feeCap.
func (j *job) tankCovers(ctx context.Context, tank common.Address, value, feeCap *big.Int) error {
	balance, err := j.net.Client.BalanceAt(ctx, tank, nil)
	if err != nil {
		return fmt.Errorf("balance of gas tank: %w", err)
	}
	cost := new(big.Int).Add(value, new(big.Int).Mul(big.NewInt(nativeTransferGas), feeCap))
	if balance.Cmp(cost) < 0 {
		j.log.ErrorContext(ctx, "gas tank cannot fund the top-up", "gas_tank", tank.Hex(), "balance", balance.String(), "needs", cost.String())
		return fmt.Errorf("gas tank %s holds %s wei, the top-up needs %s", tank.Hex(), balance, cost)
	}
	return nil
}

// repriceToken replaces the waiting token transfer latest: the same nonce, gas and call,
// higher fees. When the deposit address's ether does not cover gas × the new fee cap, a
// further top-up of the difference is recorded with it (a new gas-tank nonce; landTopups
// lands it before the replacement is sent).
func (j *job) repriceToken(ctx context.Context, latest Tx) error {
	r, err := j.replacementOf(ctx, latest)
	if r == nil || err != nil {
		return err
	}
	old, tip, feeCap := r.old, r.tip, r.feeCap
	ethBalance, err := j.depositBalance(ctx, r.at)
	if err != nil {
		return err
	}
	need := new(big.Int).Mul(new(big.Int).SetUint64(old.Gas()), feeCap)
	need.Sub(need, ethBalance)
	var drafts []Draft
	if need.Sign() > 0 {
		ttip, tcap, err := j.fees(ctx)
		if err != nil {
			return err
		}
		d, err := j.topupDraft(ctx, need, ttip, tcap, nextSeq(j.recorded, TxGasTopup))
		if err != nil {
			// Not a failure of the sweep (%v drops the kind): the transfer may still be mined
			// as it is, and the next delivery tries again.
			return fmt.Errorf("the re-priced token transfer needs a top-up of %s wei: %v", need, err)
		}
		drafts = append(drafts, d)
	}
	contract, data, gas := *old.To(), old.Data(), old.Gas()
	drafts = append(drafts, Draft{
		Kind: TxToken, Seq: nextSeq(j.recorded, TxToken), From: latest.From, To: latest.To, Value: latest.Value, Replaces: &latest,
		Sign: func(n uint64) (*types.Transaction, error) {
			return types.SignNewTx(j.key, j.signer, dynamicFeeTx(j.p.ChainID, n, gas, tip, feeCap, contract, new(big.Int), data))
		},
	})
	j.log.InfoContext(ctx, "token transfer re-priced", "fee_cap", feeCap.String(), "eth_balance", ethBalance.String(), "top_up", need.String())
	_, err = j.record(ctx, drafts)
	return err
}

// repriceTopup replaces the waiting gas top-up latest: the same nonce, recipient and value,
// higher fees.
func (j *job) repriceTopup(ctx context.Context, latest Tx) error {
	if j.s.GasTank == nil || crypto.PubkeyToAddress(j.s.GasTank.PublicKey) != latest.From {
		return fmt.Errorf("gas top-up %s was sent from %s, whose key is not GAS_TANK_PRIVATE_KEY: not re-pricing", latest.Hash.Hex(), latest.From.Hex())
	}
	r, err := j.replacementOf(ctx, latest)
	if r == nil || err != nil {
		return err
	}
	old, tip, feeCap := r.old, r.tip, r.feeCap
	if err := j.tankCovers(ctx, latest.From, old.Value(), feeCap); err != nil {
		return err
	}
	to, value, gas := *old.To(), old.Value(), old.Gas()
	_, err = j.record(ctx, []Draft{{
		Kind: TxGasTopup, Seq: nextSeq(j.recorded, TxGasTopup), From: latest.From, To: latest.To, Value: latest.Value, Replaces: &latest,
		Sign: func(n uint64) (*types.Transaction, error) {
			return types.SignNewTx(j.s.GasTank, j.signer, dynamicFeeTx(j.p.ChainID, n, gas, tip, feeCap, to, value, nil))
		},
	}})
	return err
}

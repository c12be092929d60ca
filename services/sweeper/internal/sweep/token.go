package sweep

import (
	"context"
	"errors"
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
// cap, so after a crash both are re-sent as they were.
func (j *job) sweepToken(ctx context.Context) ([]mined, error) {
	token, topup := find(j.recorded, TxToken), find(j.recorded, TxGasTopup)
	if token == nil {
		txs, err := j.signToken(ctx)
		if err != nil {
			return nil, err
		}
		token, topup = find(txs, TxToken), find(txs, TxGasTopup)
		if token == nil {
			return nil, errors.New("token sweep was not recorded")
		}
	}
	var out []mined
	if topup != nil {
		m, err := j.push(ctx, *topup)
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	m, err := j.push(ctx, *token)
	if err != nil {
		return out, err
	}
	return append(out, m), nil
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
		if j.s.GasTank == nil {
			return nil, fail("no_gas_tank", "deposit address %s needs %s wei of gas and no GAS_TANK_PRIVATE_KEY is configured", j.deposit.Hex(), need)
		}
		tank := crypto.PubkeyToAddress(j.s.GasTank.PublicKey)
		tankBalance, err := c.BalanceAt(ctx, tank, nil)
		if err != nil {
			return nil, fmt.Errorf("balance of gas tank: %w", err)
		}
		// Checked before signing, so no unsendable top-up holds a gas-tank nonce. Transient:
		// the sweep resumes once an operator refills the tank.
		cost := new(big.Int).Add(need, new(big.Int).Mul(big.NewInt(nativeTransferGas), feeCap))
		if tankBalance.Cmp(cost) < 0 {
			j.log.ErrorContext(ctx, "gas tank cannot fund the top-up", "gas_tank", tank.Hex(), "balance", tankBalance.String(), "needs", cost.String())
			return nil, fmt.Errorf("gas tank %s holds %s wei, the top-up needs %s", tank.Hex(), tankBalance, cost)
		}
		tankNonce, err := c.PendingNonceAt(ctx, tank)
		if err != nil {
			return nil, fmt.Errorf("gas tank pending nonce: %w", err)
		}
		drafts = append(drafts, Draft{
			Kind: TxGasTopup, From: tank, To: j.deposit, Value: need, PendingNonce: tankNonce,
			Sign: func(n uint64) (*types.Transaction, error) {
				return types.SignNewTx(j.s.GasTank, j.signer, dynamicFeeTx(j.p.ChainID, n, nativeTransferGas, tip, feeCap, j.deposit, need, nil))
			},
		})
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

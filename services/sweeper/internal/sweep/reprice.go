package sweep

import (
	"context"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/core/types"
)

// replacementBumpPercent is the node's replacement minimum: geth's transaction pool (and most
// other clients') accepts a transaction with the nonce of a pending one only when its tip and
// its fee cap are both at least 10 % higher.
const replacementBumpPercent = 10

// ReasonMaxFeeReached is the code of the payments.sweep_failed that reports a waiting
// transaction which cannot be re-priced within the chain's max_fee_gwei.
const ReasonMaxFeeReached = "max_fee_reached"

// bump is the least fee a replacement may offer where the pending version offers x: x raised
// by replacementBumpPercent and rounded up, and at least x + 1 (geth wants both fees strictly
// higher, which matters for fees of a few wei).
func bump(x *big.Int) *big.Int {
	n := new(big.Int).Mul(x, big.NewInt(100+replacementBumpPercent))
	n.Add(n, big.NewInt(99)).Div(n, big.NewInt(100))
	return bigMax(n, new(big.Int).Add(x, big.NewInt(1)))
}

// marketFeeCap is what a new transaction offers: twice the base fee plus the tip.
func marketFeeCap(baseFee, tip *big.Int) *big.Int {
	return new(big.Int).Add(new(big.Int).Mul(baseFee, big.NewInt(2)), tip)
}

// replacement computes the fees of a replacement for a pending transaction with oldTip and
// oldCap, given the market (the node's suggested tip and the head's base fee): each fee raised
// by at least the node's replacement minimum, and at least what a new transaction would offer
// now. maxFee (nil: no bound) bounds the fee cap; ok is false when even the minimum raise
// would exceed it.
func replacement(oldTip, oldCap, tip, baseFee, maxFee *big.Int) (newTip, newCap *big.Int, ok bool) {
	newTip = bigMax(bump(oldTip), tip)
	minCap := bump(oldCap)
	newCap = bigMax(minCap, marketFeeCap(baseFee, newTip))
	if maxFee != nil && newCap.Cmp(maxFee) > 0 {
		if minCap.Cmp(maxFee) > 0 {
			return nil, nil, false
		}
		newCap = new(big.Int).Set(maxFee)
	}
	// oldTip ≤ oldCap, so bump(oldTip) ≤ newCap: lowering the tip to the cap keeps it a raise.
	if newTip.Cmp(newCap) > 0 {
		newTip = new(big.Int).Set(newCap)
	}
	return newTip, newCap, true
}

func bigMax(a, b *big.Int) *big.Int {
	if a.Cmp(b) >= 0 {
		return a
	}
	return b
}

// stillWaiting decodes latest for re-pricing, or returns nil when a replacement would not
// help: the sender's nonce is used (a version was mined; the receipt poll finds it), or the
// sender has an earlier nonce pending (the gas tank's transaction for another payment, which
// its own sweep re-prices). at is the block the check read, for balances consistent with it.
func (j *job) stillWaiting(ctx context.Context, latest Tx) (old *types.Transaction, at *big.Int, err error) {
	c := j.net.Client
	head, err := c.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("head: %w", err)
	}
	n, err := c.NonceAt(ctx, latest.From, head.Number)
	if err != nil {
		return nil, nil, fmt.Errorf("nonce of %s: %w", latest.From.Hex(), err)
	}
	switch {
	case n > latest.Nonce:
		j.log.InfoContext(ctx, "sweep transaction's nonce is used, not re-pricing", "kind", latest.Kind, "nonce", latest.Nonce)
		return nil, nil, nil
	case n < latest.Nonce:
		j.log.InfoContext(ctx, "sweep transaction waits for an earlier nonce of its sender, not re-pricing", "kind", latest.Kind,
			"from", latest.From.Hex(), "nonce", latest.Nonce, "sender_nonce", n)
		return nil, nil, nil
	}
	old = new(types.Transaction)
	if err := old.UnmarshalBinary(latest.Raw); err != nil {
		return nil, nil, fmt.Errorf("recorded transaction %s: %w", latest.Hash.Hex(), err)
	}
	return old, head.Number, nil
}

// replacementFees returns the fees for a replacement of latest (decoded: old), or nil fees
// when the chain's max_fee_gwei does not allow one: that is logged and reported, and the
// sweep goes on waiting for a receipt of the versions it has.
func (j *job) replacementFees(ctx context.Context, latest Tx, old *types.Transaction) (tip, feeCap *big.Int, err error) {
	marketTip, baseFee, err := j.market(ctx)
	if err != nil {
		return nil, nil, err
	}
	tip, feeCap, ok := replacement(old.GasTipCap(), old.GasFeeCap(), marketTip, baseFee, j.maxFee)
	if !ok {
		detail := fmt.Sprintf("%s transaction %s (nonce %d) waits with fee cap %s wei; a replacement needs at least %s wei, above max_fee_gwei %s of chain %d (base fee now %s wei)",
			latest.Kind, latest.Hash.Hex(), latest.Nonce, old.GasFeeCap(), bump(old.GasFeeCap()), j.net.Chain.MaxFeeGwei, j.p.ChainID, baseFee)
		j.log.ErrorContext(ctx, "sweep cannot be re-priced within max_fee_gwei, waiting", "kind", latest.Kind, "tx_hash", latest.Hash.Hex(),
			"nonce", latest.Nonce, "fee_cap", old.GasFeeCap().String(), "max_fee", j.maxFee.String(), "base_fee", baseFee.String())
		return nil, nil, j.s.reportMaxFee(ctx, j, latest, detail)
	}
	j.log.WarnContext(ctx, "re-pricing a waiting sweep transaction", "kind", latest.Kind, "tx_hash", latest.Hash.Hex(), "nonce", latest.Nonce,
		"tip", old.GasTipCap().String(), "fee_cap", old.GasFeeCap().String(), "new_tip", tip.String(), "new_fee_cap", feeCap.String(),
		"base_fee", baseFee.String())
	return tip, feeCap, nil
}

// pendingReplacement is what the replacement of a waiting transaction starts from: the signed
// original, the block the chain's state is read at, and the raised fees.
type pendingReplacement struct {
	old         *types.Transaction
	at          *big.Int
	tip, feeCap *big.Int
}

// replacementOf is the replacement of latest if it is still waiting and its fees may be raised
// (nil when there is none to make now).
func (j *job) replacementOf(ctx context.Context, latest Tx) (*pendingReplacement, error) {
	old, at, err := j.stillWaiting(ctx, latest)
	if old == nil || err != nil {
		return nil, err
	}
	tip, feeCap, err := j.replacementFees(ctx, latest, old)
	if feeCap == nil || err != nil {
		return nil, err
	}
	return &pendingReplacement{old: old, at: at, tip: tip, feeCap: feeCap}, nil
}

// depositBalance is the deposit address's ether at block at.
func (j *job) depositBalance(ctx context.Context, at *big.Int) (*big.Int, error) {
	balance, err := j.net.Client.BalanceAt(ctx, j.deposit, at)
	if err != nil {
		return nil, fmt.Errorf("balance of %s: %w", j.deposit.Hex(), err)
	}
	return balance, nil
}

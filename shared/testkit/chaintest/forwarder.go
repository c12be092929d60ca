package chaintest

import (
	"context"
	"math/big"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// revertGas is the gas limit of transactions that are meant to revert: estimating their gas
// would fail on the revert itself.
const revertGas = 300_000

// DeployForwarder deploys a Forwarder (testdata/Forwarder.sol) from Funder and mines it. A
// Forwarder pays ETH on through internal calls, as a smart-contract wallet, an exchange's batch
// payout or a payment router does: the receiver is paid by a CALL inside the transaction, not
// by the transaction's own value.
func (c *Chain) DeployForwarder() common.Address {
	c.tb.Helper()
	var addr common.Address
	tx := c.send(c.Funder, "deploy Forwarder", func(ctx context.Context, nonce uint64) (*types.Transaction, error) {
		opts, err := c.transactOpts(ctx, c.Funder, nonce)
		if err != nil {
			return nil, err
		}
		var tx *types.Transaction
		addr, tx, _, err = DeployForwarder(opts, c.client)
		return tx, err
	})
	c.mineSetUp("deploy Forwarder", tx)
	return addr
}

// Forward sends wei from from to forwarder's forward(to), which pays it on to to in an internal
// call. It does not mine.
func (c *Chain) Forward(from *Account, forwarder, to common.Address, wei *big.Int) *types.Transaction {
	c.tb.Helper()
	return c.transactForwarder(from, forwarder, "forward", wei, 0, func(f *Forwarder, opts *bind.TransactOpts) (*types.Transaction, error) {
		return f.Forward(opts, to)
	})
}

// ForwardMany sends the sum of amounts from from to forwarder's forwardMany(to, amounts), which
// pays amounts[i] to to[i], each in an internal call of the one transaction (a batch payout).
// It does not mine.
func (c *Chain) ForwardMany(from *Account, forwarder common.Address, to []common.Address, amounts []*big.Int) *types.Transaction {
	c.tb.Helper()
	sum := new(big.Int)
	for _, a := range amounts {
		sum.Add(sum, a)
	}
	return c.transactForwarder(from, forwarder, "forwardMany", sum, 0, func(f *Forwarder, opts *bind.TransactOpts) (*types.Transaction, error) {
		return f.ForwardMany(opts, to, amounts)
	})
}

// ForwardVia sends wei from from to forwarder's forwardVia(next, to): forwarder calls
// next.forward(to), which pays to, two calls below the transaction. It does not mine.
func (c *Chain) ForwardVia(from *Account, forwarder, next, to common.Address, wei *big.Int) *types.Transaction {
	c.tb.Helper()
	return c.transactForwarder(from, forwarder, "forwardVia", wei, 0, func(f *Forwarder, opts *bind.TransactOpts) (*types.Transaction, error) {
		return f.ForwardVia(opts, next, to)
	})
}

// ForwardThenRevert sends wei from from to forwarder's forwardThenRevert(to): the inner call
// pays to, then the transaction reverts (receipt status 0) and no value moves. It does not
// mine.
func (c *Chain) ForwardThenRevert(from *Account, forwarder, to common.Address, wei *big.Int) *types.Transaction {
	c.tb.Helper()
	return c.transactForwarder(from, forwarder, "forwardThenRevert", wei, revertGas, func(f *Forwarder, opts *bind.TransactOpts) (*types.Transaction, error) {
		return f.ForwardThenRevert(opts, to)
	})
}

// TryForward sends wei from from to forwarder's tryForward(to, amount): the inner call tries to
// pay amount to to, and the transaction succeeds whether or not it did — with amount above what
// the forwarder holds the inner call fails and to receives nothing. It does not mine.
func (c *Chain) TryForward(from *Account, forwarder, to common.Address, wei, amount *big.Int) *types.Transaction {
	c.tb.Helper()
	return c.transactForwarder(from, forwarder, "tryForward", wei, 0, func(f *Forwarder, opts *bind.TransactOpts) (*types.Transaction, error) {
		return f.TryForward(opts, to, amount)
	})
}

// transactForwarder sends one call of the Forwarder at addr with value wei; gas 0 lets bind
// estimate it.
func (c *Chain) transactForwarder(from *Account, addr common.Address, what string, wei *big.Int, gas uint64,
	call func(*Forwarder, *bind.TransactOpts) (*types.Transaction, error)) *types.Transaction {
	c.tb.Helper()
	f, err := NewForwarder(addr, c.client)
	if err != nil {
		c.tb.Fatalf("chaintest: bind forwarder %s: %v", addr, err)
	}
	return c.send(from, what, func(ctx context.Context, nonce uint64) (*types.Transaction, error) {
		opts, err := c.transactOpts(ctx, from, nonce)
		if err != nil {
			return nil, err
		}
		opts.Value = new(big.Int).Set(wei)
		opts.GasLimit = gas
		return call(f, opts)
	})
}

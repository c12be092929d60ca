package chaintest

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// waitMinedTimeout bounds WaitMined; long enough for a block timer of a few seconds.
const waitMinedTimeout = 30 * time.Second

// SendETH sends wei from from to to in an EIP-1559 transaction with estimated gas. It does not
// mine: Commit (or the block timer) does, and WaitMined returns the receipt.
func (c *Chain) SendETH(from *Account, to common.Address, wei *big.Int) *types.Transaction {
	c.tb.Helper()
	return c.send(from, "send ETH", func(ctx context.Context, nonce uint64) (*types.Transaction, error) {
		gas, err := c.client.EstimateGas(ctx, ethereum.CallMsg{From: from.Address, To: &to, Value: wei})
		if err != nil {
			return nil, fmt.Errorf("estimate gas: %w", err)
		}
		tipCap, feeCap, err := c.fees(ctx)
		if err != nil {
			return nil, err
		}
		tx, err := types.SignNewTx(from.Key, types.LatestSignerForChainID(c.chainID), &types.DynamicFeeTx{
			ChainID:   c.chainID,
			Nonce:     nonce,
			GasTipCap: tipCap,
			GasFeeCap: feeCap,
			Gas:       gas,
			To:        &to,
			Value:     new(big.Int).Set(wei),
		})
		if err != nil {
			return nil, fmt.Errorf("sign: %w", err)
		}
		return tx, c.client.SendTransaction(ctx, tx)
	})
}

// fees suggests a tip and a fee cap of twice the head's base fee plus the tip, enough to stay
// valid while the base fee rises for a few blocks.
func (c *Chain) fees(ctx context.Context) (tipCap, feeCap *big.Int, err error) {
	tipCap, err = c.client.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("suggest tip: %w", err)
	}
	head, err := c.client.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("head: %w", err)
	}
	feeCap = new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tipCap)
	return tipCap, feeCap, nil
}

// Resend sends an already signed transaction again (one dropped by Reorg, say) and counts its
// nonce as used by its sender. It does not mine.
func (c *Chain) Resend(tx *types.Transaction) {
	c.tb.Helper()
	from, err := types.Sender(types.LatestSignerForChainID(c.chainID), tx)
	if err != nil {
		c.tb.Fatalf("chaintest: resend %s: sender: %v", tx.Hash(), err)
	}
	c.nonceMu.Lock()
	defer c.nonceMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := c.client.SendTransaction(ctx, tx); err != nil {
		c.tb.Fatalf("chaintest: resend %s: %v", tx.Hash(), err)
	}
	c.nonces[from] = max(c.nonces[from], tx.Nonce()+1)
}

// send makes "pick nonce, build, send" atomic for the Chain. The nonce is the larger of the one
// after this Chain's last send from that account and the node's pending nonce: the pending nonce
// lags right after a send, and a binary under test using the same key moves it on.
func (c *Chain) send(from *Account, what string, sendTx func(ctx context.Context, nonce uint64) (*types.Transaction, error)) *types.Transaction {
	c.tb.Helper()
	c.nonceMu.Lock()
	defer c.nonceMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	pending, err := c.client.PendingNonceAt(ctx, from.Address)
	if err != nil {
		c.tb.Fatalf("chaintest: %s from %s: pending nonce: %v", what, from.Address, err)
	}
	nonce := max(pending, c.nonces[from.Address])
	tx, err := sendTx(ctx, nonce)
	if err != nil {
		c.tb.Fatalf("chaintest: %s from %s (nonce %d): %v", what, from.Address, nonce, err)
	}
	c.nonces[from.Address] = nonce + 1
	return tx
}

// transactOpts signs for from with the given nonce; gas and fees are left for bind to estimate.
func (c *Chain) transactOpts(ctx context.Context, from *Account, nonce uint64) (*bind.TransactOpts, error) {
	opts, err := bind.NewKeyedTransactorWithChainID(from.Key, c.chainID)
	if err != nil {
		return nil, err
	}
	opts.Nonce = new(big.Int).SetUint64(nonce)
	opts.Context = ctx
	return opts, nil
}

// WaitMined polls until tx has a receipt and returns it, whatever its status. It does not mine:
// on a chain without a block timer, Commit first.
func (c *Chain) WaitMined(tx *types.Transaction) *types.Receipt {
	c.tb.Helper()
	deadline := time.Now().Add(waitMinedTimeout)
	for {
		// The receipt can be found a moment before the block becomes the head that "latest"
		// state reads (balances, nonces) see: wait for both, or a caller reading a balance
		// right after WaitMined may see the state before the block (seen under load).
		if r := c.Receipt(tx.Hash()); r != nil && c.headAtLeast(r.BlockNumber.Uint64()) {
			return r
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("chaintest: %s not mined after %s (no block timer: call Commit first)", tx.Hash(), waitMinedTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// headAtLeast reports whether the node's latest block is at least n.
func (c *Chain) headAtLeast(n uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	h, err := c.client.HeaderByNumber(ctx, nil)
	return err == nil && h.Number.Uint64() >= n
}

// Receipt is the receipt of the transaction with hash on the canonical chain, or nil when the
// chain does not hold it. Right after new blocks or a reorg the node answers "transaction
// indexing is in progress" (JSON-RPC code -32000) for a hash it cannot find yet; Receipt retries
// that until the index has caught up, so nil means "not there".
func (c *Chain) Receipt(hash common.Hash) *types.Receipt {
	c.tb.Helper()
	deadline := time.Now().Add(callTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		receipt, err := c.client.TransactionReceipt(ctx, hash)
		cancel()
		switch {
		case err == nil:
			return receipt
		case errors.Is(err, ethereum.NotFound):
			return nil
		case time.Now().After(deadline):
			c.tb.Fatalf("chaintest: receipt of %s: %v", hash, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mineSetUp mines tx (by Commit, or by waiting for the block timer) and fails the test unless
// it succeeded.
func (c *Chain) mineSetUp(what string, tx *types.Transaction) *types.Receipt {
	c.tb.Helper()
	if c.interval == 0 {
		c.Commit()
	}
	receipt := c.WaitMined(tx)
	if receipt.Status != types.ReceiptStatusSuccessful {
		c.tb.Fatalf("chaintest: %s: transaction %s reverted", what, tx.Hash())
	}
	return receipt
}

// BalanceAt is addr's ether balance in wei at the head.
func (c *Chain) BalanceAt(addr common.Address) *big.Int {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	bal, err := c.client.BalanceAt(ctx, addr, nil)
	if err != nil {
		c.tb.Fatalf("chaintest: balance of %s: %v", addr, err)
	}
	return bal
}

// DeployToken deploys a TestToken named "Test Token <decimals>" with symbol "TT<decimals>" from
// Funder and mines it.
func (c *Chain) DeployToken(decimals uint8) (common.Address, *TestToken) {
	c.tb.Helper()
	return c.DeployNamedToken(fmt.Sprintf("Test Token %d", decimals), fmt.Sprintf("TT%d", decimals), decimals)
}

// DeployNamedToken deploys a TestToken with the given name, symbol and decimals from Funder and
// mines it.
func (c *Chain) DeployNamedToken(name, symbol string, decimals uint8) (common.Address, *TestToken) {
	c.tb.Helper()
	var (
		addr  common.Address
		token *TestToken
	)
	tx := c.send(c.Funder, "deploy "+symbol, func(ctx context.Context, nonce uint64) (*types.Transaction, error) {
		opts, err := c.transactOpts(ctx, c.Funder, nonce)
		if err != nil {
			return nil, err
		}
		var tx *types.Transaction
		addr, tx, token, err = DeployTestToken(opts, c.client, name, symbol, decimals)
		return tx, err
	})
	c.mineSetUp("deploy "+symbol, tx)
	return addr, token
}

// Token binds the TestToken at addr.
func (c *Chain) Token(addr common.Address) *TestToken {
	c.tb.Helper()
	token, err := NewTestToken(addr, c.client)
	if err != nil {
		c.tb.Fatalf("chaintest: bind token %s: %v", addr, err)
	}
	return token
}

// MintToken mints amount base units of token to to (sent by Funder) and mines it. The mint
// emits Transfer(0x0, to, amount), which a scanner sees as a deposit like any other.
func (c *Chain) MintToken(token, to common.Address, amount *big.Int) *types.Receipt {
	c.tb.Helper()
	bound := c.Token(token)
	tx := c.send(c.Funder, "mint", func(ctx context.Context, nonce uint64) (*types.Transaction, error) {
		opts, err := c.transactOpts(ctx, c.Funder, nonce)
		if err != nil {
			return nil, err
		}
		return bound.Mint(opts, to, amount)
	})
	return c.mineSetUp("mint", tx)
}

// TransferToken sends a transfer of amount base units of token from from to to, with estimated
// gas (a cold transfer costs about 146k on this chain). It does not mine.
func (c *Chain) TransferToken(from *Account, token, to common.Address, amount *big.Int) *types.Transaction {
	c.tb.Helper()
	bound := c.Token(token)
	return c.send(from, "token transfer", func(ctx context.Context, nonce uint64) (*types.Transaction, error) {
		opts, err := c.transactOpts(ctx, from, nonce)
		if err != nil {
			return nil, err
		}
		return bound.Transfer(opts, to, amount)
	})
}

// TokenBalance is addr's balance of token in base units at the head.
func (c *Chain) TokenBalance(token, addr common.Address) *big.Int {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	bal, err := c.Token(token).BalanceOf(&bind.CallOpts{Context: ctx}, addr)
	if err != nil {
		c.tb.Fatalf("chaintest: %s balance of %s: %v", token, addr, err)
	}
	return bal
}

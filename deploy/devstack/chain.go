package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/node"
	"github.com/tyler-smith/go-bip39"

	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// devChain is a simulated EVM chain (chain id 1337) serving JSON-RPC over HTTP to the
// services, with a block every interval, like `geth --dev` without installing geth.
type devChain struct {
	backend *simulated.Backend
	rpcURL  string
	signer  types.Signer

	mu    sync.Mutex           // block production vs sends
	mined map[uint64]time.Time // when each block was committed, for latency figures
	// reorgKeys are funded accounts, one spent per reorg (reorg).
	reorgKeys []*ecdsa.PrivateKey
	stop      chan struct{}
	done      chan struct{}
}

func startChain(alloc types.GenesisAlloc, interval time.Duration) (*devChain, error) {
	var reorgKeys []*ecdsa.PrivateKey
	for i := range 16 {
		a := chaintest.NewAccount(fmt.Sprintf("devstack reorg %d", i))
		alloc[a.Address] = types.Account{Balance: big.NewInt(1e18)}
		reorgKeys = append(reorgKeys, a.Key)
	}
	port, err := testkit.FreePort()
	if err != nil {
		return nil, err
	}
	var backend *simulated.Backend
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("simulated chain: %v", r)
			}
		}()
		backend = simulated.NewBackend(alloc, func(n *node.Config, _ *ethconfig.Config) {
			n.HTTPHost, n.HTTPPort, n.HTTPModules = "127.0.0.1", port, []string{"eth", "net", "web3"}
		})
	}()
	if err != nil {
		return nil, err
	}
	c := &devChain{backend: backend, rpcURL: fmt.Sprintf("http://127.0.0.1:%d", port),
		signer: types.LatestSignerForChainID(big.NewInt(1337)), mined: map[uint64]time.Time{}, reorgKeys: reorgKeys,
		stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				c.mu.Lock()
				c.commitLocked()
				c.mu.Unlock()
			}
		}
	}()
	return c, nil
}

func (c *devChain) commitLocked() {
	h := c.backend.Commit()
	if b, err := c.backend.Client().BlockByHash(context.Background(), h); err == nil {
		c.mined[b.NumberU64()] = time.Now()
	}
}

// reorg replaces the last depth blocks with a longer branch, as a real chain's reorg does: the
// orphaned blocks' transactions go back to the pool and are mined again in the new branch,
// whose first block also carries a transaction of its own, so that it is a different block
// even when it holds the same transactions.
func (c *devChain) reorg(ctx context.Context, depth uint64) (from uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reorgKeys) == 0 {
		return 0, errors.New("devchain: no reorg account left")
	}
	client := c.backend.Client()
	for attempt := 1; ; attempt++ {
		head, err := client.HeaderByNumber(ctx, nil)
		if err != nil {
			return 0, err
		}
		if head.Number.Uint64() <= depth {
			return 0, fmt.Errorf("devchain: reorg of %d at head %d", depth, head.Number)
		}
		from = head.Number.Uint64() - depth + 1
		parent, err := client.HeaderByNumber(ctx, new(big.Int).SetUint64(from-1))
		if err != nil {
			return 0, err
		}
		err = c.backend.Fork(parent.Hash())
		if err == nil {
			break
		}
		// The pool may still be settling a transaction just sent (see chaintest's reorg).
		if !strings.Contains(err.Error(), "pending block dirty") || attempt == 3 {
			return 0, fmt.Errorf("devchain: fork at %d: %w", from-1, err)
		}
		c.commitLocked()
	}
	key := c.reorgKeys[0]
	c.reorgKeys = c.reorgKeys[1:]
	if _, err := c.sendETHAt(ctx, key, 0, common.HexToAddress("0x000000000000000000000000000000000000dEaD"), big.NewInt(1)); err != nil {
		return 0, err
	}
	for range depth + 1 {
		c.commitLocked()
	}
	return from, nil
}

// sendETHAt sends wei from key to to at the given nonce (the caller tracks it: the pool's
// pending nonce lags right after a send), a 21,000-gas transfer priced at three times the head's
// base fee plus a 1 gwei tip. The caller holds c.mu.
func (c *devChain) sendETHAt(ctx context.Context, key *ecdsa.PrivateKey, nonce uint64, to common.Address, wei *big.Int) (*types.Transaction, error) {
	client := c.backend.Client()
	head, err := client.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, err
	}
	tip := big.NewInt(1_000_000_000)
	tx, err := types.SignNewTx(key, c.signer, &types.DynamicFeeTx{ChainID: big.NewInt(1337), Nonce: nonce,
		GasTipCap: tip, GasFeeCap: new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(3)), tip), Gas: 21000, To: &to, Value: wei})
	if err != nil {
		return nil, err
	}
	return tx, client.SendTransaction(ctx, tx)
}

func (c *devChain) Close() {
	close(c.stop)
	<-c.done
	c.backend.Close()
}

// transactor signs as key; sends are serialised with block production so the pending nonce is
// read after the previous send is in the pool.
func (c *devChain) transactor(ctx context.Context, key *ecdsa.PrivateKey) (*bind.TransactOpts, error) {
	opts, err := bind.NewKeyedTransactorWithChainID(key, big.NewInt(1337))
	if err != nil {
		return nil, err
	}
	opts.Context = ctx
	return opts, nil
}

func (c *devChain) sendETH(ctx context.Context, from *ecdsa.PrivateKey, to common.Address, wei *big.Int) (*types.Transaction, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	client := c.backend.Client()
	addr := crypto.PubkeyToAddress(from.PublicKey)
	nonce, err := client.PendingNonceAt(ctx, addr)
	if err != nil {
		return nil, err
	}
	tip, err := client.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, err
	}
	head, err := client.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, err
	}
	feeCap := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	tx, err := types.SignNewTx(from, c.signer, &types.DynamicFeeTx{ChainID: big.NewInt(1337), Nonce: nonce,
		GasTipCap: tip, GasFeeCap: feeCap, Gas: 21000, To: &to, Value: wei})
	if err != nil {
		return nil, err
	}
	return tx, client.SendTransaction(ctx, tx)
}

func (c *devChain) deployToken(ctx context.Context, from *ecdsa.PrivateKey, symbol string, decimals uint8) (common.Address, *chaintest.TestToken, error) {
	opts, err := c.transactor(ctx, from)
	if err != nil {
		return common.Address{}, nil, err
	}
	c.mu.Lock()
	addr, tx, token, err := chaintest.DeployTestToken(opts, c.backend.Client(), "Dev "+symbol, symbol, decimals)
	c.mu.Unlock()
	if err != nil {
		return addr, nil, err
	}
	_, err = c.waitMined(ctx, tx)
	return addr, token, err
}

func (c *devChain) tokenCall(ctx context.Context, from *ecdsa.PrivateKey, call func(*bindOpts) (*types.Transaction, error)) (*types.Transaction, error) {
	opts, err := c.transactor(ctx, from)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return call(opts)
}

func (c *devChain) waitMined(ctx context.Context, tx *types.Transaction) (*types.Receipt, error) {
	for {
		r, err := c.backend.Client().TransactionReceipt(ctx, tx.Hash())
		if err == nil {
			if r.Status != types.ReceiptStatusSuccessful {
				return r, fmt.Errorf("tx %s reverted", tx.Hash())
			}
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// devWallet is the well-known test mnemonic: never hold real money with it.
const devMnemonic = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

// accountXPub returns the xpub at m/44'/60'/0'/0 for the api (it never sees a private key).
func accountXPub(mnemonic string) (string, error) {
	seed, err := bip39.NewSeedWithErrorChecking(mnemonic, "")
	if err != nil {
		return "", err
	}
	k, err := hdkeychain.NewMaster(seed, &chaincfg.MainNetParams)
	if err != nil {
		return "", err
	}
	for _, i := range []uint32{hdkeychain.HardenedKeyStart + 44, hdkeychain.HardenedKeyStart + 60, hdkeychain.HardenedKeyStart, 0} {
		if k, err = k.Derive(i); err != nil {
			return "", err
		}
	}
	pub, err := k.Neuter()
	if err != nil {
		return "", err
	}
	return pub.String(), nil
}

type bindOpts = bind.TransactOpts

// minedAt is when block n was committed (zero if unknown).
func (c *devChain) minedAt(n uint64) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mined[n]
}

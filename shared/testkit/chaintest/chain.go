// Package chaintest runs a real EVM chain inside a test: go-ethereum's simulated backend with
// funded deterministic accounts, a test ERC-20 (testdata/TestToken.sol), optional JSON-RPC over
// HTTP for binaries that dial a URL, an optional block timer, a reorg helper and a fault-injecting
// JSON-RPC proxy.
//
// Block production is explicit unless WithBlockInterval is given: transactions under test
// (SendETH, TransferToken, Resend) are only sent, and the test decides when they are mined with
// Commit or Mine. Set-up helpers (DeployToken, MintToken) mine their own transaction, because the
// next step needs its effect.
//
// The helpers take a testing.TB and stop the test on error, so call them from the test's
// goroutine (or accept that a failure ends only the calling goroutine).
package chaintest

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/node"

	"github.com/ctrip-pay/pipeline/shared/periodic"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// callTimeout bounds every call a helper makes to the node.
const callTimeout = 30 * time.Second

// GenesisBalance is what each funded account holds at genesis: one million ether.
var GenesisBalance = new(big.Int).Mul(big.NewInt(1_000_000), big.NewInt(1e18))

// Account is a key and its address.
type Account struct {
	Key     *ecdsa.PrivateKey
	Address common.Address
}

// NewAccount derives an account deterministically from seed (the key is keccak256(seed)), so
// the same seed names the same address in every run. It funds nothing.
func NewAccount(seed string) *Account {
	key, err := crypto.ToECDSA(crypto.Keccak256([]byte(seed)))
	if err != nil {
		panic(fmt.Sprintf("chaintest: account from seed %q: %v", seed, err))
	}
	return &Account{Key: key, Address: crypto.PubkeyToAddress(key.PublicKey)}
}

// Chain is a simulated EVM chain (chain id 1337) for one test.
type Chain struct {
	// Funder deploys and mints tokens; it holds GenesisBalance, like each of Accounts.
	Funder   *Account
	Accounts []*Account

	tb       testing.TB
	backend  *backend
	client   simulated.Client
	chainID  *big.Int
	rpcURL   string
	interval time.Duration

	// mineMu serialises block production: Commit, Mine, Reorg and the block timer. The
	// simulated beacon is not safe for concurrent sealing.
	mineMu sync.Mutex
	// nonceMu guards nonces and makes "pick nonce, sign, send" atomic per Chain.
	nonceMu sync.Mutex
	nonces  map[common.Address]uint64
}

type settings struct {
	http     bool
	interval time.Duration
	accounts int
	alloc    types.GenesisAlloc
}

// Option configures New.
type Option func(*settings)

// WithHTTP serves the node's JSON-RPC (eth, net, web3, and debug with the tracing API) over
// HTTP on 127.0.0.1 at a free port; RPCURL returns the address for ethclient.Dial or another
// process.
func WithHTTP() Option { return func(s *settings) { s.http = true } }

// WithBlockInterval mines a block every d in the background until the test ends, the way a
// real chain moves while a binary under test watches it. Commit and Mine still work alongside.
func WithBlockInterval(d time.Duration) Option { return func(s *settings) { s.interval = d } }

// WithAccounts sets how many funded Accounts the chain has (default 4).
func WithAccounts(n int) Option { return func(s *settings) { s.accounts = n } }

// WithGenesisBalance gives addr wei at genesis, for addresses the test does not hold as an
// Account (a gas tank derived from a mnemonic, say).
func WithGenesisBalance(addr common.Address, wei *big.Int) Option {
	return func(s *settings) { s.alloc[addr] = types.Account{Balance: new(big.Int).Set(wei)} }
}

// New starts a chain whose genesis funds Funder and Accounts; it is closed at test cleanup.
func New(tb testing.TB, opts ...Option) *Chain {
	tb.Helper()
	s := settings{accounts: 4, alloc: types.GenesisAlloc{}}
	for _, opt := range opts {
		opt(&s)
	}
	if s.accounts < 0 || s.interval < 0 {
		tb.Fatalf("chaintest: negative accounts (%d) or block interval (%s)", s.accounts, s.interval)
	}

	c := &Chain{
		Funder:   NewAccount("chaintest/funder"),
		tb:       tb,
		interval: s.interval,
		nonces:   map[common.Address]uint64{},
	}
	alloc := types.GenesisAlloc{c.Funder.Address: {Balance: new(big.Int).Set(GenesisBalance)}}
	for i := range s.accounts {
		a := NewAccount(fmt.Sprintf("chaintest/account/%d", i))
		c.Accounts = append(c.Accounts, a)
		alloc[a.Address] = types.Account{Balance: new(big.Int).Set(GenesisBalance)}
	}
	for addr, acc := range s.alloc {
		alloc[addr] = acc
	}

	c.backend, c.rpcURL = startBackend(tb, alloc, s.http)
	c.client = c.backend.Client()

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	id, err := c.client.ChainID(ctx)
	if err != nil {
		_ = c.backend.Close()
		tb.Fatalf("chaintest: chain id: %v", err)
	}
	c.chainID = id

	stopTimer := func() {}
	if s.interval > 0 {
		stopTimer = c.startBlockTimer(s.interval)
	}
	tb.Cleanup(func() {
		stopTimer()
		if err := c.backend.Close(); err != nil {
			tb.Errorf("chaintest: close backend: %v", err)
		}
	})
	return c
}

// startBackend starts the simulated node, which serves the tracing API too (backend.go). With
// HTTP on, the port is picked by listening on :0 and closing; the node is started on it
// afterwards, so another process may take the port in between, and a failed start is retried.
func startBackend(tb testing.TB, alloc types.GenesisAlloc, withHTTP bool) (*backend, string) {
	tb.Helper()
	if !withHTTP {
		b, err := newBackend(alloc, nil)
		if err != nil {
			tb.Fatalf("chaintest: start node: %v", err)
		}
		return b, ""
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("chaintest: free port: %v", err)
		}
		b, err := newBackend(alloc, func(nodeConf *node.Config, _ *ethconfig.Config) {
			nodeConf.HTTPHost = "127.0.0.1"
			nodeConf.HTTPPort = port
			nodeConf.HTTPModules = []string{"eth", "net", "web3", "debug"}
		})
		if err == nil {
			return b, fmt.Sprintf("http://127.0.0.1:%d", port)
		}
		lastErr = err
	}
	tb.Fatalf("chaintest: start node with HTTP: %v", lastErr)
	return nil, ""
}

func freePort() (int, error) { return testkit.FreePort() }

// startBlockTimer commits a block every d; the returned func stops it and waits for it.
func (c *Chain) startBlockTimer(d time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		periodic.Every(ctx, d, func(context.Context) bool {
			c.mineMu.Lock()
			c.backend.Commit()
			c.mineMu.Unlock()
			return true
		})
	}()
	return func() {
		cancel()
		<-stopped
	}
}

// ChainID is the chain's id (1337 for the simulated backend).
func (c *Chain) ChainID() *big.Int { return new(big.Int).Set(c.chainID) }

// Client is the in-process RPC client; it also satisfies bind.ContractBackend.
func (c *Chain) Client() simulated.Client { return c.client }

// RPCURL is the HTTP JSON-RPC endpoint; the chain must have been started WithHTTP.
func (c *Chain) RPCURL() string {
	c.tb.Helper()
	if c.rpcURL == "" {
		c.tb.Fatalf("chaintest: RPCURL needs chaintest.WithHTTP()")
	}
	return c.rpcURL
}

// BlockInterval is the block timer's period, zero when blocks are mined only by Commit/Mine.
func (c *Chain) BlockInterval() time.Duration { return c.interval }

// Commit mines one block holding every pending transaction and returns its hash.
func (c *Chain) Commit() common.Hash {
	c.tb.Helper()
	c.mineMu.Lock()
	defer c.mineMu.Unlock()
	return c.commitLocked()
}

// Mine mines n blocks and returns the hash of the last; with n == 0 it returns the head's hash.
func (c *Chain) Mine(n int) common.Hash {
	c.tb.Helper()
	if n < 0 {
		c.tb.Fatalf("chaintest: Mine(%d)", n)
	}
	c.mineMu.Lock()
	defer c.mineMu.Unlock()
	if n == 0 {
		return c.Head().Hash()
	}
	var hash common.Hash
	for range n {
		hash = c.commitLocked()
	}
	return hash
}

// commitLocked mines a block and checks that the head moved: the backend only logs a failed
// seal and returns the old head.
func (c *Chain) commitLocked() common.Hash {
	c.tb.Helper()
	before := c.Head()
	hash := c.backend.Commit()
	if hash == before.Hash() {
		c.tb.Fatalf("chaintest: commit did not mine a block on top of %d", before.Number)
	}
	return hash
}

// Head is the current head header.
func (c *Chain) Head() *types.Header {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	h, err := c.client.HeaderByNumber(ctx, nil)
	if err != nil {
		c.tb.Fatalf("chaintest: head: %v", err)
	}
	return h
}

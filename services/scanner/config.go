package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ctrip-pay/pipeline/shared/config"
)

// Config is the scanner's environment (README, "Configuration").
type Config struct {
	config.Base

	// ChainsFile lists the chains to follow, their RPC URLs, confirmations and tokens.
	ChainsFile string `env:"CHAINS_FILE, required"`
	// PollInterval is the wait between polls once a chain's head is reached.
	PollInterval time.Duration `env:"SCAN_POLL_INTERVAL, default=1s"`
	// BatchBlocks is the most blocks one poll processes (and one eth_getLogs spans).
	BatchBlocks uint64 `env:"SCAN_BATCH_BLOCKS, default=100"`
	// StartBlock is where a chain with no cursor starts (a block number); unset: its head
	// minus its confirmations, floored at 0.
	StartBlock string `env:"SCAN_START_BLOCK"`
	// Prefetch is how many block requests (each a JSON-RPC batch of RPCBatch blocks) are
	// fetched ahead, concurrently, while earlier blocks are processed: with a remote RPC,
	// latency and not bandwidth bounds a sequential backfill.
	Prefetch int `env:"SCAN_PREFETCH, default=4"`
	// RPCBatch is how many blocks one JSON-RPC batch request fetches (and at most how many
	// eth_getBlockReceipts one batch holds). Public RPC providers cap batch sizes; 1 sends one
	// request per block, 0 means scan.DefaultRPCBatch.
	RPCBatch int `env:"SCAN_RPC_BATCH, default=25"`
	// RPCTimeout bounds one RPC, database or JetStream call; RetryMax caps the exponential
	// backoff between retries of a failed one.
	RPCTimeout time.Duration `env:"SCAN_RPC_TIMEOUT, default=20s"`
	RetryMax   time.Duration `env:"SCAN_RETRY_MAX, default=30s"`
	// ReconcileBudget is how many eth_getBalance calls a block may cost where the node has no
	// debug API and ETH paid to deposit addresses from inside contracts' transactions is found
	// by reconciling the open payments' balances: each address is read at least every
	// ceil(open native payments / budget) blocks. 0 means scan.DefaultReconcileBudget.
	ReconcileBudget int `env:"SCAN_RECONCILE_BUDGET, default=200"`
	// LeaseInterval is how often a standby replica tries to take a chain's lease, and how
	// often the leader checks it still holds it: a dead leader's chain is taken over within
	// about this long.
	LeaseInterval time.Duration `env:"SCAN_LEASE_INTERVAL, default=1s"`
}

// StartBlockNumber is SCAN_START_BLOCK, or nil when it is unset.
func (c Config) StartBlockNumber() (*uint64, error) {
	if c.StartBlock == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(c.StartBlock, 10, 64)
	if err != nil {
		return nil, &config.Error{Var: "SCAN_START_BLOCK", Msg: fmt.Sprintf("%q is not a block number", c.StartBlock)}
	}
	return &n, nil
}

// ChainsPath makes it a service.ChainsConfig: service.Run loads CHAINS_FILE.
func (c Config) ChainsPath() string { return c.ChainsFile }

// Validate names the first unusable variable.
func (c Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	bad := func(v, msg string) error { return &config.Error{Var: v, Msg: msg} }
	if _, err := c.StartBlockNumber(); err != nil {
		return err
	}
	switch {
	case c.ChainsFile == "":
		return bad("CHAINS_FILE", "is required")
	case c.LeaseInterval <= 0:
		return bad("SCAN_LEASE_INTERVAL", "must be positive")
	case c.PollInterval <= 0:
		return bad("SCAN_POLL_INTERVAL", "must be positive")
	case c.BatchBlocks < 1 || c.BatchBlocks > 10_000:
		return bad("SCAN_BATCH_BLOCKS", "must be between 1 and 10000")
	case c.Prefetch < 1 || c.Prefetch > 64:
		return bad("SCAN_PREFETCH", "must be between 1 and 64")
	case c.RPCBatch < 0 || c.RPCBatch > 1000:
		return bad("SCAN_RPC_BATCH", "must be between 1 and 1000")
	case c.ReconcileBudget < 0 || c.ReconcileBudget > 100_000:
		return bad("SCAN_RECONCILE_BUDGET", "must be between 1 and 100000 (0: the default)")
	case c.RPCTimeout <= 0:
		return bad("SCAN_RPC_TIMEOUT", "must be positive")
	case c.RetryMax < retryMin:
		return bad("SCAN_RETRY_MAX", fmt.Sprintf("must be at least %v", retryMin))
	}
	return nil
}

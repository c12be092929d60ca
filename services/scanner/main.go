// Command scanner follows the head of every chain in CHAINS_FILE, publishes payments.detected
// for each transfer to a deposit address and chain.<id>.head / chain.<id>.reorg for the
// confirmer.
//
// How it behaves, per chain (one goroutine each; see internal/scan):
//   - Each poll reads the head, refreshes the deposit addresses (payments of any status,
//     read incrementally by address_index into memory), and processes blocks cursor+1 ..
//     min(head, cursor + SCAN_BATCH_BLOCKS): one eth_getLogs for the configured tokens'
//     Transfer events over the range, and the blocks fetched in JSON-RPC batch requests of
//     SCAN_RPC_BATCH blocks (with a second batch for the receipts of those where a transaction
//     pays a native deposit address), SCAN_PREFETCH requests ahead, concurrently, then
//     processed strictly in order.
//   - Every block's parent hash is checked against the previous block; on a mismatch (or, while
//     idle, a cursor block that is no longer canonical) it walks back over chain_blocks to the
//     common ancestor, publishes chain.<id>.reorg, rewinds the cursor and rescans.
//   - Transfers are recorded in payment_transfers and published on payments.detected; once
//     JetStream has acknowledged every event, the blocks and the cursor are committed in one
//     transaction. Blocks are committed together: at the end of each batch, before a reorg is
//     handled, and every 2,000 transfers — a crash replays at most that much, and the replayed
//     events carry the same Nats-Msg-Id.
//   - chain.<id>.head is published once per batch, for the last committed block: one message
//     per block when following the head, one per SCAN_BATCH_BLOCKS during a backfill.
//   - Failed RPC, database and JetStream calls are retried with capped exponential backoff
//     (SCAN_RETRY_MAX); a block is never skipped.
package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ctrip-pay/pipeline/services/scanner/internal/postgres"
	"github.com/ctrip-pay/pipeline/services/scanner/internal/scan"
	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	sharedpg "github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/service"
	"github.com/ctrip-pay/pipeline/streams"
)

const serviceName = "scanner"

// retryMin is the first wait after a failed call; it doubles up to SCAN_RETRY_MAX.
const retryMin = 100 * time.Millisecond

func main() { service.Main(serviceName, run) }

var run = service.Run(serviceName, provision, start)

func start(ctx context.Context, cfg Config, deps *service.Deps) (err error) {
	startBlock, err := cfg.StartBlockNumber()
	if err != nil {
		return err
	}
	store := postgres.New(deps.DB)
	metrics := scan.NewMetrics(deps.Tel.Meter)
	scanners := make([]*scan.Scanner, 0, len(deps.Chains.Chains))
	// The head watch of each chain this replica leads (nil while it stands by).
	watches := make([]atomic.Pointer[chains.HeadWatch], len(deps.Chains.Chains))
	for i, c := range deps.Chains.Chains {
		// For HTTP(S) URLs Dial does not connect: an RPC that is down at start-up is retried
		// by the scanner like any other failure.
		client, err := chains.DialRPC(ctx, c, deps.Tel.Meter)
		if err != nil {
			return &config.Error{Var: "CHAINS_FILE", Msg: fmt.Sprintf("chain %d: rpc_url: %v", c.ID, err)}
		}
		defer client.Close()
		s, err := scan.New(scan.Config{
			Chain: c, RPC: scan.NewRPCClient(client), Store: store, JS: deps.JS,
			Batch: cfg.BatchBlocks, Poll: cfg.PollInterval, StartBlock: startBlock,
			Prefetch: cfg.Prefetch, RPCBatch: cfg.RPCBatch, ReconcileBudget: cfg.ReconcileBudget,
			Retry: scan.Backoff{Min: retryMin, Max: cfg.RetryMax}, CallTimeout: cfg.RPCTimeout,
			Tracer: deps.Tel.Tracer, Metrics: metrics, Log: deps.Log,
			OnHead: func(n uint64) {
				if w := watches[i].Load(); w != nil {
					w.Observe(n, time.Now())
				}
			},
		})
		if err != nil {
			return err
		}
		scanners = append(scanners, s)
		// Not ready while a chain this replica leads has a head older than its max_head_age:
		// a node that is stuck yet answers misses deposits silently. A standby is ready.
		deps.AddReadiness(fmt.Sprintf("chain %d head", c.ID), func(context.Context) error {
			if w := watches[i].Load(); w != nil {
				return w.Check(time.Now())
			}
			return nil
		})
	}

	// One goroutine per chain, scanning while this replica holds the chain's lease (a standby
	// waits for it). A scanner returns early only when its chain is misconfigured; that stops
	// the service, loudly, rather than leave one chain silently unwatched.
	scanCtx, stopScanners := context.WithCancel(ctx)
	defer stopScanners()
	var wg sync.WaitGroup
	failed := make(chan error, len(scanners))
	for i, s := range scanners {
		chain := deps.Chains.Chains[i]
		wg.Go(func() {
			err := lead(scanCtx, deps, cfg.LeaseInterval, chain.ID, func(ctx context.Context) error {
				watches[i].Store(chains.NewHeadWatch(chain, time.Now()))
				defer watches[i].Store(nil)
				defer metrics.Forget(chain.ID) // a standby reports no head figures
				return s.Run(ctx)
			})
			if err != nil {
				failed <- err
			}
		})
	}
	deps.Ops.SetReady(true)
	deps.Log.Info("scanner running", "chains", len(scanners), "batch", cfg.BatchBlocks, "poll", cfg.PollInterval.String(), "ops_addr", deps.Ops.Addr())

	select {
	case <-ctx.Done():
		deps.Log.Info("shutting down")
	case err = <-failed:
		deps.Log.Error("scanner stopped", "err", err)
	}
	deps.Ops.SetReady(false)
	// A block in flight is abandoned: its cursor has not moved, so the next start rescans it
	// and JetStream drops the events it had already published (same Nats-Msg-Id).
	stopScanners()
	wg.Wait()
	return err
}

// lead runs the chain's scanner while this replica holds the chain's lease (scanner/chain/<id>,
// a Postgres advisory lock on a connection of its own), and waits for the lease again when it
// is lost. Two replicas never scan one chain at once for longer than the leader takes to see
// its session gone (one lease interval); were they to, the cursor's compare-and-set and the
// events' Nats-Msg-Ids would still keep a block from being skipped or counted twice.
func lead(ctx context.Context, deps *service.Deps, interval time.Duration, chainID int64, scan func(context.Context) error) error {
	name := fmt.Sprintf("scanner/chain/%d", chainID)
	for {
		lease, err := sharedpg.AcquireLease(ctx, deps.DB.DB, name, interval)
		if err != nil {
			return nil // ctx ended
		}
		deps.Log.Info("leading chain", "chain_id", chainID, "lease", name)
		err = scan(lease.Held)
		lost := lease.Held.Err() != nil && ctx.Err() == nil
		lease.Release()
		if err != nil || ctx.Err() != nil {
			return err
		}
		if lost {
			deps.Log.Warn("chain lease lost; standing by", "chain_id", chainID, "lease", name)
		}
	}
}

// provision applies the streams the scanner publishes to. The consumers belong to the
// services that read them.
var provision = natsbus.Provisioner([]string{streams.Payments, streams.Chain}, nil, nil)

// Command confirmer owns payment status: it counts confirmations of detected transfers,
// re-verifies each against the chain before counting it, steps payments back on reorgs and
// expires payments past their deadline. Every transition is a guarded UPDATE with an audit row;
// the events it causes go through the transactional outbox.
package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/ctrip-pay/pipeline/services/confirmer/internal/confirm"
	"github.com/ctrip-pay/pipeline/services/confirmer/internal/postgres"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/service"
	"github.com/ctrip-pay/pipeline/streams"
)

const serviceName = "confirmer"

// Durable consumer name, on PAYMENTS (payments.detected) and on CHAIN (heads, reorgs).
const durable = "confirmer"

// Handler parallelism: payments.detected messages touch one payment each and are serialised
// by its row lock; chain messages run in order per chain, chains in parallel.
const (
	paymentWorkers = 8
	chainLanes     = 4
	// handlerTimeout bounds one message: a head re-verifies every transfer it can confirm
	// (RPC calls of 10s at most each); one that overruns is retried, or superseded by the next.
	handlerTimeout = 5 * time.Minute
)

func main() { service.Main(serviceName, run) }

var run = service.Run(serviceName, provision, start)

func start(ctx context.Context, cfg Config, deps *service.Deps) (err error) {

	var cs []confirm.Chain
	for _, ch := range deps.Chains.Chains {
		client, err := ethclient.DialContext(ctx, ch.RPCURL)
		if err != nil {
			return fmt.Errorf("chain %d (%s): dial rpc: %w", ch.ID, ch.Name, err)
		}
		defer client.Close()
		cs = append(cs, confirm.Chain{Chain: ch, RPC: client})
	}

	paymentsCons, err := deps.JS.Consumer(ctx, streams.Payments, durable)
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", durable, streams.Payments, err)
	}
	chainCons, err := deps.JS.Consumer(ctx, streams.Chain, durable)
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", durable, streams.Chain, err)
	}

	// The relay publishes what the handlers write to the outbox; a write wakes it at once.
	wake := deps.StartOutbox(0)
	store := postgres.New(deps.DB)
	c, err := confirm.New(confirm.Config{
		Payments: store, Transfers: store, Chains: cs,
		Tracer: deps.Tel.Tracer, Meter: deps.Tel.Meter, Log: deps.Log,
		OutboxWake: wake,
	})
	if err != nil {
		return err
	}

	// Handlers run on a context that survives the shutdown signal, so in-flight work finishes
	// (deps.Close then publishes its events); it is cancelled if shutdown overruns.
	work := deps.WorkContext(ctx)

	rt := natsbus.Runtime{Name: serviceName, Tracer: deps.Tel.Tracer, Log: deps.Log, Timeout: handlerTimeout}
	paymentsLoop, err := natsbus.StartLoop(work, paymentsCons, paymentWorkers, 4*paymentWorkers, c.HandlePaymentMsg, rt)
	if err != nil {
		return err
	}
	deps.AddReadiness("consumer "+streams.Payments+"/"+durable, paymentsLoop.Bound)
	chainLoop, err := natsbus.StartLaneLoop(work, chainCons, chainLanes, confirm.ChainLane, c.HandleChainMsg, rt)
	if err != nil {
		paymentsLoop.Stop(cfg.ShutdownTimeout)
		return err
	}
	deps.AddReadiness("consumer "+streams.Chain+"/"+durable, chainLoop.Bound)
	expiryCtx, stopExpiry := context.WithCancel(work)
	var expiry sync.WaitGroup
	expiry.Go(func() { c.RunExpiry(expiryCtx, cfg.ExpiryInterval) })

	deps.Ops.SetReady(true)
	deps.Log.Info("confirmer running", "chains", len(cs), "expiry_interval", cfg.ExpiryInterval.String(), "ops_addr", deps.Ops.Addr())

	deps.AwaitShutdown(ctx, cfg.ShutdownTimeout)
	stopExpiry()
	expiry.Wait()
	chainLoop.Stop(cfg.ShutdownTimeout)
	paymentsLoop.Stop(cfg.ShutdownTimeout)
	return nil
}

// provision applies the streams and consumers the confirmer uses.
var provision = natsbus.Provisioner([]string{streams.Payments, streams.Chain},
	[]natsbus.Durable{{Stream: streams.Payments, Name: durable}, {Stream: streams.Chain, Name: durable}}, nil)

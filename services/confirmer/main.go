// Command confirmer owns payment status: it counts confirmations of detected transfers,
// re-verifies each against the chain before counting it, steps payments back on reorgs and
// expires payments past their deadline. Every transition is a guarded UPDATE with an audit row;
// the events it causes go through the transactional outbox.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/metric"

	"github.com/ctrip-pay/pipeline/services/confirmer/internal/confirm"
	"github.com/ctrip-pay/pipeline/services/confirmer/internal/postgres"
	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/retention"
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
		rpcClient, err := chains.DialRPC(ctx, ch, deps.Tel.Meter)
		if err != nil {
			return fmt.Errorf("chain %d (%s): dial rpc: %w", ch.ID, ch.Name, err)
		}
		client := ethclient.NewClient(rpcClient)
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

	stopConsumerMetrics, err := natsbus.WatchConsumers(ctx, deps.JS, deps.Tel.Meter, 0, deps.Log,
		natsbus.Durable{Stream: streams.Payments, Name: durable}, natsbus.Durable{Stream: streams.Chain, Name: durable})
	if err != nil {
		return err
	}
	defer stopConsumerMetrics()
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
	stopPruning := retention.Start(ctx, pruners(cfg, deps.DB, deps.Log, deps.Tel.Meter)...)

	deps.Ops.SetReady(true)
	deps.Log.Info("confirmer running", "chains", len(cs), "expiry_interval", cfg.ExpiryInterval.String(), "ops_addr", deps.Ops.Addr())

	deps.AwaitShutdown(ctx, cfg.ShutdownTimeout)
	stopPruning()
	stopExpiry()
	expiry.Wait()
	chainLoop.Stop(cfg.ShutdownTimeout)
	paymentsLoop.Stop(cfg.ShutdownTimeout)
	return nil
}

// pruners are the confirmer's retention: the status history of a payment that can no longer
// change (swept or expired) once its last change is older than RETENTION_AGE, whole, so the
// api shows a payment's history complete or not at all — an open payment's history stays, the
// confirmer counts its confirmations in it (TimesConfirmed); and published outbox rows, for
// every service that writes them (the api, the confirmer, the sweeper): a published row is done
// for all of them, unpublished and parked rows are never pruned, and one pruner, beside the
// status changes written in the same transactions, ages a payment's events and history out
// together, as the PAYMENTS stream does (MaxAge 30d).
func pruners(cfg Config, db *sqlx.DB, log *slog.Logger, meter metric.Meter) []*retention.Pruner {
	final := fmt.Sprintf("'%s', '%s'", event.StatusSwept, event.StatusExpired)
	return []*retention.Pruner{{
		DB: db, Table: "payment_status_changes", TimeColumn: "created_at",
		Where: `EXISTS (SELECT 1 FROM payments p WHERE p.id = t.payment_id AND p.status IN (` + final + `))
			AND NOT EXISTS (SELECT 1 FROM payment_status_changes n WHERE n.payment_id = t.payment_id AND n.created_at >= $1)`,
		Config: cfg.Config, Log: log, Meter: meter,
	}, {
		DB: db, Table: "outbox", TimeColumn: "published_at", Where: "t.published_at IS NOT NULL",
		Config: cfg.Config, Log: log, Meter: meter,
	}}
}

// provision applies the streams and consumers the confirmer uses.
var provision = natsbus.Provisioner([]string{streams.Payments, streams.Chain},
	[]natsbus.Durable{{Stream: streams.Payments, Name: durable}, {Stream: streams.Chain, Name: durable}}, nil)

// Command sweeper moves confirmed payments from their deposit addresses to the chain's
// treasury: the native coin minus the exact fee, ERC-20 tokens after a gas top-up from the gas
// tank. Every transaction is recorded before broadcast, so a crash never sweeps twice.
package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"go.opentelemetry.io/otel/metric"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/postgres"
	"github.com/ctrip-pay/pipeline/services/sweeper/internal/sweep"
	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/periodic"
	"github.com/ctrip-pay/pipeline/shared/service"
	"github.com/ctrip-pay/pipeline/streams"
)

const (
	serviceName  = "sweeper"
	consumerName = "sweeper"
)

func main() {
	// "sweeper xpub" prints the api's WALLET_XPUB for this wallet (xpub.go) and exits.
	if isXpubCommand() {
		runXpubCommand()
	}
	service.Main(serviceName, run)
}

var run = service.Run(serviceName, provision, start)

func start(ctx context.Context, cfg Config, deps *service.Deps) (err error) {
	keys, err := cfg.Wallet()
	if err != nil {
		return err
	}
	var gasTank *ecdsa.PrivateKey
	if cfg.GasTankPrivateKey != "" {
		if gasTank, err = crypto.HexToECDSA(strings.TrimPrefix(cfg.GasTankPrivateKey, "0x")); err != nil {
			return errors.New("GAS_TANK_PRIVATE_KEY: not a hex secp256k1 private key")
		}
	}
	networks, closeClients, err := dialChains(ctx, deps.Chains, deps.Tel.Meter, deps.Log)
	if err != nil {
		return err
	}
	defer closeClients()

	cons, err := deps.JS.Consumer(ctx, streams.Payments, consumerName)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", consumerName, err)
	}
	// The relay publishes payments.swept / payments.sweep_failed from the outbox.
	wake := deps.StartOutbox(0)

	store := postgres.New(deps.DB)
	sweeper, err := sweep.New(sweep.Config{
		Networks: networks, Keys: keys, GasTank: gasTank, Payments: store, Ledger: store,
		ReceiptTimeout: cfg.ReceiptTimeout, PollInterval: cfg.PollInterval, RepriceAfter: cfg.RepriceAfter,
		OutboxWake: wake, Tracer: deps.Tel.Tracer, Meter: deps.Tel.Meter, Log: deps.Log,
	})
	if err != nil {
		return err
	}
	stopConsumerMetrics, err := natsbus.WatchConsumers(ctx, deps.JS, deps.Tel.Meter, 0, deps.Log, natsbus.Durable{Stream: streams.Payments, Name: consumerName})
	if err != nil {
		return err
	}
	defer stopConsumerMetrics()
	stopGauges, err := sweeper.WatchGauges(ctx, deps.Tel.Meter, 0, store)
	if err != nil {
		return err
	}
	defer stopGauges()
	// Handlers run on a context that survives the shutdown signal, so a sweep waiting for its
	// receipt can finish; it is cancelled if it overruns the shutdown timeout (the recorded
	// transaction is re-broadcast on redelivery).
	work := deps.WorkContext(ctx)
	// A sweep may wait ReceiptTimeout for its receipts; the deadline leaves it a minute for the
	// rest. Retries are slower than the default: a node that failed a broadcast needs time.
	rt := natsbus.Runtime{Name: serviceName, Tracer: deps.Tel.Tracer, Log: deps.Log, Timeout: cfg.ReceiptTimeout + time.Minute,
		Backoff: natsbus.Backoff{Step: 2 * time.Second, Max: time.Minute}}
	loop, err := natsbus.StartLoop(work, cons, cfg.Concurrency, cfg.Concurrency, sweeper.Handle, rt)
	if err != nil {
		return err
	}
	deps.AddReadiness("consumer "+streams.Payments+"/"+consumerName, loop.Bound)
	leftovers := sweepLeftovers(work, sweeper, cfg.LeftoverInterval, deps.Log)
	deps.Ops.SetReady(true)
	gasTankAddr := ""
	if gasTank != nil {
		gasTankAddr = crypto.PubkeyToAddress(gasTank.PublicKey).Hex()
	}
	deps.Log.Info("sweeper running", "config", cfg, "chains", len(networks), "gas_tank", gasTankAddr, "ops_addr", deps.Ops.Addr())

	deps.AwaitShutdown(ctx, cfg.ShutdownTimeout)
	loop.Stop(cfg.ShutdownTimeout)
	leftovers()
	return nil
}

// sweepLeftovers runs the sweeper's leftover pass every interval until stop is called (which
// waits for a pass in progress). Two replicas may pass over one payment at once: the ledger
// lets one of them record the round's transactions and mark it done.
func sweepLeftovers(ctx context.Context, s *sweep.Sweeper, interval time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		periodic.Every(ctx, interval, func(ctx context.Context) bool {
			n, err := s.SweepLeftovers(ctx)
			if n > 0 {
				log.Info("swept value left at deposit addresses", "payments", n)
			}
			if err != nil && ctx.Err() == nil {
				log.Warn("leftover pass", "err", err)
			}
			return true
		})
	}()
	return func() {
		cancel()
		<-done
	}
}

// dialChains connects to every chain's RPC. A node that does not answer yet is not fatal (its
// sweeps are retried); one that reports another chain id than CHAINS_FILE is.
func dialChains(ctx context.Context, f *chains.File, m metric.Meter, log *slog.Logger) (map[int64]sweep.Network, func(), error) {
	networks := map[int64]sweep.Network{}
	var clients []*ethclient.Client
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	for _, ch := range f.Chains {
		rc, err := chains.DialRPC(ctx, ch, m)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("chain %d (%s): dial: %w", ch.ID, ch.Name, err)
		}
		c := ethclient.NewClient(rc)
		clients = append(clients, c)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		id, err := c.ChainID(cctx)
		cancel()
		switch {
		case err != nil:
			log.Warn("chain rpc not answering; its sweeps will retry", "chain_id", ch.ID, "chain", ch.Name, "err", err)
		case id.Cmp(big.NewInt(ch.ID)) != 0:
			closeAll()
			return nil, nil, fmt.Errorf("chain %d (%s): rpc_url serves chain id %s", ch.ID, ch.Name, id)
		}
		networks[ch.ID] = sweep.Network{Chain: ch, Client: c}
	}
	return networks, closeAll, nil
}

// provision applies the PAYMENTS stream and the sweeper consumer.
var provision = natsbus.Provisioner([]string{streams.Payments}, []natsbus.Durable{{Stream: streams.Payments, Name: consumerName}}, nil)

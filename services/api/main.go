// Command api is the merchant REST API: merchants and API keys, payments with fresh deposit
// addresses derived from WALLET_XPUB, webhook endpoints (with test events and replay), delivery
// attempts, dead-letter replay and the OpenAPI document (GET /openapi.json). payments.created
// goes through the transactional outbox, published by a relay that runs in this process.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ctrip-pay/pipeline/services/api/internal/eventlog"
	"github.com/ctrip-pay/pipeline/services/api/internal/postgres"
	"github.com/ctrip-pay/pipeline/services/api/internal/rest"
	"github.com/ctrip-pay/pipeline/services/api/internal/wallet"
	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/service"
	"github.com/ctrip-pay/pipeline/streams"
)

const serviceName = "api"

func main() { service.Main(serviceName, run) }

var run = service.Run(serviceName, provision, start)

func start(ctx context.Context, cfg Config, deps *service.Deps) error {
	deriver, err := wallet.ParseXPub(cfg.WalletXPub)
	if err != nil {
		return &config.Error{Var: "WALLET_XPUB", Msg: err.Error()}
	}

	// The relay publishes payments.created (and every row a crashed process left behind).
	wake := deps.StartOutbox(cfg.OutboxInterval)

	store := postgres.New(deps.DB)
	handler, err := rest.New(rest.Config{
		Store: store, Chains: deps.Chains, Wallet: deriver, JS: deps.JS,
		AdminToken: cfg.AdminToken, DefaultTTL: cfg.PaymentExpiry, URLPolicy: cfg.Policy,
		Log: deps.Log, Tracer: deps.Tel.Tracer, Meter: deps.Tel.Meter,
		OutboxWake: wake,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listener %s: %w", cfg.APIAddr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(deps.Log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// The event log's consumer: payments.detected, which the scanner publishes itself, kept
	// beside the events written through the outbox.
	eventsCons, err := deps.JS.Consumer(ctx, streams.Payments, eventlog.Durable)
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", eventlog.Durable, streams.Payments, err)
	}
	eventsLoop, err := natsbus.StartBatchLoop(deps.WorkContext(ctx), eventsCons, 1, eventLogBatch,
		eventlog.Logger{Store: store}.HandleBatch,
		natsbus.Runtime{Name: "api.eventlog", Tracer: deps.Tel.Tracer, Log: deps.Log, Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	stopEvents := sync.OnceFunc(func() { eventsLoop.Stop(cfg.ShutdownTimeout) })
	defer stopEvents()
	deps.AddReadiness("consumer "+streams.Payments+"/"+eventlog.Durable, eventsLoop.Bound)
	stopConsumerMetrics, err := natsbus.WatchConsumers(ctx, deps.JS, deps.Tel.Meter, 0, deps.Log,
		natsbus.Durable{Stream: streams.Payments, Name: eventlog.Durable})
	if err != nil {
		return err
	}
	defer stopConsumerMetrics()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	deps.Ops.SetReady(true)
	deps.Log.Info("api running", "addr", ln.Addr().String(), "ops_addr", deps.Ops.Addr(), "chains", len(deps.Chains.Chains),
		"payment_expiry", cfg.PaymentExpiry.String())

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("api listener: %w", err)
	}
	deps.Log.Info("shutting down")
	deps.Ops.SetReady(false)
	stopEvents() // consumers first, then HTTP
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		deps.Log.Warn("http shutdown", "err", err)
	}
	return nil
}

// eventLogBatch is the most payments.detected events kept in one statement.
const eventLogBatch = 500

// provision applies the streams the api publishes to: PAYMENTS (payments.created; and the
// event log's consumer, api-events) and WEBHOOKS (dead-letter replays, endpoint test events and
// endpoint replays).
var provision = natsbus.Provisioner([]string{streams.Payments, streams.Webhooks},
	[]natsbus.Durable{{Stream: streams.Payments, Name: eventlog.Durable}}, nil)

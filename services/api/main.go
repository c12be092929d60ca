// Command api is the merchant REST API: merchants and API keys, payments with fresh deposit
// addresses derived from WALLET_XPUB, webhook endpoints, delivery attempts and dead-letter
// replay. payments.created goes through the transactional outbox, published by a relay that
// runs in this process.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/services/api/internal/postgres"
	"github.com/ctrip-pay/pipeline/services/api/internal/rest"
	"github.com/ctrip-pay/pipeline/services/api/internal/wallet"
	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/logging"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/outbox"
	sharedpg "github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/telemetry"
	"github.com/ctrip-pay/pipeline/streams"
)

const serviceName = "api"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		// migrate needs only the database: the api's own required variables (ADMIN_TOKEN,
		// WALLET_XPUB, CHAINS_FILE) are not asked for.
		var base config.Base
		if err := config.Load(ctx, &base); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		err = sharedpg.MigrateURL(ctx, base.DatabaseURL, logging.New(os.Stdout, base.LogLevel, serviceName))
	} else {
		var cfg Config
		if err := config.Load(ctx, &cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		err = run(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, serviceName+":", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg Config) (err error) {
	name := cfg.ServiceName
	if name == "" {
		name = serviceName
	}
	log := logging.New(os.Stdout, cfg.LogLevel, name)
	deriver, err := wallet.ParseXPub(cfg.WalletXPub)
	if err != nil {
		return &config.Error{Var: "WALLET_XPUB", Msg: err.Error()}
	}
	chainsFile, err := chains.Load(cfg.ChainsFile)
	if err != nil {
		return &config.Error{Var: "CHAINS_FILE", Msg: err.Error()}
	}
	tel, err := telemetry.Setup(ctx, name, cfg.OTLPEndpoint)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := tel.Shutdown(sctx); serr != nil {
			log.Warn("telemetry shutdown", "err", serr)
		}
	}()

	db, err := sharedpg.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if cfg.MigrateOnStart {
		if _, err := sharedpg.Migrate(ctx, db, log); err != nil {
			return err
		}
	}
	nc, js, err := natsbus.Connect(ctx, cfg.NATSURL, name, log)
	if err != nil {
		return err
	}
	defer func() {
		if derr := nc.Drain(); derr != nil {
			log.Warn("nats drain", "err", derr)
		}
	}()
	if cfg.StreamsProvision {
		if err := provision(ctx, js); err != nil {
			return err
		}
	}
	ops, err := telemetry.StartOps(cfg.OpsAddr, tel.Registry, func(ctx context.Context) error {
		if !nc.IsConnected() {
			return errors.New("nats not connected")
		}
		return db.PingContext(ctx)
	}, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ops.Shutdown(sctx)
	}()

	// The relay publishes every unpublished outbox row, including rows a crashed process left
	// behind; a kick after each commit makes the usual case immediate.
	kick := make(chan struct{}, 1)
	relay := &outbox.Relay{DB: db, JS: js, Log: log, Interval: cfg.OutboxInterval}
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		relay.Run(relayCtx, kick)
	}()
	defer func() {
		stopRelay()
		<-relayDone
	}()

	handler, err := rest.New(rest.Config{
		Store: postgres.New(db), Chains: chainsFile, Wallet: deriver, JS: js,
		AdminToken: cfg.AdminToken, DefaultTTL: cfg.PaymentExpiry, URLPolicy: cfg.Policy(),
		Log: log, Tracer: tel.Tracer, Meter: tel.Meter,
		OutboxKick: func() {
			select {
			case kick <- struct{}{}:
			default:
			}
		},
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
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	ops.SetReady(true)
	log.Info("api running", "addr", ln.Addr().String(), "ops_addr", ops.Addr(), "chains", len(chainsFile.Chains),
		"payment_expiry", cfg.PaymentExpiry.String())

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("api listener: %w", err)
	}
	log.Info("shutting down")
	ops.SetReady(false)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	// Publish what the last requests committed before NATS goes; anything left is published by
	// the next relay to run.
	stopRelay()
	<-relayDone
	if _, err := relay.Flush(sctx); err != nil {
		log.Warn("final outbox flush", "err", err)
	}
	return nil
}

// provision applies the streams the api publishes to: PAYMENTS (payments.created) and
// WEBHOOKS (dead-letter replays).
func provision(ctx context.Context, js jetstream.JetStream) error {
	var ss []jetstream.StreamConfig
	for _, n := range []string{streams.Payments, streams.Webhooks} {
		s, err := streams.Stream(n)
		if err != nil {
			return err
		}
		ss = append(ss, s)
	}
	return natsbus.Provision(ctx, js, ss, nil)
}

// Package service is what every binary does before and after its own work: turn SIGINT/SIGTERM
// into a cancelled context, load the config, answer the `migrate` subcommand, and open (then
// close, in reverse) telemetry, Postgres with migrations, NATS with stream provisioning and the
// ops listener. A service's run function only adds its own consumers and handlers.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sethvargo/go-envconfig"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/logging"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/outbox"
	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/telemetry"
)

// Main runs a binary: `<bin> migrate` applies migrations (it needs only the base variables);
// otherwise its config C is loaded from the environment and validated, and run is called until
// SIGINT/SIGTERM. Tests call run with a config they build.
func Main[C config.Validator](name string, run func(context.Context, C) error) {
	var cfg C
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		var base config.Base
		if err = config.LoadFrom(ctx, &base, envconfig.OsLookuper()); err == nil {
			err = postgres.MigrateURL(ctx, base.DatabaseURL, logging.New(os.Stdout, base.LogLevel, name))
		}
	} else if err = config.Load(ctx, any(&cfg).(config.Validator)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	} else {
		err = run(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Config is a service's configuration: its own variables beside the embedded config.Base.
type Config interface {
	config.Validator
	Common() config.Base
}

// ChainsConfig is a Config that names a CHAINS_FILE: Run loads it into Deps.Chains before
// anything connects, so a bad file stops start-up at once.
type ChainsConfig interface{ ChainsPath() string }

// Provision declares a service's streams and consumers (natsbus.Provisioner) when
// STREAMS_PROVISION is set.
type Provision = natsbus.ProvisionFunc

// Run makes a service's run function (what Main and the tests call) from its start: it loads
// the chains file, opens Deps, calls start with them and closes them when start returns.
func Run[C Config](name string, provision Provision, start func(context.Context, C, *Deps) error) func(context.Context, C) error {
	return func(ctx context.Context, cfg C) error {
		var chainsFile *chains.File
		if cc, ok := any(cfg).(ChainsConfig); ok {
			var err error
			if chainsFile, err = chains.Load(cc.ChainsPath()); err != nil {
				return err
			}
		}
		deps, err := Open(ctx, name, cfg.Common(), provision)
		if err != nil {
			return err
		}
		defer deps.Close()
		deps.Chains = chainsFile
		return start(ctx, cfg, deps)
	}
}

// Deps are a running service's connections.
type Deps struct {
	Name string
	// Chains is the CHAINS_FILE of a ChainsConfig (nil for other services).
	Chains *chains.File
	Log    *slog.Logger
	Tel    *telemetry.Telemetry
	DB     *sqlx.DB
	NC     *nats.Conn
	JS     jetstream.JetStream
	Ops    *telemetry.Ops

	closers    []func()
	cancelWork context.CancelFunc

	readinessMu sync.Mutex
	readiness   []readinessCheck
}

// readinessCheck is one check added by AddReadiness.
type readinessCheck struct {
	name  string
	check func(context.Context) error
}

// WorkContext is the context a service's handlers run on: it survives the shutdown signal, so
// work in flight finishes (and Close then publishes what it wrote), and is cancelled once
// AwaitShutdown's timeout has passed, or by Close.
func (d *Deps) WorkContext(ctx context.Context) context.Context {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancelWork = cancel
	d.onClose(cancel)
	return work
}

// AwaitShutdown blocks until ctx ends (SIGINT/SIGTERM), then marks the service not ready and
// gives the work in flight timeout before WorkContext is cancelled. The caller then stops its
// consumers and returns.
func (d *Deps) AwaitShutdown(ctx context.Context, timeout time.Duration) {
	<-ctx.Done()
	d.Log.Info("shutting down")
	d.Ops.SetReady(false)
	if d.cancelWork != nil {
		t := time.AfterFunc(timeout, d.cancelWork)
		d.onClose(func() { t.Stop() })
	}
}

// Open connects everything in order — telemetry, Postgres (migrating when MIGRATE_ON_START),
// NATS (provisioning when STREAMS_PROVISION), the ops listener — and undoes what it opened if a
// step fails. OTEL_SERVICE_NAME overrides name.
func Open(ctx context.Context, name string, b config.Base, provision Provision) (_ *Deps, err error) {
	if b.ServiceName != "" {
		name = b.ServiceName
	}
	d := &Deps{Name: name, Log: logging.New(os.Stdout, b.LogLevel, name)}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.Tel, err = telemetry.Setup(ctx, name, b.OTLPEndpoint); err != nil {
		return nil, err
	}
	d.onClose(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Tel.Shutdown(sctx); err != nil {
			d.Log.Warn("telemetry shutdown", "err", err)
		}
	})
	if d.DB, err = postgres.Open(ctx, b.DatabaseURL); err != nil {
		return nil, err
	}
	d.onClose(func() { d.DB.Close() })
	if b.MigrateOnStart {
		if _, err = postgres.Migrate(ctx, d.DB, d.Log); err != nil {
			return nil, err
		}
	}
	if d.NC, d.JS, err = natsbus.Connect(ctx, b.NATSURL, name, d.Log); err != nil {
		return nil, err
	}
	d.onClose(func() {
		if err := d.NC.Drain(); err != nil {
			d.Log.Warn("nats drain", "err", err)
		}
	})
	if b.StreamsProvision && provision != nil {
		changes, perr := provision(ctx, d.JS, natsbus.Sizing{Replicas: b.StreamsReplicas})
		for _, c := range changes {
			d.Log.Info("provisioned", "change", c.String())
		}
		if err = perr; err != nil {
			return nil, err
		}
	}
	if d.Ops, err = telemetry.StartOps(b.OpsAddr, d.Tel.Registry, d.ready, d.Log); err != nil {
		return nil, err
	}
	d.onClose(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Ops.Shutdown(sctx)
	})
	return d, nil
}

// StartOutbox starts the outbox relay (outbox.Relay: every unpublished row, including those a
// crashed process left, polled every interval — 0: the relay's default) and returns the wake-up
// to call after a commit that wrote outbox rows, which makes the usual case immediate. The relay
// runs on a context that survives the shutdown signal; Close stops it and then flushes once
// more, so what the last handlers wrote is published before NATS is drained. Anything left is
// published by the next relay to run and deduplicated by its Nats-Msg-Id.
func (d *Deps) StartOutbox(interval time.Duration) (wake func()) {
	relay := &outbox.Relay{DB: d.DB, JS: d.JS, Log: d.Log, Meter: d.Tel.Meter, Interval: interval}
	kick := make(chan struct{}, 1)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		relay.Run(ctx, kick)
	}()
	d.onClose(func() {
		stop()
		<-done
		fctx, cancel := context.WithTimeout(context.Background(), outboxFinalFlush)
		defer cancel()
		if _, err := relay.Flush(fctx); err != nil {
			d.Log.Warn("final outbox flush", "err", err)
		}
	})
	return func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
}

// outboxFinalFlush bounds the last outbox pass at shutdown.
const outboxFinalFlush = 5 * time.Second

// AddReadiness adds a check to /readyz, run after NATS and Postgres on every request (so it
// must be quick: the request gives all checks 2 s); a failure answers 503 with "<name>: <err>".
// A consumer's pull loop, say: AddReadiness("consumer PAYMENTS/sweeper", loop.Bound). Safe to
// call while /readyz is being served.
func (d *Deps) AddReadiness(name string, check func(context.Context) error) {
	d.readinessMu.Lock()
	defer d.readinessMu.Unlock()
	d.readiness = append(d.readiness, readinessCheck{name: name, check: check})
}

// ready is /readyz beyond the service's own flag: NATS connected and Postgres answering, then
// every check AddReadiness added, each failure reported.
func (d *Deps) ready(ctx context.Context) error {
	if !d.NC.IsConnected() {
		return errors.New("nats not connected")
	}
	if err := d.DB.PingContext(ctx); err != nil {
		return err
	}
	d.readinessMu.Lock()
	checks := d.readiness[:len(d.readiness):len(d.readiness)]
	d.readinessMu.Unlock()
	var errs []error
	for _, c := range checks {
		if err := c.check(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

func (d *Deps) onClose(f func()) { d.closers = append(d.closers, f) }

// Close releases everything in reverse order: the outbox relay (with a final flush), ops
// listener, NATS (drained), Postgres, telemetry. Stop consumers and HTTP servers before calling
// it.
func (d *Deps) Close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

// Command devstack runs the whole pipeline on one machine with nothing installed but Go and the
// local Postgres binaries: a nats-server process with JetStream (the pinned release, built from
// the workspace's module), a private Postgres cluster (or DATABASE_URL), a simulated EVM chain
// serving JSON-RPC over HTTP with a block every second, the five services built from this
// checkout, and a demo merchant that verifies every webhook.
// It creates a merchant, an endpoint and two payments (ETH and a 6-decimal token) through the
// REST API, pays them from a customer account, and waits until both are swept to the treasury.
//
//	go run ./deploy/devstack            # from the repository root; -keep to leave it running
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func main() {
	var o options
	flag.BoolVar(&o.keep, "keep", false, "keep running after the demo until Ctrl-C")
	flag.IntVar(&o.natsPort, "nats-port", 14222, "port of the nats-server")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Minute, "give up if the payments are not swept by then")
	flag.StringVar(&o.crash, "crash", "", "SIGKILL and restart this service mid-flow and report paid → swept (scripts/crash-latency.sh)")
	chaos := flag.String("chaos", "", `run the chaos scenarios instead of the demo: "all" (make chaos), "short", or a part of a scenario's name`)
	var co chaosOptions
	flag.DurationVar(&co.Stream, "chaos-stream", 40*time.Second, "how long each chaos scenario makes payments")
	flag.DurationVar(&co.Every, "chaos-every", 500*time.Millisecond, "how often a chaos scenario makes a payment")
	flag.DurationVar(&co.Drain, "chaos-drain", 4*time.Minute, "how long a chaos scenario waits for every payment and event afterwards")
	load := flag.Bool("load", false, "after the demo, measure and print the load and scale figures (scripts/load.sh; LOAD_* variables size it)")
	flag.Parse()
	o.log = slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *chaos != "" {
		o.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		err = runChaosScenarios(ctx, o, *chaos, co, os.Stdout)
	} else if *load {
		o.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		err = runLoad(ctx, o, os.Stdout)
	} else {
		_, err = run(ctx, o)
	}
	testkit.RemoveBuiltNATSServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

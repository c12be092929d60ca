package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// twoOfEach runs every service at two replicas (scanner: a leader and a standby).
var twoOfEach = map[string]int{"webhook-sender": 2, "api": 2, "scanner": 2, "confirmer": 2, "sweeper": 2}

// flappingMerchant fails two requests in five: 5xx, timeouts (held past WEBHOOK_TIMEOUT),
// connection resets; one in ten more is slow but answered.
var flappingMerchant = flapping{Fail5xx: 0.15, Timeout: 0.05, Slow: 0.1, Reset: 0.1, Hang: 3 * time.Second}

// chaosScenarios is `make chaos`: each runs on a stack of its own.
func chaosScenarios() []chaosScenario {
	return []chaosScenario{
		{Name: "service kills", Replicas: twoOfEach, Faults: killInTurn(1500 * time.Millisecond)},
		{Name: "nats-server kill", Faults: during(4*time.Second, 6*time.Second, "nats-server SIGKILLed", killNATS(0))},
		{Name: "nats cluster nodes", NATSNodes: 3, Replicas: map[string]int{"scanner": 2, "sweeper": 2},
			Faults: sequence(
				during(4*time.Second, 8*time.Second, "nats node 1 of 3 SIGKILLed", killNATS(0)),
				during(8*time.Second, 8*time.Second, "nats node 2 of 3 SIGKILLed (node 1 back)", killNATS(1)))},
		{Name: "postgres restart", Faults: during(4*time.Second, 6*time.Second, "Postgres stopped", stopPostgres)},
		{Name: "chain rpc cut, black hole", Faults: sequence(
			during(4*time.Second, 6*time.Second, "chain RPC cut (connections refused)", rpcMode(cut)),
			during(6*time.Second, 10*time.Second, "chain RPC black-holed (accepts, never answers)", rpcMode(blackHole)))},
		{Name: "flapping endpoint", Flap: flappingMerchant},
		{Name: "reorg", Faults: reorgEvery(5*time.Second, 2)},
	}
}

// shortChaos is the version in `make test`: one stack, two replicas of each service, the
// merchant flapping, and in turn a kill of every service, a reorg, the RPC cut and black-holed,
// nats-server killed and Postgres stopped.
func shortChaos() chaosScenario {
	return chaosScenario{Name: "short: all faults in turn", Replicas: twoOfEach, Flap: flappingMerchant,
		Faults: sequence(
			killEach(time.Second),
			reorgAt(time.Second, 2),
			during(time.Second, 3*time.Second, "chain RPC cut", rpcMode(cut)),
			during(time.Second, 4*time.Second, "chain RPC black-holed", rpcMode(blackHole)),
			during(time.Second, 3*time.Second, "nats-server SIGKILLed", killNATS(0)),
			during(time.Second, 3*time.Second, "Postgres stopped", stopPostgres),
		)}
}

// A fault: it breaks something and returns how to restore it.
type fault func(ctx context.Context, c *chaosRun) (restore func() error, err error)

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// during waits after, breaks with f for hold, and restores — also when the stream ends while
// it is broken, so that the drain always runs on a whole stack.
func during(after, hold time.Duration, what string, f fault) func(context.Context, *chaosRun) error {
	return func(ctx context.Context, c *chaosRun) error {
		if !sleep(ctx, after) {
			return nil
		}
		restore, err := f(ctx, c)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		c.note("%s for %v", what, hold)
		sleep(ctx, hold)
		if err := restore(); err != nil {
			return fmt.Errorf("restoring after %s: %w", what, err)
		}
		return nil
	}
}

// sequence runs steps one after another while the stream lasts.
func sequence(steps ...func(context.Context, *chaosRun) error) func(context.Context, *chaosRun) error {
	return func(ctx context.Context, c *chaosRun) error {
		for _, step := range steps {
			if ctx.Err() != nil {
				return nil
			}
			if err := step(ctx, c); err != nil {
				return err
			}
		}
		return nil
	}
}

// killProcess SIGKILLs the process name; restoring starts it again.
func killProcess(name string) fault {
	return func(ctx context.Context, c *chaosRun) (func() error, error) {
		c.s.kill(name)
		return func() error { return c.s.start(name) }, nil
	}
}

// killEach SIGKILLs every service once (its first process), restarted after down.
func killEach(down time.Duration) func(context.Context, *chaosRun) error {
	var steps []func(context.Context, *chaosRun) error
	for _, svc := range services {
		steps = append(steps, during(500*time.Millisecond, down, svc+" SIGKILLed", killProcess(svc)))
	}
	return sequence(steps...)
}

// killInTurn SIGKILLs each service in turn, first one replica, then the other, and so on while
// the stream lasts; each is restarted after down (a supervisor's restart).
func killInTurn(down time.Duration) func(context.Context, *chaosRun) error {
	return func(ctx context.Context, c *chaosRun) error {
		if !sleep(ctx, 3*time.Second) {
			return nil
		}
		for round := 0; ctx.Err() == nil; round++ {
			for _, svc := range services {
				name := svc
				if round%2 == 1 {
					name = svc + "-2"
				}
				if err := during(time.Second, down, name+" SIGKILLed", killProcess(name))(ctx, c); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// killNATS SIGKILLs nats-server node i; restoring starts it again on its port and store.
func killNATS(i int) fault {
	return func(ctx context.Context, c *chaosRun) (func() error, error) {
		n := c.s.natsNodes[i]
		n.Kill()
		return n.Restart, nil
	}
}

// stopPostgres stops the stack's Postgres ("fast": every session is cut).
func stopPostgres(ctx context.Context, c *chaosRun) (func() error, error) {
	if err := c.s.pg.Stop(); err != nil {
		return nil, err
	}
	return c.s.pg.Start, nil
}

// rpcMode switches the services' way to the chain to m.
func rpcMode(m proxyMode) fault {
	return func(ctx context.Context, c *chaosRun) (func() error, error) {
		if err := c.s.rpcProxy.Set(m); err != nil {
			return nil, err
		}
		return func() error { return c.s.rpcProxy.Set(forward) }, nil
	}
}

// reorgAt replaces the chain's last depth blocks after a wait.
func reorgAt(after time.Duration, depth uint64) func(context.Context, *chaosRun) error {
	return func(ctx context.Context, c *chaosRun) error {
		if !sleep(ctx, after) {
			return nil
		}
		from, err := c.s.chain.reorg(ctx, depth)
		if err != nil {
			return err
		}
		c.note("reorg of %d blocks from block %d", depth, from)
		return nil
	}
}

// reorgEvery replaces the chain's last depth blocks every period while the stream lasts (at
// most as many times as the chain has reorg accounts).
func reorgEvery(period time.Duration, depth uint64) func(context.Context, *chaosRun) error {
	return func(ctx context.Context, c *chaosRun) error {
		for i := 0; i < 12 && ctx.Err() == nil; i++ {
			if err := reorgAt(period, depth)(ctx, c); err != nil {
				return err
			}
		}
		return nil
	}
}

// runChaosScenarios runs the scenarios whose names match only (all when empty) one after
// another, prints the table and fails if any scenario lost or doubled anything.
func runChaosScenarios(ctx context.Context, o options, only string, co chaosOptions, out io.Writer) error {
	// Each scenario's nats-server on a free port: another stack may hold the demo's.
	o.natsPort = 0
	var reports []*chaosReport
	for _, sc := range append(chaosScenarios(), shortChaos()) {
		if only == "all" && strings.HasPrefix(sc.Name, "short") {
			continue
		}
		if only != "all" && !strings.Contains(sc.Name, only) {
			continue
		}
		o.log.Info("chaos scenario", "name", sc.Name)
		rep, err := runChaos(ctx, o, sc, co)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.Name, err)
		}
		reports = append(reports, rep)
		fmt.Fprintln(out, chaosTable([]*chaosReport{rep}))
	}
	if len(reports) == 0 {
		return fmt.Errorf("no chaos scenario matches %q", only)
	}
	fmt.Fprintf(out, "\n== chaos: %d scenarios, %s, %v payments every %v ==\n%s\n", len(reports), time.Now().UTC().Format("2006-01-02"), co.Stream, co.Every, chaosTable(reports))
	var failed []string
	for _, r := range reports {
		for _, f := range r.Failures {
			failed = append(failed, r.Scenario+": "+f)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("chaos failed:\n  %s", strings.Join(failed, "\n  "))
	}
	return nil
}

// chaosTable is the reports as a Markdown table, then each scenario's faults.
func chaosTable(rs []*chaosReport) string {
	var b strings.Builder
	b.WriteString("| scenario | payments | events | webhooks delivered | duplicates | lost | dead-lettered | double confirmations | double sweeps | paid → confirmed webhook p50 / p99 | failed requests to the merchant |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %.1f s / %.1f s | %d |\n", r.Scenario, r.Payments, r.Events, r.Webhooks,
			r.Duplicates, r.Lost, r.DeadLettered, r.DoubleConfirmations, r.DoubleSweeps, r.P50.Seconds(), r.P99.Seconds(), r.FailedRequests)
	}
	for _, r := range rs {
		fmt.Fprintf(&b, "\n%s (%v): %s", r.Scenario, r.Elapsed.Round(time.Second), strings.Join(r.Faults, "; "))
		if len(r.DeadLetterReasons) > 0 {
			fmt.Fprintf(&b, "; dead letters by reason: %v", r.DeadLetterReasons)
		}
		if len(r.Failures) > 0 {
			fmt.Fprintf(&b, "\n  FAILED: %s", strings.Join(r.Failures, "\n  FAILED: "))
		}
	}
	return b.String()
}

package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// The short chaos run (make chaos runs the long one, a scenario per fault): every service at
// two replicas, a merchant that fails two requests in five, and in turn a SIGKILL of every
// service, a reorg of two blocks (confirmations: 3), the chain RPC cut then black-holed,
// nats-server SIGKILLed and Postgres stopped, while payments stream in. Nothing may be lost or
// doubled: every event on PAYMENTS reaches the merchant or the dead letters, every payment is
// swept by one transaction, each confirmed once, and the treasury holds exactly what was paid
// (less the mined sweeps' fees).
func TestChaosShort(t *testing.T) {
	ctx := systemTest(t, "builds and runs every service at two replicas under faults", 8*time.Minute)
	natsPort, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runChaos(ctx, options{natsPort: natsPort, log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		shortChaos(), chaosOptions{Stream: 30 * time.Second, Every: 700 * time.Millisecond, Drain: 4 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", chaosTable([]*chaosReport{rep}))
	for _, f := range rep.Failures {
		t.Error(f)
	}
	// Every fault ran.
	faults := strings.Join(rep.Faults, "; ")
	for _, svc := range services {
		if !strings.Contains(faults, svc+" SIGKILLed") {
			t.Errorf("%s was not killed: %s", svc, faults)
		}
	}
	for _, want := range []string{"reorg of 2 blocks", "chain RPC cut", "chain RPC black-holed", "nats-server SIGKILLed", "Postgres stopped"} {
		if !strings.Contains(faults, want) {
			t.Errorf("fault %q did not run: %s", want, faults)
		}
	}
	// The run made what it accounts for, and the accounting adds up.
	if rep.Payments < 20 || rep.Events < 4*rep.Payments {
		t.Errorf("%d payments with %d events: want at least 20 payments and 4 events each", rep.Payments, rep.Events)
	}
	if rep.Webhooks+rep.DeadLettered+rep.Lost != rep.Events {
		t.Errorf("%d events, but %d delivered + %d dead-lettered + %d lost", rep.Events, rep.Webhooks, rep.DeadLettered, rep.Lost)
	}
	if rep.FailedRequests == 0 {
		t.Error("the merchant failed no request: the endpoint did not flap")
	}
}

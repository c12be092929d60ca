package main

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// systemTest skips in -short mode (the test builds and runs service processes: what), and
// returns a context that ends after timeout or with the test.
func systemTest(t *testing.T, what string, timeout time.Duration) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip(what)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// The system test: the real binaries against a chain served over HTTP. Every service is killed
// with SIGKILL and restarted once both payments are detected; both must still reach swept with
// each status change made once, one sweep transaction per kind, the treasury credited once, and
// every webhook type delivered.
func TestPaymentsReachSweptThroughServiceCrashes(t *testing.T) {
	ctx := systemTest(t, "builds and runs every service", 5*time.Minute)
	t.Setenv("DATABASE_URL", testkit.MustDatabaseURL(t))
	natsPort, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var restarted []string
	res, err := run(ctx, options{
		natsPort: natsPort,
		timeout:  3 * time.Minute,
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		midFlow: func(s *stack) ([]string, error) {
			for _, svc := range services {
				s.kill(svc)
				if err := s.start(svc); err != nil {
					return nil, err
				}
				restarted = append(restarted, svc)
			}
			return nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(restarted) != len(services) {
		t.Fatalf("restarted %v", restarted)
	}
	// The contract, walked over every event type the merchant received.
	if len(res.Missing) > 0 {
		t.Errorf("webhooks break the event contract: %v", res.Missing)
	}
	for _, id := range res.Payments {
		got := res.Events[id]
		want := []string{"payment.created", "payment.detected", "payment.confirmed", "payment.swept"}
		for _, w := range want {
			if count(got, w) != 1 {
				t.Errorf("payment %s: webhooks %v, want each of %v once", id, got, want)
				break
			}
		}
	}
	for _, id := range res.Payments {
		// A figure, not a timed assertion: it must exist and be causal (after the block).
		if res.ConfirmLatency[id] <= 0 {
			t.Errorf("payment %s: no block→payments.confirmed latency measured (%v)", id, res.ConfirmLatency[id])
		}
		t.Logf("payment %s: confirming block → payments.confirmed %v", id, res.ConfirmLatency[id])
	}
	// The treasury got the token amount exactly once and the ETH minus one sweep fee.
	if res.Treasury.Token.Cmp(big.NewInt(25_750_000)) != 0 {
		t.Errorf("treasury token balance %s, want 25750000", res.Treasury.Token)
	}
	paid, _ := new(big.Int).SetString("12500000000000000000", 10)
	fee := new(big.Int).Sub(paid, res.Treasury.ETH)
	if fee.Sign() <= 0 || fee.Cmp(big.NewInt(1e15)) > 0 {
		t.Errorf("treasury ETH %s: fee %s outside (0, 0.001 ETH] — swept twice or not at all?", res.Treasury.ETH, fee)
	}

	db, err := postgres.Open(ctx, res.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range res.Payments {
		// Each change once, forward only. A confirmer restarted before it handled the
		// detection counts the confirmations first (the scanner recorded the transfer) and goes
		// pending → confirmed; the merchant still got payment.detected, from the scanner.
		changes := strings.Join(statusChanges(t, db, id), " ")
		if changes != "pending>detected detected>confirmed confirmed>swept" && changes != "pending>confirmed confirmed>swept" {
			t.Errorf("payment %s status changes %q, want pending>detected>confirmed>swept (or pending>confirmed>swept), each once", id, changes)
		}
	}
	var sweeps []struct {
		PaymentID string `db:"payment_id"`
		Kind      string `db:"kind"`
	}
	if err := db.Select(&sweeps, `SELECT payment_id, kind FROM sweeps ORDER BY payment_id, kind`); err != nil {
		t.Fatal(err)
	}
	if len(sweeps) != 3 { // native for ETH; gas_topup + token for USDC
		t.Fatalf("sweeps %+v, want native, gas_topup and token once each", sweeps)
	}
}

func statusChanges(t *testing.T, db *sqlx.DB, paymentID string) []string {
	t.Helper()
	var rows []string
	if err := db.Select(&rows, `SELECT from_status || '>' || to_status FROM payment_status_changes WHERE payment_id = $1 ORDER BY id`, paymentID); err != nil {
		t.Fatal(err)
	}
	return rows
}

func count(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

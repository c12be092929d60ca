package main

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/streams"
)

// Production's shape on one machine: a three-node JetStream cluster with every stream at R3,
// the five services across it with two scanners (a leader and a standby) and two sweepers.
// Once the first payments are detected, the leading scanner is SIGKILLed — the standby takes
// the chain over — and a NATS node is SIGKILLed; two more payments are made while it is down,
// then it is restarted. Every payment reaches swept with every webhook delivered once, each
// sweep transaction is signed once, and nothing is lost.
func TestClusterSurvivesANodeAndTheLeadingScanner(t *testing.T) {
	ctx := systemTest(t, "builds and runs every service on a three-node nats-server cluster", 5*time.Minute)
	t.Setenv("DATABASE_URL", testkit.MustDatabaseURL(t))
	var takeover time.Duration
	var replicas map[string]int
	res, err := run(ctx, options{
		natsNodes: 3,
		replicas:  map[string]int{"scanner": 2, "sweeper": 2},
		// A delivery retried while a node was down may come after the payment's later ones.
		await:   []string{"payment.created", "payment.detected", "payment.confirmed", "payment.swept"},
		timeout: 3 * time.Minute,
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		midFlow: func(s *stack) ([]string, error) {
			var err error
			if replicas, err = streamReplicas(ctx, s.natsURL); err != nil {
				return nil, err
			}
			leader, err := s.leaseHolder(ctx)
			if err != nil || leader == 0 {
				t.Errorf("no scanner leads the chain (pid %d, %v)", leader, err)
			}
			killed := time.Now()
			s.kill("scanner")
			if err := s.waitFor1(ctx, "the standby scanner taking the chain over", func() (bool, error) {
				pid, err := s.leaseHolder(ctx)
				return pid != 0 && pid != leader, err
			}); err != nil {
				return nil, err
			}
			takeover = time.Since(killed)

			node := s.natsNodes[1]
			node.Kill()
			var more []string
			for _, amount := range []string{"0.5", "0.25"} {
				id, err := s.payETH(ctx, amount)
				if err != nil {
					return nil, err
				}
				more = append(more, id)
			}
			// Down long enough for the payments to be scanned, published and acted on by the rest.
			time.Sleep(3 * time.Second)
			if err := node.Restart(); err != nil {
				return nil, err
			}
			return more, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range replicas {
		if r != 3 {
			t.Errorf("stream %s at R%d, want R3 (STREAMS_REPLICAS=3)", name, r)
		}
	}
	if len(res.Payments) != 4 {
		t.Fatalf("%d payments, want 4", len(res.Payments))
	}
	if len(res.Missing) > 0 {
		t.Errorf("webhooks break the event contract: %v", res.Missing)
	}
	webhooks, lost := 0, 0
	for _, id := range res.Payments {
		got := res.Events[id]
		webhooks += len(got)
		for _, w := range []string{"payment.created", "payment.detected", "payment.confirmed", "payment.swept"} {
			if n := count(got, w); n != 1 {
				t.Errorf("payment %s: %d %s webhooks (got %v), want 1", id, n, w, got)
				lost++
			}
		}
	}
	t.Logf("cluster: %d payments swept, %d webhooks delivered, scanner takeover %v after SIGKILL, %d lost",
		len(res.Payments), webhooks, takeover.Round(time.Millisecond), lost)

	db, err := postgres.Open(ctx, res.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var sweeps []struct {
		PaymentID string `db:"payment_id"`
		Kind      string `db:"kind"`
		N         int    `db:"n"`
	}
	if err := db.Select(&sweeps, `SELECT payment_id, kind, count(*) AS n FROM sweeps GROUP BY payment_id, kind ORDER BY payment_id, kind`); err != nil {
		t.Fatal(err)
	}
	if len(sweeps) != 5 { // native for each of the three ETH payments; gas_topup + token for USDC
		t.Errorf("sweeps %+v, want one native per ETH payment and gas_topup + token for USDC", sweeps)
	}
	for _, sw := range sweeps {
		if sw.N != 1 {
			t.Errorf("payment %s: %d %s sweep transactions signed by two sweepers, want 1", sw.PaymentID, sw.N, sw.Kind)
		}
	}
	if res.Treasury.Token.Cmp(big.NewInt(25_750_000)) != 0 {
		t.Errorf("treasury token balance %s, want 25750000", res.Treasury.Token)
	}
	paid, _ := new(big.Int).SetString("13250000000000000000", 10) // 12.5 + 0.5 + 0.25 ETH
	if fee := new(big.Int).Sub(paid, res.Treasury.ETH); fee.Sign() <= 0 || fee.Cmp(big.NewInt(3e15)) > 0 {
		t.Errorf("treasury ETH %s: fees %s outside (0, 0.003 ETH] for three sweeps", res.Treasury.ETH, fee)
	}
}

// streamReplicas is every stream's replica count.
func streamReplicas(ctx context.Context, url string) (map[string]int, error) {
	nc, js, err := connectJS(url)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	out := map[string]int{}
	for _, name := range []string{streams.Payments, streams.Chain, streams.Webhooks, streams.DLQ} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return nil, err
		}
		out[name] = st.CachedInfo().Config.Replicas
	}
	return out, nil
}

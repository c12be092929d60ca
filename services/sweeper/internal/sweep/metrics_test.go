package sweep_test

import (
	"context"
	"math/big"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/sweep"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// A token sweep with a gas top-up counts one swept sweep and, per kind, the gas its receipts
// used and the fee they paid (gas used × effective price, in ETH); a dust payment counts a
// failed sweep with its reason; the gas tank gauge is the tank's balance on chain.
func TestSweepMetricsCountOutcomesGasAndFees(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	m := telemetrytest.NewMeter(t)
	p := w.paidTokenPayment(t, big.NewInt(2_000_000))
	cfg := w.sweeper(p.Treasury).Config
	cfg.Meter = m
	s, err := sweep.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sweep(ctx, p.Body); err != nil {
		t.Fatal(err)
	}
	chain := attribute.Int64("chain_id", chainID)
	for _, kind := range []string{sweep.TxGasTopup, sweep.TxToken} {
		var gas uint64
		fee := new(big.Int)
		for _, tx := range w.sweeps(t, p.ID) {
			if tx.Kind != kind || tx.Status != sweep.StatusMined {
				continue
			}
			r, err := w.chain.Client().TransactionReceipt(ctx, tx.Hash)
			if err != nil {
				t.Fatal(err)
			}
			gas += r.GasUsed
			fee.Add(fee, new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice))
		}
		if gas == 0 {
			t.Fatalf("no mined %s transaction", kind)
		}
		k := attribute.String("kind", kind)
		if got, _ := m.Value(t, "ctrip.sweep.gas", chain, k); got != float64(gas) {
			t.Errorf("%s gas %v, want %d", kind, got, gas)
		}
		want, _ := new(big.Float).Quo(new(big.Float).SetInt(fee), big.NewFloat(1e18)).Float64()
		if got, _ := m.Value(t, "ctrip.sweep.fee", chain, k); got != want {
			t.Errorf("%s fee %v ETH, want %v", kind, got, want)
		}
	}
	if got, _ := m.Value(t, "ctrip.sweep.sweeps", chain, attribute.String("token", "USDC"), attribute.String("outcome", sweep.OutcomeSwept)); got != 1 {
		t.Errorf("swept sweeps %v, want 1", got)
	}

	dust := w.newPayment(t, nil, big.NewInt(1000))
	w.fundETH(t, dust.Deposit, big.NewInt(1000))
	if err := s.Sweep(ctx, dust.Body); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Value(t, "ctrip.sweep.sweeps", chain, attribute.String("outcome", sweep.OutcomeFailed), attribute.String("reason", "dust")); got != 1 {
		t.Errorf("failed sweeps (dust) %v, want 1", got)
	}

	stop, err := s.WatchGauges(ctx, m, time.Hour, w.store)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	balance, err := w.chain.Client().BalanceAt(ctx, w.gasTank.Address, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := new(big.Float).Quo(new(big.Float).SetInt(balance), big.NewFloat(1e18)).Float64()
	testkit.Eventually(t, 10*time.Second, "the gas tank's balance", func() bool {
		got, _ := m.Value(t, "ctrip.gas_tank.balance", chain, attribute.String("token", "ETH"))
		return got == want
	})
	if got, ok := m.Value(t, "ctrip.sweep.replacements.pending", chain); !ok || got != 0 {
		t.Errorf("pending replacements %v (reported %v), want 0", got, ok)
	}
}

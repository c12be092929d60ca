package sweep

import (
	"context"
	"math"
	"math/big"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/ctrip-pay/pipeline/shared/periodic"
)

// Sweep outcomes (the outcome label of ctrip.sweep.sweeps).
const (
	OutcomeSwept = "swept"
	// OutcomeFailed: payments.sweep_failed, the payment stays confirmed; reason is the code.
	OutcomeFailed = "failed"
	// OutcomeMaxFeeReached: a waiting transaction cannot be re-priced within max_fee_gwei
	// (reported, and the sweep goes on waiting).
	OutcomeMaxFeeReached = ReasonMaxFeeReached
)

// DefaultGaugeInterval is how often WatchGauges reads the gas tank and the ledger.
const DefaultGaugeInterval = 30 * time.Second

// metrics are the sweeper's instruments. Labels: chain_id, token (symbol), outcome, reason
// (a failure code), kind (native, gas_topup, token) — never a payment or an address.
type metrics struct {
	sweeps metric.Int64Counter
	gas    metric.Int64Counter
	fee    metric.Float64Counter
}

func newMetrics(m metric.Meter) metrics {
	if m == nil {
		m = noop.NewMeterProvider().Meter("sweep")
	}
	var x metrics
	// Instrument creation fails only on an invalid name; these are constants.
	x.sweeps, _ = m.Int64Counter("ctrip.sweep.sweeps", metric.WithUnit("{sweep}"),
		metric.WithDescription("Sweep rounds ended, by outcome: swept, failed (with reason), max_fee_reached"))
	x.gas, _ = m.Int64Counter("ctrip.sweep.gas", metric.WithUnit("{gas}"),
		metric.WithDescription("Gas used by sweep transactions with a receipt (reverted ones too), by kind"))
	x.fee, _ = m.Float64Counter("ctrip.sweep.fee",
		metric.WithDescription("Fees paid by sweep transactions (gas used × effective gas price) in the chain's native coin, e.g. ETH; a figure for operators, not an amount of money to account with"))
	return x
}

func (m metrics) ended(ctx context.Context, j *job, outcome, reason string) {
	attrs := []attribute.KeyValue{attribute.Int64("chain_id", j.p.ChainID), attribute.String("token", j.p.Token), attribute.String("outcome", outcome)}
	if reason != "" {
		attrs = append(attrs, attribute.String("reason", reason))
	}
	m.sweeps.Add(ctx, 1, metric.WithAttributes(attrs...))
}

// spent records the gas and fee of a transaction's receipt, once: when its status is first
// set from it.
func (m metrics) spent(ctx context.Context, j *job, tx Tx, r *types.Receipt) {
	attrs := metric.WithAttributes(attribute.Int64("chain_id", tx.ChainID), attribute.String("kind", tx.Kind), attribute.String("token", j.net.Chain.Native.Symbol))
	m.gas.Add(ctx, int64(r.GasUsed), attrs)
	if r.EffectiveGasPrice != nil {
		wei := new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice)
		m.fee.Add(ctx, coins(wei, j.net.Chain.Native.Decimals), attrs)
	}
}

// coins is an amount of base units in whole coins, as a float for a metric.
func coins(baseUnits *big.Int, decimals int) float64 {
	f, _ := new(big.Float).Quo(new(big.Float).SetInt(baseUnits), big.NewFloat(math.Pow10(decimals))).Float64()
	return f
}

// ReplacementCounter counts re-priced sweep transactions waiting for a receipt, per chain
// (postgres.Store).
type ReplacementCounter interface {
	PendingReplacements(ctx context.Context) (map[int64]int64, error)
}

// WatchGauges exports what is read rather than counted, refreshed every interval
// (DefaultGaugeInterval when 0) by one goroutine rather than on each scrape, so Prometheus
// never adds load to the chain's node:
//
//	ctrip.gas_tank.balance           {chain_id, token}  the gas tank's balance in native coins
//	ctrip.sweep.replacements.pending {chain_id}         re-priced transactions still waiting
//
// A chain whose balance cannot be read is left out until it can. stop ends the polling.
func (s *Sweeper) WatchGauges(ctx context.Context, m metric.Meter, interval time.Duration, ledger ReplacementCounter) (stop func(), err error) {
	if interval <= 0 {
		interval = DefaultGaugeInterval
	}
	balance, err := m.Float64ObservableGauge("ctrip.gas_tank.balance",
		metric.WithDescription("Gas tank balance in the chain's native coin (e.g. ETH): what pays token sweeps' gas top-ups"))
	if err != nil {
		return nil, err
	}
	pending, err := m.Int64ObservableGauge("ctrip.sweep.replacements.pending", metric.WithUnit("{transaction}"),
		metric.WithDescription("Re-priced sweep transactions still waiting for a receipt"))
	if err != nil {
		return nil, err
	}
	var (
		mu       sync.Mutex
		balances = map[int64]float64{}
		waiting  map[int64]int64
	)
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		mu.Lock()
		defer mu.Unlock()
		for id, b := range balances {
			o.ObserveFloat64(balance, b, metric.WithAttributes(attribute.Int64("chain_id", id), attribute.String("token", s.Networks[id].Chain.Native.Symbol)))
		}
		for id := range s.Networks {
			o.ObserveInt64(pending, waiting[id], metric.WithAttributes(attribute.Int64("chain_id", id)))
		}
		return nil
	}, balance, pending)
	if err != nil {
		return nil, err
	}
	refresh := func(ctx context.Context) bool {
		s.readGauges(ctx, ledger, &mu, balances, &waiting)
		return true
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		refresh(ctx)
		periodic.Every(ctx, interval, refresh)
	}()
	return func() {
		cancel()
		<-done
		_ = reg.Unregister() // fails only for a registration of another meter
	}, nil
}

func (s *Sweeper) readGauges(ctx context.Context, ledger ReplacementCounter, mu *sync.Mutex, balances map[int64]float64, waiting *map[int64]int64) {
	if s.GasTank != nil {
		tank := crypto.PubkeyToAddress(s.GasTank.PublicKey)
		for id, net := range s.Networks {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			wei, err := net.Client.BalanceAt(cctx, tank, nil)
			cancel()
			mu.Lock()
			if err != nil {
				delete(balances, id)
			} else {
				balances[id] = coins(wei, net.Chain.Native.Decimals)
			}
			mu.Unlock()
			if err != nil && ctx.Err() == nil {
				s.Log.Warn("gas tank balance for metrics", "chain_id", id, "err", err)
			}
		}
	}
	if ledger == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	n, err := ledger.PendingReplacements(cctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Warn("pending replacements for metrics", "err", err)
		}
		return
	}
	mu.Lock()
	*waiting = n
	mu.Unlock()
}

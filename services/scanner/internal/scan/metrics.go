package scan

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Metrics are the scanner's instruments, labelled by chain_id. The head figures are those of
// the chains this replica leads: Forget drops a chain's when its scanner stops, so a standby
// replica reports none (and no stale head age).
type Metrics struct {
	blocks  metric.Int64Counter
	detects metric.Int64Counter
	reorgs  metric.Int64Counter
	depth   metric.Int64Histogram
	retries metric.Int64Counter
	reads   metric.Int64Counter
	blind   metric.Int64Counter

	now   func() time.Time
	mu    sync.Mutex
	heads map[int64]*headFigures
}

// headFigures is what the head gauges report for one chain.
type headFigures struct {
	head, cursor uint64
	scanned      bool      // a block has been committed since the scanner started
	advanced     time.Time // when head last rose
}

// NewMetrics creates the instruments on m (nil: no-op).
func NewMetrics(m metric.Meter) *Metrics {
	if m == nil {
		m = noop.NewMeterProvider().Meter("scanner")
	}
	x := &Metrics{now: time.Now, heads: map[int64]*headFigures{}}
	// Instrument creation fails only on an invalid name; these are constants.
	x.blocks, _ = m.Int64Counter("ctrip.scanner.blocks", metric.WithUnit("{block}"), metric.WithDescription("Blocks processed"))
	x.detects, _ = m.Int64Counter("ctrip.scanner.transfers.detected", metric.WithUnit("{transfer}"), metric.WithDescription("payments.detected events published"))
	x.reorgs, _ = m.Int64Counter("ctrip.scanner.reorgs", metric.WithUnit("{reorg}"), metric.WithDescription("Reorgs detected"))
	x.depth, _ = m.Int64Histogram("ctrip.scanner.reorg.depth", metric.WithUnit("{block}"), metric.WithDescription("Blocks orphaned per reorg"),
		metric.WithExplicitBucketBoundaries(1, 2, 3, 5, 10, 20, 50, 100))
	x.retries, _ = m.Int64Counter("ctrip.scanner.retries", metric.WithUnit("{retry}"), metric.WithDescription("Failed RPC, database or JetStream calls retried, by op"))
	x.reads, _ = m.Int64Counter("ctrip.scanner.balance_reads", metric.WithUnit("{call}"), metric.WithDescription("eth_getBalance calls of balance reconciliation"))
	x.blind, _ = m.Int64Counter("ctrip.scanner.blocks.untraced", metric.WithUnit("{block}"), metric.WithDescription("Blocks the node could not trace: transfers inside their transactions not seen"))
	head, _ := m.Int64ObservableGauge("ctrip.chain.head", metric.WithUnit("{block}"), metric.WithDescription("Chain head block number, as last read from the node"))
	cursor, _ := m.Int64ObservableGauge("ctrip.scanner.cursor", metric.WithUnit("{block}"), metric.WithDescription("Last block processed and committed"))
	lag, _ := m.Int64ObservableGauge("ctrip.chain.head.lag", metric.WithUnit("{block}"), metric.WithDescription("Blocks between the chain head and the last block committed: how far detection is behind"))
	age, _ := m.Float64ObservableGauge("ctrip.chain.head.age", metric.WithUnit("s"), metric.WithDescription("Seconds since the chain head last advanced: a node that stopped following its chain keeps answering the same head"))
	_, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		x.mu.Lock()
		defer x.mu.Unlock()
		now := x.now()
		for id, f := range x.heads {
			attrs := chainAttr(id)
			o.ObserveInt64(head, int64(f.head), attrs)
			o.ObserveFloat64(age, now.Sub(f.advanced).Seconds(), attrs)
			if f.scanned {
				o.ObserveInt64(cursor, int64(f.cursor), attrs)
				o.ObserveInt64(lag, int64(subFloor(f.head, f.cursor)), attrs)
			}
		}
		return nil
	}, head, cursor, lag, age)
	return x
}

func chainAttr(id int64) metric.MeasurementOption {
	return metric.WithAttributes(attribute.Int64("chain_id", id))
}

// Forget drops the chain's head figures: its scanner stopped (the lease went to another
// replica, or the service is stopping).
func (m *Metrics) Forget(chainID int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.heads, chainID)
}

// figures is the chain's head figures, created at the first head; callers hold m.mu.
func (m *Metrics) figures(chainID int64) *headFigures {
	f, ok := m.heads[chainID]
	if !ok {
		f = &headFigures{advanced: m.now()}
		m.heads[chainID] = f
	}
	return f
}

func (m *Metrics) committed(ctx context.Context, chainID int64, blocks int, last uint64) {
	m.blocks.Add(ctx, int64(blocks), chainAttr(chainID))
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.figures(chainID)
	f.cursor, f.scanned = last, true
}

// observeHead records a head read from the node. Only a higher number advances it (as
// chains.HeadWatch): the same head again, or a lower one from a node behind a load balancer,
// leaves the age growing.
func (m *Metrics) observeHead(_ context.Context, chainID int64, n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, known := m.heads[chainID]
	f := m.figures(chainID)
	if !known || n > f.head {
		f.head, f.advanced = n, m.now()
	}
}

func (m *Metrics) detected(ctx context.Context, chainID int64, n int) {
	m.detects.Add(ctx, int64(n), chainAttr(chainID))
}

func (m *Metrics) reorg(ctx context.Context, chainID int64, depth uint64) {
	m.reorgs.Add(ctx, 1, chainAttr(chainID))
	m.depth.Record(ctx, int64(depth), chainAttr(chainID))
}

func (m *Metrics) balanceReads(ctx context.Context, chainID int64, n int) {
	m.reads.Add(ctx, int64(n), chainAttr(chainID))
}

func (m *Metrics) untraced(ctx context.Context, chainID int64) {
	m.blind.Add(ctx, 1, chainAttr(chainID))
}

func (m *Metrics) retry(ctx context.Context, chainID int64, op string) {
	m.retries.Add(ctx, 1, metric.WithAttributes(attribute.Int64("chain_id", chainID), attribute.String("op", op)))
}

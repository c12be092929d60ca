package scan

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Metrics are the scanner's instruments, labelled by chain_id.
type Metrics struct {
	blocks  metric.Int64Counter
	detects metric.Int64Counter
	reorgs  metric.Int64Counter
	depth   metric.Int64Histogram
	retries metric.Int64Counter
	head    metric.Int64Gauge
	scanned metric.Int64Gauge
	reads   metric.Int64Counter
	blind   metric.Int64Counter
}

// NewMetrics creates the instruments on m (nil: no-op).
func NewMetrics(m metric.Meter) *Metrics {
	if m == nil {
		m = noop.NewMeterProvider().Meter("scanner")
	}
	x := &Metrics{}
	// Instrument creation fails only on an invalid name; these are constants.
	x.blocks, _ = m.Int64Counter("scanner_blocks", metric.WithDescription("blocks processed"))
	x.detects, _ = m.Int64Counter("scanner_transfers_detected", metric.WithDescription("payments.detected events published"))
	x.reorgs, _ = m.Int64Counter("scanner_reorgs", metric.WithDescription("reorgs detected"))
	x.depth, _ = m.Int64Histogram("scanner_reorg_depth", metric.WithDescription("blocks orphaned per reorg"))
	x.retries, _ = m.Int64Counter("scanner_retries", metric.WithDescription("failed RPC, database or JetStream calls retried"))
	x.head, _ = m.Int64Gauge("scanner_chain_head", metric.WithDescription("chain head block number"))
	x.scanned, _ = m.Int64Gauge("scanner_cursor", metric.WithDescription("last processed block number"))
	x.reads, _ = m.Int64Counter("scanner_balance_reads", metric.WithDescription("eth_getBalance calls of balance reconciliation"))
	x.blind, _ = m.Int64Counter("scanner_blocks_untraced", metric.WithDescription("blocks the node could not trace: transfers inside their transactions not seen"))
	return x
}

func chainAttr(id int64) metric.MeasurementOption {
	return metric.WithAttributes(attribute.Int64("chain_id", id))
}

func (m *Metrics) committed(ctx context.Context, chainID int64, blocks int, last uint64) {
	m.blocks.Add(ctx, int64(blocks), chainAttr(chainID))
	m.scanned.Record(ctx, int64(last), chainAttr(chainID))
}

func (m *Metrics) observeHead(ctx context.Context, chainID int64, n uint64) {
	m.head.Record(ctx, int64(n), chainAttr(chainID))
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

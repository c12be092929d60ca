package webhook

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ctrip-pay/pipeline/shared/telemetry"
)

type deliveryMetrics struct {
	outcomes          metric.Int64Counter
	delivered         metric.AddOption // the common outcome's attributes, built once
	latency           metric.Float64Histogram
	recordFailures    metric.Int64Counter
	endpointsDisabled metric.Int64Counter
}

func newDeliveryMetrics(m metric.Meter) (deliveryMetrics, error) {
	dm := deliveryMetrics{delivered: metric.WithAttributes(attribute.String("outcome", "delivered"))}
	var err error
	if dm.outcomes, err = m.Int64Counter("ctrip.webhook.deliveries", metric.WithUnit("{delivery}"),
		metric.WithDescription("Delivery outcomes: delivered, retry, exhausted, terminated, deferred, continued (interrupted by shutdown), store_wait (held while Postgres is down)")); err != nil {
		return dm, err
	}
	if dm.latency, err = m.Float64Histogram("ctrip.webhook.attempt.duration", metric.WithUnit("s"), telemetry.DurationBuckets,
		metric.WithDescription("HTTP attempt latency")); err != nil {
		return dm, err
	}
	if dm.recordFailures, err = m.Int64Counter("ctrip.webhook.attempt.record_failures", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts that could not be written to Postgres")); err != nil {
		return dm, err
	}
	if dm.endpointsDisabled, err = m.Int64Counter("ctrip.webhook.endpoints.disabled", metric.WithUnit("{endpoint}"),
		metric.WithDescription("Endpoints disabled because they answered 410 Gone")); err != nil {
		return dm, err
	}
	return dm, nil
}

// DeadLetterCounter counts the dead letters waiting for an operator (postgres.Store).
type DeadLetterCounter interface {
	UnreplayedDeadLetters(ctx context.Context) (int64, error)
}

// RegisterDLQDepth exports ctrip.dlq.depth, the dead letters not yet replayed, read from
// Postgres when metrics are collected (one count over a table of rare rows). A failed count
// reports nothing for that scrape rather than a zero.
func RegisterDLQDepth(m metric.Meter, store DeadLetterCounter) (metric.Registration, error) {
	depth, err := m.Int64ObservableGauge("ctrip.dlq.depth", metric.WithUnit("{message}"),
		metric.WithDescription("Dead-lettered webhook deliveries not yet replayed"))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		n, err := store.UnreplayedDeadLetters(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(depth, n)
		return nil
	}, depth)
}

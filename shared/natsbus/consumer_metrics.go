package natsbus

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ctrip-pay/pipeline/shared/periodic"
)

// DefaultConsumerPoll is how often WatchConsumers reads consumer info when given no interval.
const DefaultConsumerPoll = 15 * time.Second

// consumerFigures is what WatchConsumers keeps of one consumer's info.
type consumerFigures struct{ pending, ackPending, redelivered int64 }

// WatchConsumers exports JetStream's own figures for a service's durable consumers, read from
// consumer info every interval (DefaultConsumerPoll when 0) rather than on each scrape — a
// scrape costs the server nothing then, however many Prometheus replicas scrape:
//
//	ctrip.jetstream.consumer.pending      messages in the stream not yet delivered to the consumer
//	ctrip.jetstream.consumer.ack_pending  delivered and not yet acknowledged
//	ctrip.jetstream.consumer.redelivered  delivered more than once and not yet acknowledged
//
// each labelled {stream, consumer}. A consumer whose info cannot be read is left out of the
// next scrape instead of repeating a stale figure. Every replica of a service reports the same
// figures: aggregate with max by (stream, consumer). stop ends the polling and removes the
// instruments' callback.
func WatchConsumers(ctx context.Context, js jetstream.JetStream, m metric.Meter, interval time.Duration, log *slog.Logger, durables ...Durable) (stop func(), err error) {
	if interval <= 0 {
		interval = DefaultConsumerPoll
	}
	var (
		mu      sync.Mutex
		figures = map[Durable]consumerFigures{}
	)
	pending, err := m.Int64ObservableGauge("ctrip.jetstream.consumer.pending", metric.WithUnit("{message}"),
		metric.WithDescription("Messages in the stream not yet delivered to the durable consumer (JetStream consumer info num_pending)"))
	if err != nil {
		return nil, err
	}
	ackPending, err := m.Int64ObservableGauge("ctrip.jetstream.consumer.ack_pending", metric.WithUnit("{message}"),
		metric.WithDescription("Messages delivered to the durable consumer and not yet acknowledged (num_ack_pending)"))
	if err != nil {
		return nil, err
	}
	redelivered, err := m.Int64ObservableGauge("ctrip.jetstream.consumer.redelivered", metric.WithUnit("{message}"),
		metric.WithDescription("Messages delivered more than once and not yet acknowledged (num_redelivered)"))
	if err != nil {
		return nil, err
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		mu.Lock()
		defer mu.Unlock()
		for d, f := range figures {
			attrs := metric.WithAttributes(attribute.String("stream", d.Stream), attribute.String("consumer", d.Name))
			o.ObserveInt64(pending, f.pending, attrs)
			o.ObserveInt64(ackPending, f.ackPending, attrs)
			o.ObserveInt64(redelivered, f.redelivered, attrs)
		}
		return nil
	}, pending, ackPending, redelivered)
	if err != nil {
		return nil, err
	}
	poll := func(ctx context.Context) bool {
		for _, d := range durables {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			info, err := consumerInfo(cctx, js, d)
			cancel()
			mu.Lock()
			if err != nil {
				delete(figures, d)
			} else {
				figures[d] = consumerFigures{pending: int64(info.NumPending), ackPending: int64(info.NumAckPending), redelivered: int64(info.NumRedelivered)}
			}
			mu.Unlock()
			if err != nil && ctx.Err() == nil {
				log.Warn("consumer info for metrics", "stream", d.Stream, "consumer", d.Name, "err", err)
			}
		}
		return true
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		poll(ctx)
		periodic.Every(ctx, interval, poll)
	}()
	return func() {
		cancel()
		<-done
		if err := reg.Unregister(); err != nil {
			log.Warn("consumer metrics callback", "err", err)
		}
	}, nil
}

func consumerInfo(ctx context.Context, js jetstream.JetStream, d Durable) (*jetstream.ConsumerInfo, error) {
	// The lookup is itself a consumer info request: its answer is the cached info.
	c, err := js.Consumer(ctx, d.Stream, d.Name)
	if err != nil {
		return nil, err
	}
	return c.CachedInfo(), nil
}

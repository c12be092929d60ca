package natsbus_test

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// The consumer figures are JetStream's: 5 messages in the stream, 2 fetched and unacked → 3
// pending and 2 ack pending; after one ack, 1 ack pending. A consumer that does not exist is
// not reported at all.
func TestWatchConsumersExportsPendingAndAckPending(t *testing.T) {
	ctx, js, cons, log := backlogConsumer(t, 5)
	m := telemetrytest.NewMeter(t)
	stop, err := natsbus.WatchConsumers(ctx, js, m, 20*time.Millisecond, log,
		natsbus.Durable{Stream: "S", Name: "c"}, natsbus.Durable{Stream: "S", Name: "missing"})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	batch, err := cons.FetchNoWait(2)
	if err != nil {
		t.Fatal(err)
	}
	var first interface{ Ack() error }
	for msg := range batch.Messages() {
		if first == nil {
			first = msg
		}
	}
	c := []attribute.KeyValue{attribute.String("stream", "S"), attribute.String("consumer", "c")}
	value := func(name string) float64 {
		v, _ := m.Value(t, name, c...)
		return v
	}
	testkit.Eventually(t, 5*time.Second, "3 pending, 2 ack pending", func() bool {
		return value("ctrip.jetstream.consumer.pending") == 3 && value("ctrip.jetstream.consumer.ack_pending") == 2
	})
	if err := first.Ack(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "1 ack pending after an ack", func() bool {
		return value("ctrip.jetstream.consumer.ack_pending") == 1 && value("ctrip.jetstream.consumer.pending") == 3
	})
	if _, ok := m.Value(t, "ctrip.jetstream.consumer.pending", attribute.String("consumer", "missing")); ok {
		t.Fatal("a consumer that does not exist has a pending figure")
	}
}

package natsbus_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestProvisionIsIdempotentAndUpdates(t *testing.T) {
	n := testkit.MustNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, js, err := natsbus.Connect(ctx, n.URL(), "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	streams := []jetstream.StreamConfig{{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage, Duplicates: time.Minute}}
	cons := func(backoff ...time.Duration) []natsbus.Consumer {
		return []natsbus.Consumer{{Stream: "S", Config: jetstream.ConsumerConfig{
			Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, BackOff: backoff, AckWait: backoff[0], MaxDeliver: len(backoff) + 1,
		}}}
	}
	for range 2 {
		if err := natsbus.Provision(ctx, js, streams, cons(time.Second, 2*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := natsbus.Provision(ctx, js, streams, cons(time.Second, 2*time.Second, 3*time.Second)); err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, "S", "c")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.CachedInfo().Config; len(cfg.BackOff) != 3 || cfg.MaxDeliver != 4 {
		t.Fatalf("consumer not updated: backoff %v max deliver %d", cfg.BackOff, cfg.MaxDeliver)
	}
	names := js.StreamNames(ctx)
	count := 0
	for range names.Name() {
		count++
	}
	if count != 1 {
		t.Fatalf("%d streams after three provisions, want 1", count)
	}
}

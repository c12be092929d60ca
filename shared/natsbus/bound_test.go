package natsbus_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// Every pull loop knows whether it is bound to its consumer: bound on a consumer that exists,
// idle or not; unbound, naming the stream and durable, soon after the consumer is deleted on
// the server; bound again, and handling messages, once it is re-created (the loop starts a new
// iterator: the library's ends with the consumer); unbound once stopped.
func TestLoopBound(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(ctx context.Context, cons jetstream.Consumer, handled chan<- string, log *slog.Logger) (*natsbus.Loop, error)
	}{
		{"StartLoop", func(ctx context.Context, cons jetstream.Consumer, handled chan<- string, log *slog.Logger) (*natsbus.Loop, error) {
			return natsbus.StartLoop(ctx, cons, 2, 4, func(_ context.Context, m jetstream.Msg) error {
				handled <- string(m.Data())
				return nil
			}, natsbus.Runtime{Name: "test", Log: log})
		}},
		{"StartBatchLoop", func(ctx context.Context, cons jetstream.Consumer, handled chan<- string, log *slog.Logger) (*natsbus.Loop, error) {
			return natsbus.StartBatchLoop(ctx, cons, 2, 8, func(_ context.Context, items []natsbus.BatchItem) []error {
				for _, it := range items {
					handled <- string(it.Msg.Data())
				}
				return make([]error, len(items))
			}, natsbus.Runtime{Name: "test", Log: log})
		}},
		{"StartLaneLoop", func(ctx context.Context, cons jetstream.Consumer, handled chan<- string, log *slog.Logger) (*natsbus.Loop, error) {
			return natsbus.StartLaneLoop(ctx, cons, 2, func(m jetstream.Msg) string { return m.Subject() }, func(_ context.Context, m jetstream.Msg) error {
				handled <- string(m.Data())
				return nil
			}, natsbus.Runtime{Name: "test", Log: log})
		}},
		{"StartFetchLoop", func(ctx context.Context, cons jetstream.Consumer, handled chan<- string, log *slog.Logger) (*natsbus.Loop, error) {
			room := func(context.Context) int { return 4 }
			return natsbus.StartFetchLoop(ctx, cons, room, func(_ context.Context, m jetstream.Msg) {
				if err := m.Ack(); err != nil {
					t.Error(err)
				}
				handled <- string(m.Data())
			}, log), nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, js, cons, log := boundConsumer(t)
			handled := make(chan string, 16)
			loop, err := tc.start(ctx, cons, handled, log)
			if err != nil {
				t.Fatal(err)
			}
			stopped := false
			defer func() {
				if !stopped {
					loop.Stop(5 * time.Second)
				}
			}()
			bound := func() bool { return loop.Bound(ctx) == nil }
			handles := func(body string) {
				t.Helper()
				if _, err := js.Publish(ctx, "s.x", []byte(body)); err != nil {
					t.Fatal(err)
				}
				select {
				case got := <-handled:
					if got != body {
						t.Fatalf("handled %q, want %q", got, body)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("message %q not handled", body)
				}
			}

			if err := loop.Bound(ctx); err != nil {
				t.Fatalf("a new loop on an existing consumer: %v", err)
			}
			// Idle for longer than one wait for a message: the open pull's heartbeats keep it bound.
			testkit.Never(t, 7*time.Second, "an idle loop unbound", func() bool { return !bound() })
			handles("before")

			if err := js.DeleteConsumer(ctx, "S", "c"); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, 15*time.Second, "the loop unbound after its consumer was deleted", func() bool { return !bound() })
			if err := loop.Bound(ctx); err == nil || !strings.Contains(err.Error(), "S/c") || !strings.Contains(err.Error(), "last pull: ") {
				t.Errorf("Bound: %q, want it to name S/c and the last pull's error", err)
			}
			t.Logf("consumer deleted: %v", loop.Bound(ctx))
			// It stays unbound while the consumer is missing, whatever the pulls meet meanwhile
			// (no responders, no heartbeats, a new iterator).
			testkit.Never(t, 7*time.Second, "the loop bound to a deleted consumer", bound)

			// Re-created from the stream's end: nothing to deliver, so only the pull's heartbeats
			// can tell the loop it is bound again.
			if _, err := js.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy}); err != nil {
				t.Fatal(err)
			}
			rebinding := time.Now()
			testkit.Eventually(t, 20*time.Second, "the loop bound again to the re-created consumer, idle", bound)
			t.Logf("bound again %v after the consumer was re-created", time.Since(rebinding).Round(time.Millisecond))
			handles("after")
			if err := loop.Bound(ctx); err != nil {
				t.Fatalf("after a message from the re-created consumer: %v", err)
			}

			loop.Stop(5 * time.Second)
			stopped = true
			if err := loop.Bound(ctx); err == nil || !strings.Contains(err.Error(), "S/c") {
				t.Fatalf("Bound after Stop: %v, want an error naming S/c", err)
			}
		})
	}
}

// boundConsumer starts an embedded NATS with an empty stream S and a durable explicit-ack
// consumer c on it. The context ends with the test (2 min at most).
func boundConsumer(t *testing.T) (context.Context, jetstream.JetStream, jetstream.Consumer, *slog.Logger) {
	t.Helper()
	return backlogConsumerWithin(t, 0, 2*time.Minute)
}

package natsbus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// Around every handler the runtime continues the message's trace, gives the handler a
// deadline, and settles by the error: a good message is acked, a poison one terminated (never
// redelivered), a transient failure redelivered until it succeeds.
func TestRuntimeTracesBoundsAndSettlesEveryHandler(t *testing.T) {
	ctx, js, _, log := backlogConsumer(t, 0)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	parentCtx, parent := tp.Tracer("test").Start(context.Background(), "publisher")
	for _, body := range []string{"ok", "poison", "flaky"} {
		m := nats.NewMsg("s." + body)
		m.Data = []byte(body)
		natsbus.Inject(parentCtx, m.Header)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	parent.End()
	cons, err := js.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "rt", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := map[string]int{}
	var noDeadline []string
	loop, err := natsbus.StartLoop(ctx, cons, 2, 4, func(ctx context.Context, msg jetstream.Msg) error {
		body := string(msg.Data())
		mu.Lock()
		calls[body]++
		n := calls[body]
		if d, ok := ctx.Deadline(); !ok || time.Until(d) > 3*time.Second {
			noDeadline = append(noDeadline, body)
		}
		mu.Unlock()
		switch {
		case body == "poison":
			return fault.Invalid("invalid_event", errors.New("not an event"))
		case body == "flaky" && n == 1:
			return fault.TransientAfter(10*time.Millisecond, errors.New("node down"))
		}
		return nil
	}, natsbus.Runtime{Name: "svc", Tracer: tp.Tracer("svc"), Log: log, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Stop(5 * time.Second)
	testkit.Eventually(t, 10*time.Second, "all settled", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.Delivered.Consumer == 4
	})
	testkit.Never(t, time.Second, "a settled message redelivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return calls["ok"] != 1 || calls["poison"] != 1 || calls["flaky"] != 2
	})
	mu.Lock()
	if len(noDeadline) > 0 {
		t.Errorf("handlers without the runtime's deadline: %v", noDeadline)
	}
	mu.Unlock()

	spans := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = append(spans[s.Name()], s)
	}
	for name, want := range map[string]int{"svc s.ok": 1, "svc s.poison": 1, "svc s.flaky": 2} {
		if len(spans[name]) != want {
			t.Fatalf("%d spans %q, want %d (spans: %v)", len(spans[name]), name, want, spans)
		}
		for _, s := range spans[name] {
			if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
				t.Errorf("span %q is not a child of the publisher's span", name)
			}
		}
	}
	if s := spans["svc s.poison"][0]; s.Status().Code != codes.Error {
		t.Errorf("poison span status %v, want error", s.Status())
	}
	if s := spans["svc s.ok"][0]; s.Status().Code == codes.Error {
		t.Errorf("ok span status %v", s.Status())
	}
}

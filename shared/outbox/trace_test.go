package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/outbox"
)

// The relay's publish is a span, a child of the span that wrote the row (its context stored with
// the row), and the published message carries the publish span's context, so the consumer's span
// hangs under it: writer → outbox publish → consumer, one trace, through real NATS.
func TestRelayPublishSpanContinuesTheRowsTrace(t *testing.T) {
	ctx, db, _, _, js, log := relayWorld(t)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("test")
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p.>"}, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}

	wctx, writer := tracer.Start(ctx, "write")
	m, err := outbox.NewMessage(wctx, "p.created", "pay_1.created", map[string]string{"payment_id": "pay_1"})
	if err != nil {
		t.Fatal(err)
	}
	writer.End()
	if err := outbox.Add(ctx, db, m); err != nil {
		t.Fatal(err)
	}
	// A row written without a trace context still gets its own publish span.
	bare := outbox.Message{Subject: "p.created", MsgID: "pay_2.created", Payload: []byte(`{}`)}
	if err := outbox.Add(ctx, db, bare); err != nil {
		t.Fatal(err)
	}
	r := &outbox.Relay{DB: db, JS: js, Log: log, Tracer: tracer}
	if n, err := r.Flush(ctx); err != nil || n != 2 {
		t.Fatalf("flush published %d (%v), want 2", n, err)
	}

	cons, err := js.CreateConsumer(ctx, "P", jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for msg := range batch.Messages() {
		got = append(got, msg)
	}
	if len(got) != 2 {
		t.Fatalf("consumed %d messages, want 2", len(got))
	}
	_, consumer := natsbus.StartSpan(ctx, tracer, "consumer", got[0])
	consumer.End()

	spans := map[string]sdktrace.ReadOnlySpan{}
	var publishes []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		spans[s.Name()] = s
		if s.Name() == "outbox publish p.created" {
			publishes = append(publishes, s)
		}
	}
	if len(publishes) != 2 {
		t.Fatalf("%d publish spans, want one per row: %v", len(publishes), names(rec.Ended()))
	}
	pub, bareSpan := publishes[0], publishes[1]
	if pub.Parent().SpanID() != spans["write"].SpanContext().SpanID() || pub.SpanContext().TraceID() != spans["write"].SpanContext().TraceID() {
		t.Fatalf("publish span's parent %v, want the writer %v", pub.Parent(), spans["write"].SpanContext())
	}
	if pub.SpanKind() != trace.SpanKindProducer {
		t.Fatalf("publish span kind %v", pub.SpanKind())
	}
	c := spans["consumer p.created"]
	if c == nil || c.Parent().SpanID() != pub.SpanContext().SpanID() || c.SpanContext().TraceID() != pub.SpanContext().TraceID() {
		t.Fatalf("consumer span %v: parent %v, want the publish span %v", c, c.Parent(), pub.SpanContext())
	}
	if bareSpan.Parent().IsValid() || bareSpan.SpanContext().TraceID() == pub.SpanContext().TraceID() {
		t.Fatalf("a row without a trace context: publish span parent %v, want a root", bareSpan.Parent())
	}
	if got := natsbus.HeaderCarrier(got[1].Headers()).Get("traceparent"); got == "" {
		t.Fatal("a row without a trace context is published without the publish span's")
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name()
	}
	return out
}

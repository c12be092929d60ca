package natsbus

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A trace context stored with a row (as jsonb) and read back by another pass parents that
// pass's span on it, linked to the span that caused the pass.
func TestStoredTraceContextParentsLaterWorkWithALinkToItsCause(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracer := tp.Tracer("test")

	rctx, request := tracer.Start(context.Background(), "request")
	stored, err := CarrierOf(rctx).Value()
	request.End()
	if err != nil {
		t.Fatal(err)
	}
	var back TraceCarrier
	if err := back.Scan(stored); err != nil {
		t.Fatal(err)
	}
	if back["traceparent"] == "" {
		t.Fatalf("stored %s: no traceparent", stored)
	}

	pctx, pass := tracer.Start(context.Background(), "pass")
	_, work := StartSpanFor(pctx, tracer, back, "work")
	work.End()
	pass.End()
	// No stored context (tracing was off when the row was written): a child of the pass.
	_, orphan := StartSpanFor(pctx, tracer, nil, "orphan")
	orphan.End()

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byName[s.Name()] = s
	}
	w, req, p := byName["work"], byName["request"], byName["pass"]
	if w.Parent().SpanID() != req.SpanContext().SpanID() || w.SpanContext().TraceID() != req.SpanContext().TraceID() {
		t.Fatalf("work's parent %v, want the stored request span %v", w.Parent(), req.SpanContext())
	}
	if len(w.Links()) != 1 || w.Links()[0].SpanContext.SpanID() != p.SpanContext().SpanID() {
		t.Fatalf("work's links %v, want one to the pass %v", w.Links(), p.SpanContext())
	}
	if o := byName["orphan"]; o.Parent().SpanID() != p.SpanContext().SpanID() || len(o.Links()) != 0 {
		t.Fatalf("without a stored context: parent %v links %v, want the pass and no link", o.Parent(), o.Links())
	}
}

func TestTraceCarrierStoresNothingAsNULL(t *testing.T) {
	if v, err := CarrierOf(context.Background()).Value(); v != nil || err != nil {
		t.Fatalf("no span context stored as %v (%v), want NULL", v, err)
	}
	c := TraceCarrier{"traceparent": "x"}
	if err := c.Scan(nil); err != nil || c != nil {
		t.Fatalf("NULL scanned as %v (%v)", c, err)
	}
	if err := c.Scan([]byte(`[1]`)); err == nil {
		t.Fatal("a JSON array scanned as a trace context")
	}
}

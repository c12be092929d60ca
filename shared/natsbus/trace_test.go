package natsbus

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestHeaderCarrierRoundTripsW3CLowerCase(t *testing.T) {
	prop := propagation.TraceContext{}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	h := nats.Header{}
	prop.Inject(ctx, HeaderCarrier(h))
	if _, ok := h["traceparent"]; !ok {
		t.Fatalf("traceparent not stored lower-case: %v", h)
	}
	if got := h.Get("traceparent"); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("traceparent = %q", got)
	}
	back := trace.SpanContextFromContext(prop.Extract(context.Background(), HeaderCarrier(h)))
	if back.TraceID() != tid || back.SpanID() != sid || !back.IsRemote() {
		t.Fatalf("extracted %v", back)
	}
	// A producer that capitalised the header is still understood.
	h2 := nats.Header{"Traceparent": h["traceparent"]}
	if got := trace.SpanContextFromContext(prop.Extract(context.Background(), HeaderCarrier(h2))); got.TraceID() != tid {
		t.Fatalf("mixed-case header not extracted: %v", got)
	}
}

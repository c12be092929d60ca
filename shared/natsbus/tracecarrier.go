package natsbus

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TraceCarrier is a trace context kept with a row: the W3C fields (traceparent, tracestate) by
// name, stored as a jsonb object. A payment keeps the one of the api request that created it
// (payments.trace_context), so that what a later pass does for the payment — a detection in a
// block, a confirmation on a chain head, an expiry, a sweep round — continues the payment's
// trace in whatever process and after whatever restart, instead of starting a trace of its own.
type TraceCarrier map[string]string

// CarrierOf returns the trace context of ctx, or nil when ctx carries no valid span context.
func CarrierOf(ctx context.Context) TraceCarrier {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	c := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, c)
	return TraceCarrier(c)
}

// Context returns ctx carrying the remote span context c holds; ctx itself when c is empty or
// does not parse.
func (c TraceCarrier) Context(ctx context.Context) context.Context {
	if len(c) == 0 {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(c))
}

// SpanContext is the span context c holds (invalid when none).
func (c TraceCarrier) SpanContext() trace.SpanContext {
	return trace.SpanContextFromContext(c.Context(context.Background()))
}

// StartSpanFor starts a span of work done for a row that keeps its trace (stored): a child of
// the stored context, linked to the span of ctx — what caused the work (a block being scanned,
// a chain head message, the expiry pass), which belongs to another trace. The span's own
// context keeps ctx's values and deadline. Without a stored context the span is a child of ctx.
func StartSpanFor(ctx context.Context, tracer trace.Tracer, stored TraceCarrier, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := stored.SpanContext()
	if !parent.IsValid() {
		return tracer.Start(ctx, name, opts...)
	}
	if cause := trace.SpanContextFromContext(ctx); cause.IsValid() && cause.TraceID() != parent.TraceID() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: cause}))
	}
	return tracer.Start(trace.ContextWithRemoteSpanContext(ctx, parent), name, opts...)
}

// Value stores c as a jsonb object; an empty carrier is NULL.
func (c TraceCarrier) Value() (driver.Value, error) {
	if len(c) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(map[string]string(c))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Scan reads a jsonb object (NULL: nil).
func (c *TraceCarrier) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*c = nil
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("trace context: cannot scan %T", src)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("trace context: %w", err)
	}
	*c = m
	return nil
}

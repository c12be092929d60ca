package natsbus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Handler handles one message and says how it went; the runtime settles the message by the
// returned error's fault kind (Decide). A handler never acks: it decodes the message in a thin
// port, calls the service's decision and returns its error.
type Handler func(ctx context.Context, msg jetstream.Msg) error

// BatchItem is one message of a batch, with its context: the span continued from the
// message's trace context.
type BatchItem struct {
	Ctx context.Context
	Msg jetstream.Msg
}

// BatchHandler handles several messages at once (publishing them asynchronously, say) and
// returns one error per item, in order; each item is settled by its own.
type BatchHandler func(ctx context.Context, batch []BatchItem) []error

// Runtime is what runs around every handler of a consumer, as middleware: the span continued
// from the message's trace context, the handler's deadline and the settlement. The heartbeat is
// the pull loop's (heldMsg): from the message's arrival until it is settled.
type Runtime struct {
	Name    string        // the span is "<Name> <subject>"
	Tracer  trace.Tracer  // nil: spans are not recorded
	Log     *slog.Logger  // required
	Timeout time.Duration // each handler's deadline; 0: DefaultHandlerTimeout
	Backoff Backoff       // redelivery delays of transient failures; zero: DefaultBackoff
}

// DefaultHandlerTimeout bounds a handler that names no deadline of its own.
const DefaultHandlerTimeout = time.Minute

// noTracer stands in for a Runtime without one: built once, not per message.
var noTracer = noop.NewTracerProvider().Tracer("natsbus")

func (rt Runtime) tracer() trace.Tracer {
	if rt.Tracer == nil {
		return noTracer
	}
	return rt.Tracer
}

func (rt Runtime) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	d := rt.Timeout
	if d <= 0 {
		d = DefaultHandlerTimeout
	}
	return context.WithTimeout(ctx, d)
}

// StartSpan starts the consumer span of msg, continuing the trace its headers carry.
func StartSpan(ctx context.Context, tracer trace.Tracer, name string, msg jetstream.Msg, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	ctx = Extract(ctx, msg.Headers())
	attrs = append(attrs, attribute.String("messaging.destination.name", msg.Subject()))
	return tracer.Start(ctx, name+" "+msg.Subject(), trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}

// EndSpan records err (if any) on span and ends it.
func EndSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// handle runs h on msg inside the middleware and settles msg.
func (rt Runtime) handle(ctx context.Context, msg jetstream.Msg, h Handler) {
	ctx, span := StartSpan(ctx, rt.tracer(), rt.Name, msg)
	hctx, cancel := rt.deadline(ctx)
	err := h(hctx, msg)
	cancel()
	Settle(ctx, msg, err, rt.Backoff, rt.Log)
	EndSpan(span, err)
}

// errMissingOutcome settles a batch item its handler said nothing about: redelivered, never
// acked unhandled.
var errMissingOutcome = errors.New("natsbus: the batch handler returned no outcome for this message")

// handleBatch runs h on a batch inside the middleware and settles every message by its error.
func (rt Runtime) handleBatch(ctx context.Context, msgs []jetstream.Msg, h BatchHandler) {
	hctx, cancel := rt.deadline(ctx)
	defer cancel()
	items := make([]BatchItem, len(msgs))
	spans := make([]trace.Span, len(msgs))
	for i, msg := range msgs {
		items[i].Msg = msg
		items[i].Ctx, spans[i] = StartSpan(hctx, rt.tracer(), rt.Name, msg)
	}
	errs := h(hctx, items)
	for i, it := range items {
		err := errMissingOutcome
		if i < len(errs) {
			err = errs[i]
		}
		Settle(context.WithoutCancel(it.Ctx), it.Msg, err, rt.Backoff, rt.Log)
		EndSpan(spans[i], err)
	}
}

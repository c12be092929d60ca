package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
)

// DeliverSubjectPrefix + endpoint id is the WEBHOOKS subject of one delivery.
const DeliverSubjectPrefix = "webhooks.deliver."

// Publisher publishes to JetStream and waits for the stream's ack.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Fanout turns one PAYMENTS event into one WEBHOOKS message per subscribed endpoint.
type Fanout struct {
	Endpoints EndpointFinder
	JS        Publisher
	Tracer    trace.Tracer
	Log       *slog.Logger
}

// Handle processes and settles one PAYMENTS message.
func (f *Fanout) Handle(ctx context.Context, msg jetstream.Msg) {
	ctx = natsbus.Extract(ctx, msg.Headers())
	ctx, span := f.Tracer.Start(ctx, "webhook.fanout", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.destination", msg.Subject())))
	defer span.End()
	err := f.fanout(ctx, msg.Subject(), msg.Data())
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	settle(ctx, msg, err, f.Log)
}

// fanout is idempotent: a redelivered event republishes with the same Nats-Msg-Id, which
// WEBHOOKS drops inside its duplicate window.
func (f *Fanout) fanout(ctx context.Context, subject string, body []byte) error {
	var env event.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Poison(ReasonPoison, fmt.Errorf("undecodable event on %s: %w", subject, err))
	}
	if err := env.Validate(); err != nil {
		return Poison(ReasonPoison, err)
	}
	var data struct {
		MerchantID string `json:"merchant_id"`
		PaymentID  string `json:"payment_id"`
	}
	if err := json.Unmarshal(env.Data, &data); err != nil {
		return Poison(ReasonPoison, fmt.Errorf("event %s data: %w", env.ID, err))
	}
	log := f.Log.With("event_id", env.ID, "payment_id", data.PaymentID, "event_type", env.Type)
	eps, err := f.Endpoints.EndpointsFor(ctx, data.MerchantID, env.Type)
	if err != nil {
		return Transient(err)
	}
	for _, ep := range eps {
		m := nats.NewMsg(DeliverSubjectPrefix + ep.ID)
		m.Data = body
		m.Header.Set(event.HeaderMsgID, env.ID+"."+ep.ID)
		m.Header.Set(event.HeaderEventType, env.Type)
		natsbus.Inject(ctx, m.Header)
		// Bounded well inside the consumer's AckWait, so a publish lost in a NATS restart is
		// retried (same Nats-Msg-Id) rather than left waiting.
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := f.JS.PublishMsg(pctx, m)
		cancel()
		if err != nil {
			return Transient(fmt.Errorf("publish to %s: %w", m.Subject, err))
		}
	}
	log.DebugContext(ctx, "fanned out", "endpoints", len(eps))
	return nil
}

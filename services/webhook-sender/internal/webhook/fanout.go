package webhook

import (
	"context"
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

// AsyncPublisher publishes to JetStream without waiting; the future resolves with the stream's
// ack.
type AsyncPublisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// publishTimeout bounds how long a batch waits for the stream's acks of its publishes. Well
// inside the consumer's AckWait, so a publish lost in a NATS restart is retried (same
// Nats-Msg-Id) rather than left waiting.
const publishTimeout = 3 * time.Second

// Fanout turns one PAYMENTS event into one WEBHOOKS message per subscribed endpoint.
type Fanout struct {
	Endpoints EndpointFinder
	JS        AsyncPublisher
	Tracer    trace.Tracer
	Log       *slog.Logger
}

// fanned is one PAYMENTS message of a batch on its way through HandleBatch.
type fanned struct {
	msg  jetstream.Msg
	ctx  context.Context
	span trace.Span
	acks []jetstream.PubAckFuture
	err  error
}

// HandleBatch fans out and settles a batch of PAYMENTS messages. Every delivery message of the
// batch is published asynchronously first; each event is then acked once the stream has
// confirmed all of its deliveries, and nak'ed (redelivered, republished into the duplicate
// window) if any publish failed or timed out. Waiting for one publish at a time cost a round
// trip per delivery, which limited the whole sender (BenchmarkWebhookThroughput).
func (f *Fanout) HandleBatch(ctx context.Context, msgs []jetstream.Msg) {
	batch := make([]fanned, len(msgs))
	for i, msg := range msgs {
		fm := &batch[i]
		fm.msg = msg
		fm.ctx, fm.span = f.Tracer.Start(natsbus.Extract(ctx, msg.Headers()), "webhook.fanout",
			trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attribute.String("messaging.destination", msg.Subject())))
		var out []*nats.Msg
		if out, fm.err = f.deliveries(fm.ctx, msg.Subject(), msg.Data()); fm.err != nil {
			continue
		}
		for _, m := range out {
			ack, err := f.JS.PublishMsgAsync(m, jetstream.WithStallWait(publishTimeout))
			if err != nil {
				fm.err = Transient(fmt.Errorf("publish to %s: %w", m.Subject, err))
				break
			}
			fm.acks = append(fm.acks, ack)
		}
	}
	wait, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	for i := range batch {
		fm := &batch[i]
		for _, ack := range fm.acks {
			if fm.err = waitAck(wait, ack); fm.err != nil {
				break
			}
		}
		if fm.err != nil {
			fm.span.SetStatus(codes.Error, fm.err.Error())
		} else {
			f.Log.DebugContext(fm.ctx, "fanned out", "subject", fm.msg.Subject(), "endpoints", len(fm.acks))
		}
		settle(fm.ctx, fm.msg, fm.err, f.Log)
		fm.span.End()
	}
}

// waitAck waits for the stream's answer to one publish until wait ends. An answer that has
// already come counts even when wait has ended meanwhile.
func waitAck(wait context.Context, ack jetstream.PubAckFuture) error {
	failed := func(err error) error {
		return Transient(fmt.Errorf("publish to %s: %w", ack.Msg().Subject, err))
	}
	select {
	case <-ack.Ok():
		return nil
	case err := <-ack.Err():
		return failed(err)
	default:
	}
	select {
	case <-ack.Ok():
		return nil
	case err := <-ack.Err():
		return failed(err)
	case <-wait.Done():
		return failed(fmt.Errorf("no ack from the stream within %v", publishTimeout))
	}
}

// deliveries builds the WEBHOOKS messages of one event, one per subscribed endpoint. They
// carry Nats-Msg-Id <event>.<endpoint>, so a redelivered event republishes them into the
// duplicate window and WEBHOOKS drops them: fan-out is idempotent.
func (f *Fanout) deliveries(ctx context.Context, subject string, body []byte) ([]*nats.Msg, error) {
	env, err := decodeEventBody(body)
	if err != nil {
		return nil, Poison(ReasonPoison, fmt.Errorf("event on %s: %w", subject, err))
	}
	eps, err := f.Endpoints.EndpointsFor(ctx, env.Data.MerchantID, env.Type)
	if err != nil {
		return nil, Transient(err)
	}
	out := make([]*nats.Msg, 0, len(eps))
	for _, ep := range eps {
		m := nats.NewMsg(DeliverSubjectPrefix + ep.ID)
		m.Data = body
		m.Header.Set(event.HeaderMsgID, env.ID+"."+ep.ID)
		m.Header.Set(event.HeaderEventType, env.Type)
		natsbus.Inject(ctx, m.Header)
		out = append(out, m)
	}
	return out, nil
}

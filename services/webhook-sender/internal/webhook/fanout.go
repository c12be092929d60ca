package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
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

// FanoutConfig wires a Fanout.
type FanoutConfig struct {
	Endpoints EndpointFinder
	JS        AsyncPublisher
	Log       *slog.Logger
}

// Validate reports what a Fanout cannot run without.
func (c FanoutConfig) Validate() error {
	if c.Endpoints == nil || c.JS == nil || c.Log == nil {
		return errors.New("fanout: Endpoints, JS and Log are required")
	}
	return nil
}

// Fanout turns one PAYMENTS event into one WEBHOOKS message per subscribed endpoint.
type Fanout struct {
	FanoutConfig
}

// NewFanout builds the fan-out stage.
func NewFanout(c FanoutConfig) (*Fanout, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Fanout{FanoutConfig: c}, nil
}

// HandleBatch fans out a batch of PAYMENTS messages and returns each one's outcome (natsbus
// settles them). Every delivery message of the batch is published asynchronously first; each
// event is then acked once the stream has confirmed all of its deliveries, and nak'ed
// (redelivered, republished into the duplicate window) if any publish failed or timed out.
// Waiting for one publish at a time cost a round trip per delivery, which limited the whole
// sender (BenchmarkWebhookThroughput).
func (f *Fanout) HandleBatch(ctx context.Context, batch []natsbus.BatchItem) []error {
	errs := make([]error, len(batch))
	acks := make([][]jetstream.PubAckFuture, len(batch))
	for i, it := range batch {
		out, err := f.deliveries(it.Ctx, it.Msg.Subject(), it.Msg.Data())
		if err != nil {
			errs[i] = err
			continue
		}
		for _, m := range out {
			ack, err := f.JS.PublishMsgAsync(m, jetstream.WithStallWait(publishTimeout))
			if err != nil {
				errs[i] = fault.Transient(fmt.Errorf("publish to %s: %w", m.Subject, err))
				break
			}
			acks[i] = append(acks[i], ack)
		}
	}
	wait, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	for i, it := range batch {
		for _, ack := range acks[i] {
			if err := waitAck(wait, ack); err != nil {
				errs[i] = err
				break
			}
		}
		if errs[i] == nil {
			f.Log.DebugContext(it.Ctx, "fanned out", "subject", it.Msg.Subject(), "endpoints", len(acks[i]))
		}
	}
	return errs
}

// waitAck waits for the stream's answer to one publish until wait ends. An answer that has
// already come counts even when wait has ended meanwhile.
func waitAck(wait context.Context, ack jetstream.PubAckFuture) error {
	failed := func(err error) error {
		return fault.Transient(fmt.Errorf("publish to %s: %w", ack.Msg().Subject, err))
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
		return nil, fault.Invalid(ReasonPoison, fmt.Errorf("event on %s: %w", subject, err))
	}
	// The type is what endpoints subscribe to and what the merchant reads: one that is not its
	// subject's is not sent to anyone.
	if want := event.TypeForSubject(subject); env.Type != want {
		return nil, fault.Invalid(ReasonPoison, fmt.Errorf("event of type %q on %s, want %q", env.Type, subject, want))
	}
	eps, err := f.Endpoints.EndpointsFor(ctx, env.Data.MerchantID, env.Type)
	if err != nil {
		return nil, fault.Transient(err)
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("payment.id", env.Data.PaymentID),
		attribute.String("webhook.event_id", env.ID), attribute.Int("webhook.endpoints", len(eps)))
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

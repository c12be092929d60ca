package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
)

// maxResponseBody is how much of a merchant's response is kept with the attempt.
const maxResponseBody = 4 << 10

// HeaderAttemptOffset, on a WEBHOOKS message, is how many attempts reached the merchant before
// this message: a continuation carries it (see Deliverer.resume), so its delivery n is the
// merchant's attempt offset+n.
const HeaderAttemptOffset = "Ctrip-Attempt-Offset"

// Deliverer is the delivery stage: one signed POST per WEBHOOKS message delivery.
//
// Retries use the consumer's BackOff: a failed attempt is neither acked nor nacked (a plain Nak
// would ignore BackOff and redeliver at once); the message's ack timer is restarted with
// InProgress at the moment of failure, so the server redelivers it BackOff[n-1] later. While an
// attempt is queued or running, InProgress heartbeats keep the server from redelivering it
// early (the first step, 5s by default, is shorter than WEBHOOK_TIMEOUT).
//
// Only attempts that reach the merchant count against the schedule. JetStream counts every
// delivery, so a delivery that our own outage keeps from the merchant must not be spent: while
// Postgres does not answer, the message is held (heartbeated) until it does; when the sender
// shuts down before or during the request, the message is continued — republished with the
// count of attempts so far (HeaderAttemptOffset) and acked — instead of being left to use up a
// delivery, which on the last one would dead-letter it.
type Deliverer struct {
	store               DeliveryStore
	recorder            DeliveryRecorder
	js                  Publisher
	client              *http.Client
	schedule            []time.Duration
	maxDeliver          int
	maxRetryAfter       time.Duration
	endpointConcurrency int
	tracer              trace.Tracer
	log                 *slog.Logger
	metrics             deliveryMetrics

	inflight  chan struct{} // global bound on concurrent HTTP attempts
	held      chan struct{} // bound on messages held in this process (queued + in flight)
	roomFreed chan struct{} // signalled when a place in held is given back
	heldCap   int           // per-endpoint share of held, so one slow endpoint cannot take all
	wg        sync.WaitGroup

	mu    sync.Mutex
	lanes map[string]*lane
	cache map[string]cachedEndpoint
}

type lane struct {
	slots chan struct{} // per-endpoint concurrent attempts
	held  int           // messages of this endpoint held in the process, under Deliverer.mu
	freed chan struct{} // signalled when held drops
}

// DelivererConfig configures a Deliverer. Schedule and MaxDeliver must be the consumer's own
// BackOff and MaxDeliver.
type DelivererConfig struct {
	Store               DeliveryStore
	Recorder            DeliveryRecorder
	JS                  Publisher // continuations go back to WEBHOOKS
	Client              *http.Client
	Schedule            []time.Duration
	MaxDeliver          int
	MaxRetryAfter       time.Duration
	Concurrency         int
	EndpointConcurrency int
	Tracer              trace.Tracer
	Meter               metric.Meter
	Log                 *slog.Logger
}

// NewDeliverer builds the delivery stage.
func NewDeliverer(c DelivererConfig) (*Deliverer, error) {
	if len(c.Schedule) == 0 || c.MaxDeliver < 1 || c.Concurrency < 1 || c.EndpointConcurrency < 1 || c.JS == nil {
		return nil, fmt.Errorf("deliverer: schedule, max deliver, concurrency and publisher must be set")
	}
	m, err := newDeliveryMetrics(c.Meter)
	if err != nil {
		return nil, err
	}
	heldLimit := 4 * c.Concurrency
	return &Deliverer{
		store: c.Store, recorder: c.Recorder, js: c.JS, client: c.Client, schedule: c.Schedule, maxDeliver: c.MaxDeliver,
		maxRetryAfter: c.MaxRetryAfter, endpointConcurrency: c.EndpointConcurrency,
		tracer: c.Tracer, log: c.Log, metrics: m,
		inflight:  make(chan struct{}, c.Concurrency),
		held:      make(chan struct{}, heldLimit),
		roomFreed: make(chan struct{}, 1),
		heldCap:   max(1, heldLimit*3/4),
		lanes:     map[string]*lane{},
		cache:     map[string]cachedEndpoint{},
	}, nil
}

// step is the redelivery delay after delivery n: BackOff[n-1], the last entry beyond its end.
func (d *Deliverer) step(n int) time.Duration {
	return d.schedule[min(max(n, 1), len(d.schedule))-1]
}

// Dispatch takes one message from the delivery loop and returns at once: it starts the
// message's heartbeat, takes a place in the process (there is one: the loop fetched no more than
// Room allowed) and hands the message to its own goroutine, which waits for a place in the
// endpoint's lane and attempts the delivery.
func (d *Deliverer) Dispatch(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		d.log.Error("message without JetStream metadata", "subject", msg.Subject(), "err", err)
		return
	}
	n := int(md.NumDelivered)
	endpointID := strings.TrimPrefix(msg.Subject(), DeliverSubjectPrefix)
	// InProgress every half step, so a message waiting for a slot or in a slow request is not
	// redelivered meanwhile; none follows the final ack or term (natsbus.Heartbeat.Stop).
	hb := natsbus.StartHeartbeat(msg, d.step(n)/2)
	select {
	case d.held <- struct{}{}:
	case <-ctx.Done():
		hb.Stop()
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ln := d.lane(endpointID)
		if !d.admit(ctx, ln, n) {
			// This endpoint already holds its share and is not draining: hand the message back
			// to be redelivered after the current step. It costs one delivery count but no HTTP
			// attempt; on the last delivery it is kept regardless.
			hb.Stop()
			d.unhold()
			d.metrics.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "deferred")))
			if err := msg.NakWithDelay(d.schedule[0]); err != nil {
				d.log.Warn("nak failed", "err", err)
			}
			return
		}
		h := &hold{d: d, ln: ln}
		defer h.free()
		d.deliver(ctx, msg, md, endpointID, h, hb)
	}()
}

// outcome of one attempt.
type outcome struct {
	delivered  bool
	terminate  string        // term reason "<code>: <detail>" when set
	retryAfter time.Duration // honoured Retry-After, 0 when none
	err        string        // what went wrong, for the log and the dead letter
	// ours: the attempt did not reach the merchant, or was cut short, because the sender is
	// shutting down. It does not count against the schedule.
	ours bool
}

// attemptOffset reads HeaderAttemptOffset; anything but a small non-negative number is 0.
func attemptOffset(msg jetstream.Msg) int {
	v := msg.Headers().Get(HeaderAttemptOffset)
	if v == "" {
		return 0
	}
	k, err := strconv.Atoi(v)
	if err != nil || k < 0 || k > 1000 {
		return 0
	}
	return k
}

func (d *Deliverer) deliver(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, endpointID string, h *hold, hb *natsbus.Heartbeat) {
	n := int(md.NumDelivered)
	offset := attemptOffset(msg)
	attemptNo := offset + n // the merchant's attempt number
	ctx = natsbus.Extract(ctx, msg.Headers())
	ctx, span := d.tracer.Start(ctx, "webhook.deliver", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("webhook.endpoint_id", endpointID), attribute.Int("webhook.attempt", attemptNo)))
	defer span.End()

	out := d.attempt(ctx, msg, md, attemptNo, endpointID, h)
	hb.Stop()

	if out.delivered {
		d.metrics.outcomes.Add(ctx, 1, d.metrics.delivered)
		// A plain Ack: if it is lost (NATS restarting) the message is redelivered and the merchant
		// sees the event twice, which webhook-id lets it detect. DoubleAck would only tell us so,
		// at the cost of a round trip per delivery.
		if err := msg.Ack(); err != nil {
			d.log.WarnContext(ctx, "ack after delivery failed", "endpoint_id", endpointID, "attempt", n, "err", err)
		}
		return
	}
	log := d.log.With("endpoint_id", endpointID, "attempt", attemptNo, "stream_seq", md.Sequence.Stream)
	if out.ours {
		d.metrics.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "continued")))
		d.resume(ctx, msg, md, attemptNo-1, log)
		return
	}
	s, label := d.settlement(out, n, attemptNo)
	span.SetStatus(codes.Error, out.err+out.terminate)
	d.metrics.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", label)))
	switch s.Action {
	case natsbus.Term:
		log.WarnContext(ctx, "delivery "+label, "reason", s.Reason)
	case natsbus.Redeliver:
		log.InfoContext(ctx, "delivery failed, will retry", "err", out.err, "next_in", max(d.step(attemptNo), out.retryAfter), "retry_after", out.retryAfter)
	default:
		log.InfoContext(ctx, "delivery failed, will retry", "err", out.err, "next_in", d.step(n))
	}
	natsbus.Apply(ctx, msg, s, log)
}

// settlement is the delivery stage's decision after a failed attempt (delivery n of the message,
// the merchant's attempt attemptNo), with its outcome label for the metric:
//   - a permanent failure (410, unknown or disabled endpoint, poison) is terminated with its reason;
//   - the last allowed attempt is terminated at once as max_deliveries, rather than waiting one
//     more ack timer (up to 10h) for the server's MAX_DELIVERIES advisory;
//   - otherwise the message is retried on the consumer's BackOff: the server waits BackOff[n-1]
//     of the message's own count (Later restarts that timer now, so the redelivery comes one full
//     step after the failure). A continuation is further along the merchant's schedule
//     (attemptNo > n), and Retry-After may ask for longer; when either wants more than the
//     server's step, NakWithDelay(x), which on a BackOff consumer redelivers after
//     x + BackOff[n-1] - BackOff[0], is given x = want - step + BackOff[0].
func (d *Deliverer) settlement(out outcome, n, attemptNo int) (natsbus.Settlement, string) {
	switch {
	case out.terminate != "":
		return natsbus.Settlement{Action: natsbus.Term, Reason: out.terminate}, "terminated"
	case attemptNo >= d.maxDeliver:
		return natsbus.Settlement{Action: natsbus.Term, Reason: ReasonMaxDeliveries + ": " + out.err}, "exhausted"
	}
	step, want := d.step(n), max(d.step(attemptNo), out.retryAfter)
	if want > step {
		return natsbus.Settlement{Action: natsbus.Redeliver, Delay: want - step + d.schedule[0]}, "retry"
	}
	return natsbus.Settlement{Action: natsbus.Later}, "retry"
}

// resume continues a message our outage kept from the merchant: the same body and headers are
// republished to its subject with HeaderAttemptOffset = the attempts made so far, and the message
// is acked, so the delivery it used is not spent. The continuation's Nats-Msg-Id is derived from
// the message's stream sequence: a crash between the publish and the ack republishes into the
// duplicate window. If the publish fails (NATS gone too), the message is left to the server's
// redelivery, as before: at worst it uses up a delivery.
func (d *Deliverer) resume(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, attempts int, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	m := nats.NewMsg(msg.Subject())
	m.Data = msg.Data()
	for k, v := range applicationHeaders(msg.Headers()) {
		m.Header.Set(k, v) // the Nats-Msg-Id and an earlier offset are replaced below
	}
	base := msg.Headers().Get(event.HeaderMsgID)
	if base == "" {
		base = "WEBHOOKS." + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	m.Header.Set(event.HeaderMsgID, base+".cont"+strconv.FormatUint(md.Sequence.Stream, 10))
	m.Header.Set(HeaderAttemptOffset, strconv.Itoa(attempts))
	if _, err := d.js.PublishMsg(ctx, m); err != nil {
		log.WarnContext(ctx, "could not continue an interrupted delivery; it will be redelivered", "err", err)
		return
	}
	if err := msg.Ack(); err != nil {
		log.WarnContext(ctx, "ack of a continued delivery failed; it may be attempted twice", "err", err)
		return
	}
	log.InfoContext(ctx, "delivery interrupted by shutdown; continued", "attempts_so_far", attempts)
}

// attempt loads the endpoint, waits for a slot, POSTs and records the attempt.
func (d *Deliverer) attempt(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, attemptNo int, endpointID string, h *hold) outcome {
	body := msg.Data()
	env, err := decodeEventBody(body)
	if err != nil {
		return outcome{terminate: ReasonPoison + ": " + err.Error()}
	}

	ce, err := d.endpointWaiting(ctx, endpointID)
	switch {
	case errors.Is(err, errStore):
		return outcome{ours: true, err: "shutting down while the endpoint store was unavailable"}
	case errors.Is(err, ErrNotFound):
		return outcome{terminate: ReasonEndpointUnknown + ": no endpoint " + endpointID}
	case err != nil:
		return outcome{err: "loading endpoint: " + err.Error()}
	case ce.ep.Deleted:
		return outcome{terminate: ReasonEndpointDisabled + ": endpoint deleted"}
	case !ce.ep.Enabled:
		return outcome{terminate: ReasonEndpointDisabled + ": endpoint disabled"}
	}

	res, ok := d.postInSlot(ctx, h.ln, ce, env.ID, body)
	h.free()
	if !ok {
		return outcome{ours: true, err: "shutting down"}
	}
	// A request our shutdown cut short was not a fair attempt: recorded, but not counted.
	interrupted := res.status/100 != 2 && ctx.Err() != nil
	if interrupted {
		res.err = "interrupted by the sender's shutdown: " + res.err
	}
	a := Attempt{
		EventID: env.ID, EventType: env.Type, PaymentID: env.Data.PaymentID, EndpointID: endpointID,
		StreamSeq: md.Sequence.Stream, Attempt: attemptNo, StatusCode: res.status,
		Latency: res.latency, Error: res.err, ResponseBody: res.body, Delivered: res.status/100 == 2,
	}
	d.metrics.latency.Record(ctx, res.latency.Seconds())
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("webhook.event_id", env.ID), attribute.String("payment.id", env.Data.PaymentID))
		if res.status != 0 { // no response at all (refused, timed out): no status to report
			span.SetAttributes(attribute.Int("http.response.status_code", res.status))
		}
		if res.err != "" {
			span.SetAttributes(attribute.String("webhook.error", res.err))
		}
	}
	// A lost attempt row must not turn a delivered webhook into a retry (the merchant would get
	// it again), so a failed insert is logged and counted, not retried.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.recorder.RecordAttempt(rctx, a); err != nil {
		d.metrics.recordFailures.Add(ctx, 1)
		d.log.ErrorContext(ctx, "recording attempt failed", "event_id", env.ID, "err", err)
	}

	switch {
	case a.Delivered:
		return outcome{delivered: true}
	case interrupted:
		return outcome{ours: true, err: res.err}
	case res.status == http.StatusGone:
		reason := fmt.Sprintf("410 Gone at %s", time.Now().UTC().Format(time.RFC3339))
		if err := d.store.DisableEndpoint(rctx, endpointID, reason); err != nil {
			return outcome{err: "HTTP 410; disabling endpoint failed: " + err.Error()}
		}
		d.forget(endpointID)
		d.metrics.endpointsDisabled.Add(ctx, 1)
		d.log.WarnContext(ctx, "endpoint disabled", "endpoint_id", endpointID, "reason", reason)
		return outcome{terminate: ReasonEndpointGone + ": HTTP 410 Gone, endpoint disabled"}
	}
	out := outcome{err: res.err}
	if out.err == "" {
		out.err = fmt.Sprintf("HTTP %d", res.status)
	}
	if res.status == http.StatusTooManyRequests || res.status == http.StatusServiceUnavailable {
		out.retryAfter = min(res.retryAfter, d.maxRetryAfter)
	}
	return out
}

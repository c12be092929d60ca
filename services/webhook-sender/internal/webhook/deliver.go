package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/signature"
)

// maxResponseBody is how much of a merchant's response is kept with the attempt.
const maxResponseBody = 4 << 10

// HeaderAttemptOffset, on a WEBHOOKS message, is how many attempts reached the merchant before
// this message: a continuation carries it (see Deliverer.resume), so its delivery n is the
// merchant's attempt offset+n.
const HeaderAttemptOffset = "Ctrip-Attempt-Offset"

// errStore marks an endpoint that could not be loaded because Postgres did not answer.
var errStore = errors.New("endpoint store unavailable")

// endpointCacheTTL bounds how long a changed endpoint (new URL, rotated secret, disabled by an
// operator) keeps being used from memory. Deliveries are far more frequent than edits.
const endpointCacheTTL = 2 * time.Second

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

type cachedEndpoint struct {
	ep      Endpoint
	keys    []signature.Secret
	legacy  signature.Secret
	expires time.Time
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

// Room blocks until the process can hold more messages and says how many. The delivery loop
// fetches exactly that many (natsbus.StartFetchLoop), so every message it takes is dispatched at
// once and heartbeated from its arrival: none waits in a client-side buffer while its ack wait
// runs out, which would redeliver it and could POST it twice. Once the process is busy it waits
// for a quarter of its places to free up, so a saturated sender fetches in batches.
func (d *Deliverer) Room(ctx context.Context) int {
	for {
		free := cap(d.held) - len(d.held)
		if free >= max(1, cap(d.held)/4) {
			return free
		}
		select {
		case <-d.roomFreed:
		case <-ctx.Done():
			return 0
		}
	}
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

// unhold gives back a place in the process.
func (d *Deliverer) unhold() {
	<-d.held
	select {
	case d.roomFreed <- struct{}{}:
	default:
	}
}

func (d *Deliverer) lane(endpointID string) *lane {
	d.mu.Lock()
	defer d.mu.Unlock()
	ln := d.lanes[endpointID]
	if ln == nil {
		ln = &lane{slots: make(chan struct{}, d.endpointConcurrency), freed: make(chan struct{}, 1)}
		d.lanes[endpointID] = ln
	}
	return ln
}

// laneWait is how long a dispatched message waits for a full lane to drain before it is
// deferred: a healthy endpoint frees a slot within milliseconds, a hanging one does not, and
// meanwhile the message holds a place in the process, so it is short.
const laneWait = 50 * time.Millisecond

// admit takes a place in the endpoint's lane, waiting up to laneWait for one to free up.
func (d *Deliverer) admit(ctx context.Context, ln *lane, n int) bool {
	var timer *time.Timer // only when the lane is full: most messages get in at once
	for {
		d.mu.Lock()
		if ln.held < d.heldCap || n >= d.maxDeliver {
			ln.held++
			d.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return true
		}
		d.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(laneWait)
			defer timer.Stop()
		}
		select {
		case <-ln.freed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// hold is a dispatched message's place in the process and in its endpoint's lane. It is given
// back as soon as the HTTP request is done: writing the attempt row and settling the message
// need no place, so waiting for the database does not hold back the next requests.
type hold struct {
	d    *Deliverer
	ln   *lane
	once sync.Once
}

func (h *hold) free() { h.once.Do(func() { h.d.release(h.ln); h.d.unhold() }) }

func (d *Deliverer) release(ln *lane) {
	d.mu.Lock()
	ln.held--
	d.mu.Unlock()
	select {
	case ln.freed <- struct{}{}:
	default:
	}
}

// Wait blocks until every dispatched attempt has been settled.
func (d *Deliverer) Wait() { d.wg.Wait() }

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

// storeRetryMax bounds the wait between tries to load an endpoint while Postgres is down.
const storeRetryMax = 5 * time.Second

// endpointWaiting loads the endpoint, waiting for Postgres as long as it takes (the message's
// heartbeat runs meanwhile, so no delivery is used up), until ctx ends.
func (d *Deliverer) endpointWaiting(ctx context.Context, id string) (cachedEndpoint, error) {
	wait := 100 * time.Millisecond
	for logged := false; ; logged = true {
		ce, err := d.endpoint(ctx, id)
		if !errors.Is(err, errStore) {
			return ce, err
		}
		if !logged {
			d.log.WarnContext(ctx, "endpoint store unavailable; holding the delivery until it answers", "endpoint_id", id, "err", err)
			d.metrics.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "store_wait")))
		}
		select {
		case <-ctx.Done():
			return ce, err
		case <-time.After(wait):
		}
		wait = min(2*wait, storeRetryMax)
	}
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
		span.SetAttributes(attribute.Int("http.response.status_code", res.status), attribute.String("webhook.event_id", env.ID))
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

type postResult struct {
	status     int
	latency    time.Duration
	body       string
	err        string
	retryAfter time.Duration
}

// postInSlot waits for a place in the endpoint's lane and under the global limit, and POSTs.
// The places are held for the request only: recording the attempt happens after, so the
// limits bound HTTP requests, not database writes.
func (d *Deliverer) postInSlot(ctx context.Context, ln *lane, ce cachedEndpoint, eventID string, body []byte) (postResult, bool) {
	select {
	case ln.slots <- struct{}{}:
	case <-ctx.Done():
		return postResult{}, false
	}
	defer func() { <-ln.slots }()
	select {
	case d.inflight <- struct{}{}:
	case <-ctx.Done():
		return postResult{}, false
	}
	defer func() { <-d.inflight }()
	return d.post(ctx, ce, eventID, body), true
}

func (d *Deliverer) post(ctx context.Context, ce cachedEndpoint, eventID string, body []byte) postResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ce.ep.URL, bytes.NewReader(body))
	if err != nil {
		return postResult{err: "building request: " + err.Error()}
	}
	now := time.Now()
	// Keys already in canonical form, set directly: Header.Set would canonicalize (and allocate)
	// each lower-case Standard Webhooks name on every request.
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{"ctrip-webhooks/1"}
	h["Webhook-Id"] = []string{eventID}
	h["Webhook-Timestamp"] = []string{strconv.FormatInt(now.Unix(), 10)}
	h["Webhook-Signature"] = []string{signature.Header(ce.keys, eventID, now, body)}
	if ce.ep.LegacySignature {
		h["X-Webhook-Signature"] = []string{signature.Legacy(ce.legacy, body)}
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
	start := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		return postResult{latency: time.Since(start), err: err.Error()}
	}
	defer resp.Body.Close()
	snippet := readSnippet(resp.Body)
	// Drain a little more so the connection can be reused; a huge body just closes it.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	return postResult{
		status: resp.StatusCode, latency: time.Since(start), body: snippet,
		retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
}

// snippetBufs are the buffers readSnippet reads into.
var snippetBufs = sync.Pool{New: func() any { return new([maxResponseBody]byte) }}

// readSnippet reads the first maxResponseBody bytes of a response body; an empty body (the
// common answer) allocates nothing.
func readSnippet(body io.Reader) string {
	buf := snippetBufs.Get().(*[maxResponseBody]byte)
	defer snippetBufs.Put(buf)
	n, _ := io.ReadFull(body, buf[:])
	return string(buf[:n])
}

// parseRetryAfter reads delay-seconds or an HTTP date; anything else is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// endpoint returns the endpoint with its parsed signing keys, from a short-lived cache.
func (d *Deliverer) endpoint(ctx context.Context, id string) (cachedEndpoint, error) {
	d.mu.Lock()
	ce, ok := d.cache[id]
	d.mu.Unlock()
	if ok && time.Now().Before(ce.expires) {
		return ce, nil
	}
	ep, err := d.store.Endpoint(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return ce, err
	}
	if err != nil {
		return ce, fmt.Errorf("%w: %w", errStore, err)
	}
	ce = cachedEndpoint{ep: ep, expires: time.Now().Add(endpointCacheTTL)}
	if ep.Enabled && !ep.Deleted {
		cur, err := signature.ParseSecret(ep.Secret)
		if err != nil {
			return ce, fmt.Errorf("endpoint %s secret: %w", id, err)
		}
		ce.keys, ce.legacy = []signature.Secret{cur}, cur
		if ep.PreviousSecret != nil && ep.PreviousSecretExpiresAt != nil && time.Now().Before(*ep.PreviousSecretExpiresAt) {
			if prev, err := signature.ParseSecret(*ep.PreviousSecret); err == nil {
				ce.keys = append(ce.keys, prev)
				// The cache must not sign with the old key past its expiry.
				ce.expires = minTime(ce.expires, *ep.PreviousSecretExpiresAt)
			}
		}
	}
	d.mu.Lock()
	d.cache[id] = ce
	d.mu.Unlock()
	return ce, nil
}

func (d *Deliverer) forget(id string) {
	d.mu.Lock()
	delete(d.cache, id)
	d.mu.Unlock()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

type deliveryMetrics struct {
	outcomes       metric.Int64Counter
	delivered      metric.AddOption // the common outcome's attributes, built once
	latency        metric.Float64Histogram
	recordFailures metric.Int64Counter
}

func newDeliveryMetrics(m metric.Meter) (deliveryMetrics, error) {
	dm := deliveryMetrics{delivered: metric.WithAttributes(attribute.String("outcome", "delivered"))}
	var err error
	if dm.outcomes, err = m.Int64Counter("webhook_deliveries", metric.WithDescription("Delivery outcomes: delivered, retry, exhausted, terminated, deferred, continued (interrupted by shutdown), store_wait (held while Postgres is down)")); err != nil {
		return dm, err
	}
	if dm.latency, err = m.Float64Histogram("webhook_attempt_duration", metric.WithUnit("s"), metric.WithDescription("HTTP attempt latency")); err != nil {
		return dm, err
	}
	if dm.recordFailures, err = m.Int64Counter("webhook_attempt_record_failures", metric.WithDescription("Attempts that could not be written to Postgres")); err != nil {
		return dm, err
	}
	return dm, nil
}

// Package outbox publishes events reliably: a service inserts the event into the outbox table in
// the same transaction as the state change it reports, and a Relay publishes unpublished rows to
// JetStream with their Nats-Msg-Id. A crash between commit and publish leaves the row for the
// next pass; a crash between publish and marking republishes it into the stream's duplicate
// window, where it is dropped.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
)

// Message is one event on its way through the outbox: the row the relay publishes.
type Message struct {
	Subject string
	MsgID   string            // Nats-Msg-Id: deterministic, so a re-run is deduplicated
	Headers map[string]string // Ctrip-Event-Type and the trace context
	Payload []byte            // the envelope's JSON
	EventID string            // the envelope's id, for audit rows and logs
}

// NewMessage builds the outbox message of an event on subject: the envelope around data (type
// from the subject, a fresh id, now), its JSON, and the headers the relay publishes with — the
// event type and the trace context of ctx (the relay adds Nats-Msg-Id).
func NewMessage(ctx context.Context, subject, msgID string, data any) (Message, error) {
	env, err := event.New(event.TypeForSubject(subject), data)
	if err != nil {
		return Message{}, err
	}
	body, err := json.Marshal(env)
	if err != nil {
		return Message{}, fmt.Errorf("event: marshal envelope: %w", err)
	}
	h := nats.Header{}
	natsbus.Inject(ctx, h)
	headers := map[string]string{event.HeaderEventType: env.Type}
	for k := range h {
		headers[k] = h.Get(k)
	}
	return Message{Subject: subject, MsgID: msgID, Headers: headers, Payload: body, EventID: env.ID}, nil
}

// Add writes one message in the caller's transaction (or on the DB). A second Add with the same
// MsgID is ignored. The event's owner (data.merchant_id, data.payment_id of the envelope) is
// stored alongside, NULL when absent, so that the api can read a payment's or a merchant's
// events back.
func Add(ctx context.Context, q sqlx.ExecerContext, m Message) error {
	headers := m.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	h, err := json.Marshal(headers)
	if err != nil {
		return err
	}
	var owner struct {
		Data struct {
			MerchantID string `json:"merchant_id"`
			PaymentID  string `json:"payment_id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(m.Payload, &owner) // a payload that is not an envelope has no owner
	_, err = q.ExecContext(ctx, `INSERT INTO outbox (subject, msg_id, headers, payload, merchant_id, payment_id)
		VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, ''))
		ON CONFLICT (msg_id) DO NOTHING`, m.Subject, m.MsgID, h, m.Payload, owner.Data.MerchantID, owner.Data.PaymentID)
	if err != nil {
		return fmt.Errorf("outbox add %s: %w", m.MsgID, err)
	}
	return nil
}

// Publisher is the part of jetstream.JetStream the relay uses.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Relay publishes the outbox. Several relays (replicas) may run: rows are claimed with
// FOR UPDATE SKIP LOCKED.
//
// One bad row never blocks the others. A row the server rejects (larger than its max payload, a
// JetStream API error) or that cannot be decoded is retried with exponential backoff from
// RetryBase and, after MaxAttempts, parked with its error — logged and counted in
// ctrip.outbox.parked_rows — while later rows flow. An error that is not the row's (NATS disconnected,
// a timeout, no stream answering) stops the pass without charging the row: every row would fail
// alike, and none should be parked for our outage.
type Relay struct {
	DB          *sqlx.DB
	JS          Publisher
	Log         *slog.Logger
	Meter       metric.Meter  // optional: ctrip.outbox.parked_rows, .publish_failures, .backlog, .oldest.age
	Interval    time.Duration // poll interval; default 200ms
	Batch       int           // rows per pass; default 100
	RetryBase   time.Duration // first retry of a rejected row; default 1s, doubling up to 5m
	MaxAttempts int           // rejected publishes before a row is parked; default 10
	// Tracer records a span per published row, a child of the trace context stored with the
	// row; default: the global provider's (telemetry.Setup installs the service's).
	Tracer trace.Tracer

	metricsOnce sync.Once
	parked      metric.Int64Counter
	failures    metric.Int64Counter
}

// Run publishes until ctx is cancelled. Kick (optional) wakes it early after a write.
func (r *Relay) Run(ctx context.Context, kick <-chan struct{}) {
	interval := r.Interval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			n, err := r.Flush(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.Log.Warn("outbox relay", "err", err)
				}
				break
			}
			if n < r.batch() {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
	}
}

func (r *Relay) batch() int {
	if r.Batch <= 0 {
		return 100
	}
	return r.Batch
}

func (r *Relay) maxAttempts() int {
	if r.MaxAttempts <= 0 {
		return 10
	}
	return r.MaxAttempts
}

// retryAfter is the wait before the next try of a row rejected attempts times.
func (r *Relay) retryAfter(attempts int) time.Duration {
	base := r.RetryBase
	if base <= 0 {
		base = time.Second
	}
	const ceiling = 5 * time.Minute
	d := base
	for i := 1; i < attempts && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

func (r *Relay) initMetrics() {
	r.metricsOnce.Do(func() {
		m := r.Meter
		if m == nil {
			m = noop.NewMeterProvider().Meter("outbox")
		}
		r.parked, _ = m.Int64Counter("ctrip.outbox.parked_rows", metric.WithUnit("{row}"), metric.WithDescription("Outbox rows parked after repeated rejected publishes"))
		r.failures, _ = m.Int64Counter("ctrip.outbox.publish_failures", metric.WithUnit("{publish}"), metric.WithDescription("Outbox publishes rejected for the row itself (retried with backoff)"))
		if r.Meter != nil {
			if _, err := RegisterBacklog(r.Meter, r.DB); err != nil {
				r.Log.Warn("outbox backlog metrics", "err", err)
			}
		}
	})
}

type row struct {
	ID       int64  `db:"id"`
	Subject  string `db:"subject"`
	MsgID    string `db:"msg_id"`
	Headers  []byte `db:"headers"`
	Payload  []byte `db:"payload"`
	Attempts int    `db:"attempts"`
}

// rowError is a failure that belongs to one row: retrying others is worthwhile.
type rowError struct{ err error }

func (e rowError) Error() string { return e.err.Error() }
func (e rowError) Unwrap() error { return e.err }

// rowsFault reports whether a publish error is the row's own: the server or the client refused
// this message. Anything else — a lost connection, a timeout, no responders — would fail every
// row alike.
func rowsFault(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) || errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) ||
		errors.Is(err, nats.ErrBadHeaderMsg)
}

func (r *Relay) tracer() trace.Tracer {
	if r.Tracer == nil {
		return otel.Tracer("outbox")
	}
	return r.Tracer
}

// publish sends one row in a span of its own: a child of the trace context stored with the row
// (the span that wrote the event), continued in whatever process relays it and after any
// restart. The message carries the publish span's context rather than the row's, so each
// consumer's span hangs under the publish it received: writer → publish → consumer reads as
// the hops the event took, and a row published twice (a crash before it was marked) shows both.
func (r *Relay) publish(ctx context.Context, rw row) (err error) {
	m := nats.NewMsg(rw.Subject)
	m.Data = rw.Payload
	var hdr map[string]string
	if err := json.Unmarshal(rw.Headers, &hdr); err != nil {
		return rowError{fmt.Errorf("headers: %w", err)}
	}
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	m.Header.Set(jetstream.MsgIDHeader, rw.MsgID)
	sctx, span := r.tracer().Start(natsbus.Extract(ctx, m.Header), "outbox publish "+rw.Subject,
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
			attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", rw.Subject),
			attribute.String("messaging.message.id", rw.MsgID), attribute.Int("outbox.attempts", rw.Attempts)))
	defer func() { natsbus.EndSpan(span, err) }()
	natsbus.Inject(sctx, m.Header)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.JS.PublishMsg(pctx, m); err != nil {
		if rowsFault(err) {
			return rowError{err}
		}
		return err
	}
	return nil
}

// Flush publishes one batch of due rows in order and returns how many it published. Rows the
// server rejects are charged an attempt (and parked past MaxAttempts) and the pass goes on; an
// error that is not a row's stops it.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	r.initMetrics()
	tx, err := r.DB.BeginTxx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var rows []row
	if err := tx.SelectContext(ctx, &rows, `SELECT id, subject, msg_id, headers, payload, attempts FROM outbox
		WHERE published_at IS NULL AND parked_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= now())
		ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, r.batch()); err != nil {
		return 0, fmt.Errorf("outbox select: %w", err)
	}
	var done []int64
	var passErr error
	changed := false
	for _, rw := range rows {
		err := r.publish(ctx, rw)
		var re rowError
		switch {
		case err == nil:
			done = append(done, rw.ID)
			continue
		case !errors.As(err, &re):
			passErr = fmt.Errorf("publish %s: %w", rw.MsgID, err)
		default:
			if err := r.reject(ctx, tx, rw, re); err != nil {
				return 0, err
			}
			changed = true
			continue
		}
		break
	}
	if len(done) > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET published_at = now() WHERE id = ANY($1)`, pqInt64Array(done)); err != nil {
			return 0, fmt.Errorf("outbox mark: %w", err)
		}
		changed = true
	}
	if changed {
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("outbox commit: %w", err)
		}
	}
	return len(done), passErr
}

// reject charges a row one failed attempt: it is retried after a backoff, or parked.
func (r *Relay) reject(ctx context.Context, tx *sqlx.Tx, rw row, cause error) error {
	attempts := rw.Attempts + 1
	msg := natsbus.Truncate(cause.Error(), 1024)
	r.failures.Add(ctx, 1)
	if attempts >= r.maxAttempts() {
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = $2, last_error = $3, parked_at = now() WHERE id = $1`,
			rw.ID, attempts, msg); err != nil {
			return fmt.Errorf("outbox park: %w", err)
		}
		r.parked.Add(ctx, 1)
		r.Log.ErrorContext(ctx, "outbox row parked: it cannot be published", "outbox_id", rw.ID, "msg_id", rw.MsgID,
			"subject", rw.Subject, "attempts", attempts, "err", msg)
		return nil
	}
	wait := r.retryAfter(attempts)
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = $2, last_error = $3, next_attempt_at = now() + $4 * interval '1 microsecond' WHERE id = $1`,
		rw.ID, attempts, msg, wait.Microseconds()); err != nil {
		return fmt.Errorf("outbox retry: %w", err)
	}
	r.Log.WarnContext(ctx, "outbox row rejected; retrying later", "outbox_id", rw.ID, "msg_id", rw.MsgID,
		"attempts", attempts, "retry_in", wait, "err", msg)
	return nil
}

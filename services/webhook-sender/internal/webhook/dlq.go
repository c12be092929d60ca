package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/deadletter"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
)

// Dead-letter headers on dlq.webhooks.<endpoint_id>.
const (
	HeaderDlqID            = "Dlq-Id"
	HeaderDlqReason        = "Dlq-Reason"
	HeaderDlqOriginStream  = "Dlq-Origin-Stream"
	HeaderDlqOriginSeq     = "Dlq-Origin-Seq"
	HeaderDlqOriginSubject = "Dlq-Origin-Subject"
	HeaderDlqDeliveries    = "Dlq-Deliveries"
	HeaderDlqLastError     = "Dlq-Last-Error"
	// HeaderDlqBodyTruncated, on a copy whose original did not fit beside the Dlq-* headers
	// under the server's max payload, is the original body's size in bytes; the copy holds the
	// body's first bytes, the full body is in webhook_dead_letters (Dlq-Id), and a replay must go
	// through the API (POST /v1/dead-letters/{id}/replay), which sends the stored body.
	HeaderDlqBodyTruncated = "Dlq-Body-Truncated"
	// DLQSubjectPrefix + endpoint id is where dead letters are copied.
	DLQSubjectPrefix = "dlq.webhooks."
)

const (
	advisoryMaxDeliveries = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."
	advisoryTerminated    = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED."
)

// advisory holds the fields shared by the MAX_DELIVERIES and MSG_TERMINATED advisories.
type advisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
	Reason     string `json:"reason"` // MSG_TERMINATED only
}

// MsgGetter fetches an original message by stream sequence.
type MsgGetter interface {
	GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error)
}

// DLQProcessor turns each advisory on DLQ into a dead letter: a row in Postgres and a copy of
// the original on dlq.webhooks.<endpoint_id> with Dlq-* headers, once per original.
type DLQProcessor struct {
	DLQConfig
}

// DLQConfig wires a DLQProcessor.
type DLQConfig struct {
	Store  DeadLetterStore
	Origin MsgGetter // the WEBHOOKS stream
	JS     Publisher
	// MaxPayload is the server's limit (nats.Conn.MaxPayload); a copy is cut to fit it. 0: no cut.
	MaxPayload int64
	Log        *slog.Logger
}

// Validate reports what a DLQProcessor cannot run without.
func (c DLQConfig) Validate() error {
	if c.Store == nil || c.Origin == nil || c.JS == nil || c.Log == nil {
		return errors.New("dlq: Store, Origin, JS and Log are required")
	}
	if c.MaxPayload < 0 {
		return errors.New("dlq: MaxPayload must not be negative")
	}
	return nil
}

// NewDLQProcessor builds the dead-letter stage.
func NewDLQProcessor(c DLQConfig) (*DLQProcessor, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &DLQProcessor{DLQConfig: c}, nil
}

// Handle is the port of the DLQ consumer: natsbus settles each advisory by the error.
func (p *DLQProcessor) Handle(ctx context.Context, msg jetstream.Msg) error {
	return p.process(ctx, msg.Subject(), msg.Data())
}

func (p *DLQProcessor) process(ctx context.Context, subject string, data []byte) error {
	var adv advisory
	if err := json.Unmarshal(data, &adv); err != nil || adv.StreamSeq == 0 {
		return fault.Invalid(ReasonPoison, fmt.Errorf("undecodable advisory on %s: %v", subject, err))
	}
	reason, lastErr := ReasonMaxDeliveries, ""
	if strings.HasPrefix(subject, advisoryTerminated) {
		// The sender terminates with "<code>: <detail>".
		code, detail, _ := strings.Cut(adv.Reason, ": ")
		reason, lastErr = code, detail
		if reason == "" {
			reason = "terminated"
		}
	} else if !strings.HasPrefix(subject, advisoryMaxDeliveries) {
		return fault.Invalid(ReasonPoison, fmt.Errorf("unexpected advisory subject %s", subject))
	}

	dl := deadletter.Letter{
		ID: event.NewID("dl"), OriginStream: adv.Stream, OriginSeq: adv.StreamSeq,
		Reason: reason, Deliveries: adv.Deliveries, Headers: deadletter.Headers{},
	}
	orig, err := p.Origin.GetMsg(ctx, adv.StreamSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		// Aged out of WEBHOOKS before we got here: keep what the advisory says.
		dl.OriginSubject, dl.EndpointID = "", "unknown"
		dl.Body = []byte{}
		lastErr = strings.TrimSpace(lastErr + " (original message no longer in " + adv.Stream + ")")
	case err != nil:
		return fault.Transient(fmt.Errorf("get %s #%d: %w", adv.Stream, adv.StreamSeq, err))
	default:
		dl.OriginSubject = orig.Subject
		dl.EndpointID = strings.TrimPrefix(orig.Subject, DeliverSubjectPrefix)
		dl.Body = orig.Data
		dl.Headers = applicationHeaders(orig.Header)
		var env event.Envelope
		if json.Unmarshal(orig.Data, &env) == nil {
			dl.EventID, dl.EventType = nonEmpty(env.ID), nonEmpty(env.Type)
			var d struct {
				PaymentID  string `json:"payment_id"`
				MerchantID string `json:"merchant_id"`
			}
			if json.Unmarshal(env.Data, &d) == nil {
				dl.PaymentID, dl.MerchantID = nonEmpty(d.PaymentID), nonEmpty(d.MerchantID)
			}
		}
		if lastErr == "" && dl.EventID != nil {
			if lastErr, err = p.Store.LastAttemptError(ctx, *dl.EventID, dl.EndpointID); err != nil {
				return fault.Transient(err)
			}
		}
	}
	if lastErr != "" {
		dl.LastError = &lastErr
	}

	saved, err := p.Store.SaveDeadLetter(ctx, dl)
	if err != nil {
		return fault.Transient(err)
	}
	log := p.Log.With("dead_letter_id", saved.ID, "origin_seq", saved.OriginSeq, "reason", saved.Reason)
	if saved.PublishedAt != nil {
		log.DebugContext(ctx, "advisory redelivered; dead letter already published")
		return nil
	}
	m := nats.NewMsg(DLQSubjectPrefix + saved.EndpointID)
	m.Data = saved.Body
	// Filtered again: a row saved before applicationHeaders existed may hold server headers.
	for k, v := range applicationHeaders(mapHeader(saved.Headers)) {
		if !strings.EqualFold(k, event.HeaderMsgID) {
			m.Header.Set(k, v)
		}
	}
	// Deterministic: a crash between publish and MarkDeadLetterPublished republishes into the
	// duplicate window and is dropped.
	m.Header.Set(event.HeaderMsgID, "dlq."+saved.OriginStream+"."+strconv.FormatUint(saved.OriginSeq, 10))
	m.Header.Set(HeaderDlqID, saved.ID)
	m.Header.Set(HeaderDlqReason, saved.Reason)
	m.Header.Set(HeaderDlqOriginStream, saved.OriginStream)
	m.Header.Set(HeaderDlqOriginSeq, strconv.FormatUint(saved.OriginSeq, 10))
	m.Header.Set(HeaderDlqOriginSubject, saved.OriginSubject)
	m.Header.Set(HeaderDlqDeliveries, strconv.Itoa(saved.Deliveries))
	if saved.LastError != nil {
		m.Header.Set(HeaderDlqLastError, headerSafe(*saved.LastError))
	}
	natsbus.Inject(ctx, m.Header)
	p.fit(m)
	ack, err := p.JS.PublishMsg(ctx, m)
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadHeaderMsg), errors.As(err, &apiErr):
		// Retrying cannot make the server take it: the row is kept (unpublished) and the
		// advisory terminated, so the processor moves on to the next one.
		return fault.Invalid("dlq_copy_rejected", fmt.Errorf("dead letter %s saved, copy refused by the server: %w", saved.ID, err))
	case err != nil:
		return fault.Transient(fmt.Errorf("publish dead letter: %w", err))
	}
	if err := p.Store.MarkDeadLetterPublished(ctx, saved.ID, ack.Sequence); err != nil {
		return fault.Transient(err)
	}
	log.WarnContext(ctx, "dead-lettered webhook delivery", "endpoint_id", saved.EndpointID, "event_id", deref(saved.EventID),
		"payment_id", deref(saved.PaymentID), "deliveries", saved.Deliveries, "last_error", deref(saved.LastError))
	return nil
}

// fit cuts the copy's body so that body and headers stay within the server's max payload
// (with room for the protocol's framing), and says so in HeaderDlqBodyTruncated.
func (p *DLQProcessor) fit(m *nats.Msg) {
	if p.MaxPayload <= 0 {
		return
	}
	const framing = 256
	hdr := len("NATS/1.0\r\n\r\n") + len(HeaderDlqBodyTruncated) + 24
	for k, vs := range m.Header {
		for _, v := range vs {
			hdr += len(k) + len(v) + 4
		}
	}
	room := int(p.MaxPayload) - hdr - framing
	if len(m.Data) <= room {
		return
	}
	m.Header.Set(HeaderDlqBodyTruncated, strconv.Itoa(len(m.Data)))
	m.Data = m.Data[:max(room, 0)]
}

// applicationHeaders are the headers of an original that its dead letter keeps: the
// publisher's own (Ctrip-Event-Type, traceparent, ...) and its Nats-Msg-Id (replays derive
// theirs from it; the copy on DLQ gets its own). Not the server's Nats-* headers — a direct get
// adds Nats-Stream, Nats-Subject, Nats-Sequence and Nats-Time-Stamp, which on the copy would give
// a reader two values of each, the original's first — and not the Dlq-* headers of an earlier
// dead letter of a replayed message: the copy gets its own.
func applicationHeaders(h nats.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		lk := strings.ToLower(k)
		if len(v) == 0 || strings.HasPrefix(lk, "dlq-") ||
			(strings.HasPrefix(lk, "nats-") && lk != strings.ToLower(event.HeaderMsgID)) {
			continue
		}
		out[k] = v[0]
	}
	return out
}

// headerSafe keeps a value on one header line and bounded.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	return natsbus.Truncate(s, 1024)
}

func mapHeader(m map[string]string) nats.Header {
	h := make(nats.Header, len(m))
	for k, v := range m {
		h[k] = []string{v}
	}
	return h
}

// nonEmpty is s for a nullable text column: nil when empty, and nil when it holds a NUL, which
// Postgres' text refuses (the row would fail on every redelivery of the advisory; the body
// keeps the value).
func nonEmpty(s string) *string {
	if s == "" || strings.ContainsRune(s, 0) {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Package deadletter replays a dead-lettered webhook delivery, once for every caller (the api's
// POST /v1/dead-letters/{id}/replay, operators' tools): it republishes the original WEBHOOKS
// message kept in webhook_dead_letters and counts the replay there. As shared/outbox keeps the
// outbox table's SQL, this package keeps the SQL of a replay on webhook_dead_letters and the
// table's row, Letter; the webhook sender writes the rows, and each caller loads them its own way
// (the api only a merchant's own) into a Letter.
package deadletter

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
)

// HeaderReplayOf marks a WEBHOOKS message republished from a dead letter: its id (scripts/dlq.sh
// sets "dlq:<dlq_seq>" instead).
const HeaderReplayOf = "Ctrip-Replay-Of"

// PublishTimeout bounds the publish of a replay.
const PublishTimeout = 5 * time.Second

// The details of these errors are written for the merchant: the api answers them as they are.
var (
	// ErrOriginalLost: the original message had aged out of WEBHOOKS when it was dead-lettered.
	ErrOriginalLost = fault.Conflict("original_lost", errors.New(
		"the original message had left the WEBHOOKS stream before it was dead-lettered; there is nothing to replay"))
	// ErrReplayRaced: a concurrent replay of the same dead letter counted first; its message,
	// with the same Nats-Msg-Id, is the one the stream kept.
	ErrReplayRaced = fault.Conflict("replay_conflict", errors.New(
		"this dead letter was replayed by a concurrent request; check replay_count and retry if needed"))
	// ErrNotFound: no dead letter has the id.
	ErrNotFound = fault.NotFound("not_found", errors.New("no such dead letter"))
)

// ErrNotPublished wraps a failed publish of a replay: nothing was counted, and the same replay
// can be retried (it has the same Nats-Msg-Id).
var ErrNotPublished = errors.New("not published")

// Letter is a row of webhook_dead_letters, every column of it: the webhook sender writes it, the
// api shows it to the merchant, a replay republishes it.
type Letter struct {
	ID             string     `db:"id"`
	OriginStream   string     `db:"origin_stream"`
	OriginSeq      uint64     `db:"origin_seq"`
	OriginSubject  string     `db:"origin_subject"` // "" when the original was lost
	EndpointID     string     `db:"endpoint_id"`
	EventID        *string    `db:"event_id"`
	EventType      *string    `db:"event_type"`
	PaymentID      *string    `db:"payment_id"`
	MerchantID     *string    `db:"merchant_id"` // from the event: who owns it when the endpoint is unknown
	Reason         string     `db:"reason"`
	Deliveries     int        `db:"deliveries"`
	LastError      *string    `db:"last_error"`
	Headers        Headers    `db:"headers"` // the original message's headers
	Body           []byte     `db:"body"`    // the original body: the webhook the merchant gets
	DLQSeq         *uint64    `db:"dlq_seq"` // the copy on dlq.webhooks.<endpoint_id>, once published
	PublishedAt    *time.Time `db:"published_at"`
	ReplayCount    int        `db:"replay_count"` // replays counted so far
	LastReplayedAt *time.Time `db:"last_replayed_at"`
	CreatedAt      time.Time  `db:"created_at"`
}

// Columns selects every column of webhook_dead_letters, in Letter's order, for a scan into a
// Letter.
const Columns = `id, origin_stream, origin_seq, origin_subject, endpoint_id, event_id, event_type, payment_id,
	merchant_id, reason, deliveries, last_error, headers, body, dlq_seq, published_at, replay_count,
	last_replayed_at, created_at`

// Headers is the headers column: a JSON object of header name to value, decoded on scan and
// encoded as a query argument.
type Headers map[string]string

// Scan decodes the JSON object of the headers column.
func (h *Headers) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*h = nil
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("dead letter headers: cannot scan %T", src)
	}
	m := map[string]string(nil)
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("dead letter headers: %w", err)
	}
	*h = m
	return nil
}

// Value encodes the headers as the JSON object the column holds.
func (h Headers) Value() (driver.Value, error) {
	return json.Marshal(map[string]string(h))
}

// Replayable reports whether the letter still has the original message (it had not aged out of
// WEBHOOKS when the dead-letter processor copied it).
func (l Letter) Replayable() bool { return l.OriginSubject != "" && len(l.Body) > 0 }

// MsgID is the Nats-Msg-Id of the next replay: "<original Nats-Msg-Id>.replay<k>" (or
// "<stream>.<seq>.replay<k>" when the original had none) for the k-th replay. It is new for every
// counted replay, so the WEBHOOKS duplicate window does not swallow it, and the same for a retry
// after a failure to count one, so that retry is dropped.
func (l Letter) MsgID() string {
	base := l.Headers[event.HeaderMsgID]
	if base == "" {
		base = l.OriginStream + "." + strconv.FormatUint(l.OriginSeq, 10)
	}
	return base + ".replay" + strconv.Itoa(l.ReplayCount+1)
}

// Message is the next replay: the original body, and so the webhook-id the merchant sees, on
// the original subject with the original event type and trace context, the replay's
// Nats-Msg-Id and HeaderReplayOf.
func (l Letter) Message() *nats.Msg {
	m := nats.NewMsg(l.OriginSubject)
	m.Data = l.Body
	for _, k := range []string{event.HeaderEventType, "traceparent", "tracestate"} {
		if v, ok := l.Headers[k]; ok {
			m.Header.Set(k, v)
		}
	}
	m.Header.Set(event.HeaderMsgID, l.MsgID())
	m.Header.Set(HeaderReplayOf, l.ID)
	return m
}

// Publisher publishes to JetStream and waits for the stream's ack.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Marker counts a replay: replay_count from seen to seen+1, ErrReplayRaced if it had moved
// (MarkReplayed does it on the table).
type Marker interface {
	MarkReplayed(ctx context.Context, id string, seen int) (int, error)
}

// Replayed is a published replay.
type Replayed struct {
	MsgID       string
	Ack         *jetstream.PubAck
	ReplayCount int // the count after this replay
}

// Replay publishes the letter's next replay and counts it. Errors: ErrOriginalLost (nothing
// published); ErrNotPublished wrapping the publish error (nothing counted); ErrReplayRaced or
// the marker's error once published (the result then has MsgID and Ack).
func Replay(ctx context.Context, js Publisher, mark Marker, l Letter) (Replayed, error) {
	if !l.Replayable() {
		return Replayed{}, fmt.Errorf("replay %s: %w", l.ID, ErrOriginalLost)
	}
	m := l.Message()
	out := Replayed{MsgID: m.Header.Get(event.HeaderMsgID)}
	pctx, cancel := context.WithTimeout(ctx, PublishTimeout)
	ack, err := js.PublishMsg(pctx, m)
	cancel()
	if err != nil {
		return Replayed{}, fmt.Errorf("replay %s: %w: %w", l.ID, ErrNotPublished, err)
	}
	out.Ack = ack
	n, err := mark.MarkReplayed(ctx, l.ID, l.ReplayCount)
	if err != nil {
		return out, fmt.Errorf("replay %s published as %s, not counted: %w", l.ID, out.MsgID, err)
	}
	out.ReplayCount = n
	return out, nil
}

// MarkReplayed moves replay_count of dead letter id from seen to seen+1 and returns it;
// ErrReplayRaced when it is no longer seen (or there is no such row).
func MarkReplayed(ctx context.Context, q sqlx.QueryerContext, id string, seen int) (int, error) {
	var n int
	err := sqlx.GetContext(ctx, q, &n, `UPDATE webhook_dead_letters SET replay_count = replay_count + 1,
		last_replayed_at = now() WHERE id = $1 AND replay_count = $2 RETURNING replay_count`, id, seen)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrReplayRaced
	}
	if err != nil {
		return 0, fmt.Errorf("mark dead letter %s replayed: %w", id, err)
	}
	return n, nil
}

// Load reads dead letter id, whoever's it is (ErrNotFound if there is none): for operators'
// tools. A merchant's call loads only the merchant's own.
func Load(ctx context.Context, q sqlx.QueryerContext, id string) (Letter, error) {
	var l Letter
	err := sqlx.GetContext(ctx, q, &l, `SELECT `+Columns+` FROM webhook_dead_letters WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Letter{}, fmt.Errorf("dead letter %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("dead letter %s: %w", id, err)
	}
	return l, nil
}

// ReplayByID loads dead letter id and replays it (Load, then Replay counting on q).
func ReplayByID(ctx context.Context, q sqlx.QueryerContext, js Publisher, id string) (Replayed, error) {
	l, err := Load(ctx, q, id)
	if err != nil {
		return Replayed{}, err
	}
	return Replay(ctx, js, table{q}, l)
}

// table is webhook_dead_letters on q as a Marker.
type table struct{ q sqlx.QueryerContext }

func (t table) MarkReplayed(ctx context.Context, id string, seen int) (int, error) {
	return MarkReplayed(ctx, t.q, id, seen)
}

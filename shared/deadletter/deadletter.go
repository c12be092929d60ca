// Package deadletter replays a dead-lettered webhook delivery, once for every caller (the api's
// POST /v1/dead-letters/{id}/replay, operators' tools): it republishes the original WEBHOOKS
// message kept in webhook_dead_letters and counts the replay there. As shared/outbox keeps the
// outbox table's SQL, this package keeps the SQL of a replay on webhook_dead_letters; the
// webhook sender writes the rows, and each caller loads them its own way (the api only a
// merchant's own).
package deadletter

import (
	"context"
	"database/sql"
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

// Letter is what a replay needs of a row of webhook_dead_letters.
type Letter struct {
	ID            string
	OriginStream  string
	OriginSeq     uint64
	OriginSubject string            // "" when the original was lost
	Headers       map[string]string // the original message's headers
	Body          []byte            // the original body: the webhook the merchant gets
	ReplayCount   int               // replays counted so far
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
	var row struct {
		ID            string `db:"id"`
		OriginStream  string `db:"origin_stream"`
		OriginSeq     uint64 `db:"origin_seq"`
		OriginSubject string `db:"origin_subject"`
		Headers       []byte `db:"headers"`
		Body          []byte `db:"body"`
		ReplayCount   int    `db:"replay_count"`
	}
	err := sqlx.GetContext(ctx, q, &row, `SELECT id, origin_stream, origin_seq, origin_subject, headers, body,
		replay_count FROM webhook_dead_letters WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Letter{}, fmt.Errorf("dead letter %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("dead letter %s: %w", id, err)
	}
	l := Letter{ID: row.ID, OriginStream: row.OriginStream, OriginSeq: row.OriginSeq, OriginSubject: row.OriginSubject,
		Body: row.Body, ReplayCount: row.ReplayCount}
	if err := json.Unmarshal(row.Headers, &l.Headers); err != nil {
		return Letter{}, fmt.Errorf("dead letter %s headers: %w", id, err)
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

// Package outbox publishes events reliably: a service inserts the event into the outbox table in
// the same transaction as the state change it reports, and a Relay publishes unpublished rows to
// JetStream with their Nats-Msg-Id. A crash between commit and publish leaves the row for the
// next pass; a crash between publish and marking republishes it into the stream's duplicate
// window, where it is dropped.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Add writes one event in the caller's transaction (or on the DB). A second Add with the same
// msgID is ignored.
func Add(ctx context.Context, q sqlx.ExecerContext, subject, msgID string, headers map[string]string, payload []byte) error {
	if headers == nil {
		headers = map[string]string{}
	}
	h, err := json.Marshal(headers)
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO outbox (subject, msg_id, headers, payload) VALUES ($1, $2, $3, $4)
		ON CONFLICT (msg_id) DO NOTHING`, subject, msgID, h, payload)
	if err != nil {
		return fmt.Errorf("outbox add %s: %w", msgID, err)
	}
	return nil
}

// Publisher is the part of jetstream.JetStream the relay uses.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Relay publishes the outbox. Several relays (replicas) may run: rows are claimed with
// FOR UPDATE SKIP LOCKED.
type Relay struct {
	DB       *sqlx.DB
	JS       Publisher
	Log      *slog.Logger
	Interval time.Duration // poll interval; default 200ms
	Batch    int           // rows per pass; default 100
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

type row struct {
	ID      int64  `db:"id"`
	Subject string `db:"subject"`
	MsgID   string `db:"msg_id"`
	Headers []byte `db:"headers"`
	Payload []byte `db:"payload"`
}

// Flush publishes one batch of unpublished rows in order and returns how many it published.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	tx, err := r.DB.BeginTxx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var rows []row
	if err := tx.SelectContext(ctx, &rows, `SELECT id, subject, msg_id, headers, payload FROM outbox
		WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, r.batch()); err != nil {
		return 0, fmt.Errorf("outbox select: %w", err)
	}
	var done []int64
	var pubErr error
	for _, rw := range rows {
		m := nats.NewMsg(rw.Subject)
		m.Data = rw.Payload
		var hdr map[string]string
		if err := json.Unmarshal(rw.Headers, &hdr); err != nil {
			return 0, fmt.Errorf("outbox row %d headers: %w", rw.ID, err)
		}
		for k, v := range hdr {
			m.Header.Set(k, v)
		}
		m.Header.Set(jetstream.MsgIDHeader, rw.MsgID)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := r.JS.PublishMsg(pctx, m)
		cancel()
		if err != nil {
			pubErr = fmt.Errorf("publish %s: %w", rw.MsgID, err)
			break
		}
		done = append(done, rw.ID)
	}
	if len(done) > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET published_at = now() WHERE id = ANY($1)`, pqInt64Array(done)); err != nil {
			return 0, fmt.Errorf("outbox mark: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("outbox commit: %w", err)
		}
	}
	return len(done), pubErr
}

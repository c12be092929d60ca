// Package postgres is the sweeper's adapter to the shared database: it reads payments, owns the
// sweeps and tx_nonces tables, and writes the confirmed → swept transition with its event.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/sweep"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/outbox"
	sharedpg "github.com/ctrip-pay/pipeline/shared/postgres"
)

// Store implements sweep.Payments and sweep.Ledger.
type Store struct {
	db *sqlx.DB
}

var (
	_ sweep.Payments = (*Store)(nil)
	_ sweep.Ledger   = (*Store)(nil)
)

// New returns a store on db.
func New(db *sqlx.DB) *Store { return &Store{db: db} }

type paymentRow struct {
	sharedpg.PaymentRow
	TraceContext natsbus.TraceCarrier `db:"trace_context"`
}

type transferRow struct {
	Late        bool   `db:"late"`
	TxHash      string `db:"tx_hash"`
	LogIndex    int64  `db:"log_index"`
	BlockNumber int64  `db:"block_number"`
	BlockHash   string `db:"block_hash"`
	Value       string `db:"value_base_units"`
	Status      string `db:"status"`
}

// Payment loads a payment and its transfers that are not reorged.
func (s *Store) Payment(ctx context.Context, id string) (sweep.Payment, error) {
	var r paymentRow
	err := s.db.GetContext(ctx, &r, `SELECT `+sharedpg.PaymentColumns+`, trace_context FROM payments WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return sweep.Payment{}, sweep.ErrNotFound
	}
	if err != nil {
		return sweep.Payment{}, fmt.Errorf("load payment %s: %w", id, err)
	}
	p := sweep.Payment{PaymentCore: r.Core(), SweepRounds: r.SweepRounds, CoveredBaseUnits: r.SweepCovered.Int(),
		TraceContext: r.TraceContext}
	var ts []transferRow
	if err := s.db.SelectContext(ctx, &ts, `SELECT tx_hash, log_index, block_number, block_hash,
		value_base_units::text AS value_base_units, status, detected_at > $2 AS late
		FROM payment_transfers WHERE payment_id = $1 AND status IN ('detected', 'confirmed')
		ORDER BY block_number, log_index`, id, r.ExpiresAt); err != nil {
		return sweep.Payment{}, fmt.Errorf("load transfers of %s: %w", id, err)
	}
	p.Transfers = make([]event.Transaction, 0, len(ts))
	p.LateBaseUnits = new(big.Int)
	for _, t := range ts {
		if v, ok := new(big.Int).SetString(t.Value, 10); ok && t.Late {
			p.LateBaseUnits.Add(p.LateBaseUnits, v)
		}
		tx := event.Transaction{TxHash: t.TxHash, BlockNumber: uint64(t.BlockNumber), BlockHash: t.BlockHash,
			ValueBaseUnits: t.Value, Status: t.Status}
		if t.LogIndex >= 0 { // -1: a native transfer has no log
			li := t.LogIndex
			tx.LogIndex = &li
		}
		p.Transfers = append(p.Transfers, tx)
	}
	return p, nil
}

// MarkSwept records a completed sweep round, in one transaction with its event: round 0 of a
// confirmed payment moves it to swept (with its audit row); a round of an expired or swept
// payment adds to what was swept and leaves the status. False: the round is recorded already
// (another replica finished it) or the payment stepped back (a reorg) — nothing is written.
func (s *Store) MarkSwept(ctx context.Context, r sweep.Round) (bool, error) {
	done := false
	err := sharedpg.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		var cur struct {
			Status string `db:"status"`
			Rounds int    `db:"sweep_rounds"`
		}
		if err := tx.GetContext(ctx, &cur, `SELECT status, sweep_rounds FROM payments WHERE id = $1 FOR UPDATE`, r.PaymentID); err != nil {
			return fmt.Errorf("load %s: %w", r.PaymentID, err)
		}
		if cur.Rounds != r.Round || (cur.Status != event.StatusConfirmed && cur.Status != event.StatusExpired && cur.Status != event.StatusSwept) ||
			(cur.Status == event.StatusConfirmed && r.Round != 0) {
			return sharedpg.ErrRollback
		}
		to := cur.Status
		if cur.Status == event.StatusConfirmed {
			to = event.StatusSwept
		}
		if _, err := tx.ExecContext(ctx, `UPDATE payments SET status = $2, swept_base_units = swept_base_units + $3,
			sweep_rounds = $4, sweep_covered_base_units = GREATEST(sweep_covered_base_units, $5), updated_at = now()
			WHERE id = $1`, r.PaymentID, to, sharedpg.NewNumeric(r.Swept), r.Round+1, sharedpg.NewNumeric(r.Covered)); err != nil {
			return fmt.Errorf("record sweep round %d of %s: %w", r.Round, r.PaymentID, err)
		}
		if to != cur.Status {
			eventID := ""
			if r.Event != nil {
				eventID = r.Event.EventID
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO payment_status_changes (payment_id, from_status, to_status, reason, event_id)
				VALUES ($1, $2, $3, $4, $5)`, r.PaymentID, cur.Status, to, r.Reason, eventID); err != nil {
				return fmt.Errorf("audit %s: %w", r.PaymentID, err)
			}
		}
		if r.Event != nil {
			if err := outbox.Add(ctx, tx, *r.Event); err != nil {
				return err
			}
		}
		done = true
		return nil
	})
	return done, err
}

// ValueLeft lists expired and swept payments whose confirmed value exceeds what their sweep
// rounds covered (the partial index payments_value_left serves it).
func (s *Store) ValueLeft(ctx context.Context, limit int) ([]string, error) {
	var ids []string
	if err := s.db.SelectContext(ctx, &ids, `SELECT id FROM payments
		WHERE status IN ('expired', 'swept') AND confirmed_base_units > sweep_covered_base_units
		ORDER BY id LIMIT $1`, limit); err != nil {
		return nil, fmt.Errorf("payments with value left: %w", err)
	}
	return ids, nil
}

// ReportFailure writes the payments.sweep_failed event.
func (s *Store) ReportFailure(ctx context.Context, evt outbox.Message) error {
	return outbox.Add(ctx, s.db, evt)
}

type sweepRow struct {
	ID          string           `db:"id"`
	PaymentID   string           `db:"payment_id"`
	Kind        string           `db:"kind"`
	Seq         int              `db:"seq"`
	Round       int              `db:"round"`
	BroadcastAt sql.NullTime     `db:"broadcast_at"`
	ChainID     int64            `db:"chain_id"`
	From        string           `db:"from_address"`
	To          string           `db:"to_address"`
	Nonce       int64            `db:"nonce"`
	Value       sharedpg.Numeric `db:"value_base_units"`
	TxHash      string           `db:"tx_hash"`
	Raw         []byte           `db:"raw_tx"`
	Status      string           `db:"status"`
	Error       sql.NullString   `db:"error"`
}

// Sweeps returns every recorded version of the payment's transactions in the order they are
// sent: gas top-ups before the token transfer, each kind in Seq order.
func (s *Store) Sweeps(ctx context.Context, paymentID string) ([]sweep.Tx, error) {
	var rows []sweepRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT id, payment_id, kind, seq, round, chain_id, from_address, to_address, nonce,
		value_base_units, tx_hash, raw_tx, status, error, broadcast_at
		FROM sweeps WHERE payment_id = $1
		ORDER BY round, CASE kind WHEN 'gas_topup' THEN 0 ELSE 1 END, seq`, paymentID); err != nil {
		return nil, fmt.Errorf("load sweeps of %s: %w", paymentID, err)
	}
	out := make([]sweep.Tx, 0, len(rows))
	for _, r := range rows {
		out = append(out, sweep.Tx{
			ID: r.ID, PaymentID: r.PaymentID, Kind: r.Kind, Seq: r.Seq, Round: r.Round, ChainID: r.ChainID,
			From: common.HexToAddress(r.From), To: common.HexToAddress(r.To), Nonce: uint64(r.Nonce), Value: r.Value.Int(),
			Hash: common.HexToHash(r.TxHash), Raw: r.Raw, Status: r.Status, Error: r.Error.String, BroadcastAt: r.BroadcastAt.Time,
		})
	}
	return out, nil
}

// Record allocates nonces, signs and inserts the drafts in one transaction. The tx_nonces row
// of each sender stays locked until commit, so concurrent sweeps from the gas tank take
// consecutive nonces.
func (s *Store) Record(ctx context.Context, paymentID string, chainID int64, drafts []sweep.Draft) ([]sweep.Tx, error) {
	out := make([]sweep.Tx, 0, len(drafts))
	err := sharedpg.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		for _, d := range drafts {
			t, err := recordDraft(ctx, tx, paymentID, chainID, d)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// recordDraft allocates the next nonce of d's sender (or, for a replacement, takes the nonce of
// the version it replaces and marks that one replaced), signs d with it and inserts the sweep.
func recordDraft(ctx context.Context, tx *sqlx.Tx, paymentID string, chainID int64, d sweep.Draft) (sweep.Tx, error) {
	from := strings.ToLower(d.From.Hex())
	var nonce int64
	if r := d.Replaces; r != nil {
		if r.From != d.From || r.Kind != d.Kind {
			return sweep.Tx{}, fmt.Errorf("a %s from %s cannot replace the %s %s from %s", d.Kind, from, r.Kind, r.Hash.Hex(), r.From.Hex())
		}
		// Guarded: a version that another handler replaced or settled first is not replaced
		// again (the caller reloads).
		res, err := tx.ExecContext(ctx, `UPDATE sweeps SET status = 'replaced', updated_at = now()
			WHERE id = $1 AND payment_id = $2 AND status IN ('signed', 'broadcast')`, r.ID, paymentID)
		if err != nil {
			return sweep.Tx{}, fmt.Errorf("mark %s replaced: %w", r.Hash.Hex(), err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return sweep.Tx{}, err
		} else if n == 0 {
			return sweep.Tx{}, sweep.ErrAlreadyRecorded
		}
		nonce = int64(r.Nonce)
	} else if err := tx.GetContext(ctx, &nonce, `INSERT INTO tx_nonces (chain_id, address, next_nonce) VALUES ($1, $2, $3)
		ON CONFLICT (chain_id, address) DO UPDATE SET next_nonce = GREATEST(tx_nonces.next_nonce, EXCLUDED.next_nonce)
		RETURNING next_nonce`, chainID, from, int64(d.PendingNonce)); err != nil {
		// next = max(stored next, the node's pending nonce): the node's count lags right
		// after a send (and behind load balancers), the stored one lags after a transaction
		// sent by anyone else.
		return sweep.Tx{}, fmt.Errorf("allocate nonce for %s: %w", from, err)
	}
	signed, err := d.Sign(uint64(nonce))
	if err != nil {
		return sweep.Tx{}, fmt.Errorf("sign %s: %w", d.Kind, err)
	}
	raw, err := signed.MarshalBinary()
	if err != nil {
		return sweep.Tx{}, err
	}
	if signed.Nonce() != uint64(nonce) {
		return sweep.Tx{}, fmt.Errorf("sign %s: signed nonce %d, allocated %d", d.Kind, signed.Nonce(), nonce)
	}
	t := sweep.Tx{
		ID: event.NewID("swp"), PaymentID: paymentID, Kind: d.Kind, Seq: d.Seq, Round: d.Round, ChainID: chainID, From: d.From, To: d.To,
		Nonce: uint64(nonce), Value: d.Value, Hash: signed.Hash(), Raw: raw, Status: sweep.StatusSigned,
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sweeps (id, payment_id, kind, seq, round, chain_id, from_address, to_address,
		nonce, value_base_units, tx_hash, raw_tx) VALUES ($1, $2, $3, $4, $12, $5, $6, $7, $8, $9, $10, $11)`,
		t.ID, paymentID, t.Kind, t.Seq, chainID, from, strings.ToLower(t.To.Hex()), nonce, sharedpg.NewNumeric(t.Value), t.Hash.Hex(), raw, t.Round); err != nil {
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "23505" { // unique_violation
			return sweep.Tx{}, sweep.ErrAlreadyRecorded
		}
		return sweep.Tx{}, fmt.Errorf("record %s sweep of %s: %w", d.Kind, paymentID, err)
	}
	if d.Replaces != nil {
		return t, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE tx_nonces SET next_nonce = $3 WHERE chain_id = $1 AND address = $2`,
		chainID, from, nonce+1); err != nil {
		return sweep.Tx{}, fmt.Errorf("advance nonce of %s: %w", from, err)
	}
	return t, nil
}

// SetStatus updates a recorded version's status; broadcast_at keeps the first broadcast. A
// mined or reverted version used its nonce: in the same transaction the other versions of the
// nonce become 'replaced' (signed before it) or 'dropped' (after it), first, so that the
// one-used-version-per-nonce index holds throughout.
func (s *Store) SetStatus(ctx context.Context, id, status, errText string) error {
	return sharedpg.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		if status == sweep.StatusMined || status == sweep.StatusFailed {
			if _, err := tx.ExecContext(ctx, `UPDATE sweeps o SET status = CASE WHEN o.seq < w.seq THEN 'replaced' ELSE 'dropped' END,
				updated_at = now()
				FROM sweeps w WHERE w.id = $1 AND o.id <> w.id AND o.payment_id = w.payment_id AND o.kind = w.kind
				AND o.from_address = w.from_address AND o.nonce = w.nonce`, id); err != nil {
				return fmt.Errorf("sweep %s: settle the other versions: %w", id, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sweeps SET status = $2, error = NULLIF($3, ''), updated_at = now(),
			broadcast_at = CASE WHEN $2 = 'broadcast' THEN COALESCE(broadcast_at, now()) ELSE broadcast_at END
			WHERE id = $1`, id, status, errText); err != nil {
			return fmt.Errorf("sweep %s status: %w", id, err)
		}
		return nil
	})
}

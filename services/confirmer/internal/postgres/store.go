// Package postgres is the confirmer's adapter to the shared database: payments and their
// transfers under a row lock, the audit trail and the outbox, in one transaction per update.
package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/jmoiron/sqlx"

	"github.com/ctrip-pay/pipeline/services/confirmer/internal/confirm"
	"github.com/ctrip-pay/pipeline/shared/outbox"
	sharedpg "github.com/ctrip-pay/pipeline/shared/postgres"
)

// Store implements the confirmer's PaymentStore and TransferFinder.
type Store struct{ db *sqlx.DB }

var (
	_ confirm.PaymentStore   = (*Store)(nil)
	_ confirm.TransferFinder = (*Store)(nil)
)

// New returns a Store on db.
func New(db *sqlx.DB) *Store { return &Store{db: db} }

type paymentRow struct {
	sharedpg.PaymentRow
	TraceContext []byte `db:"trace_context"`
}

type transferRow struct {
	sharedpg.TransferRow
	ReorgReported bool   `db:"reorg_reported"`
	Address       string `db:"address"`
}

var transferColumns = sharedpg.TransferColumns("t") + `, t.reorg_reported_at IS NOT NULL AS reorg_reported, p.address`

// UpdatePayment implements confirm.PaymentStore.
func (s *Store) UpdatePayment(ctx context.Context, paymentID string, decide func(*confirm.PaymentState) (confirm.Changes, error)) error {
	return sharedpg.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		st, err := load(ctx, tx, paymentID)
		if err != nil {
			return err
		}
		ch, err := decide(st)
		if err != nil {
			return err
		}
		if ch.IsZero() {
			return sharedpg.ErrRollback // nothing written; the row lock goes with the transaction
		}
		return write(ctx, tx, paymentID, ch)
	})
}

// load reads the payment under a row lock, with its transfers and how often it was confirmed.
func load(ctx context.Context, tx *sqlx.Tx, paymentID string) (*confirm.PaymentState, error) {
	var pr paymentRow
	err := tx.GetContext(ctx, &pr, `SELECT `+sharedpg.PaymentColumns+`, trace_context FROM payments WHERE id = $1 FOR UPDATE`, paymentID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, confirm.ErrUnknownPayment
	}
	if err != nil {
		return nil, fmt.Errorf("load payment %s: %w", paymentID, err)
	}
	st := &confirm.PaymentState{}
	if st.Payment, err = pr.payment(); err != nil {
		return nil, err
	}
	var rows []transferRow
	if err := tx.SelectContext(ctx, &rows, `SELECT `+transferColumns+`
		FROM payment_transfers t JOIN payments p ON p.id = t.payment_id
		WHERE t.payment_id = $1 ORDER BY t.block_number, t.tx_hash, t.log_index`, paymentID); err != nil {
		return nil, fmt.Errorf("load transfers of %s: %w", paymentID, err)
	}
	if st.Transfers, err = transfers(rows); err != nil {
		return nil, err
	}
	if err := tx.GetContext(ctx, &st.TimesConfirmed, `SELECT count(*) FROM payment_status_changes
		WHERE payment_id = $1 AND to_status = 'confirmed'`, paymentID); err != nil {
		return nil, fmt.Errorf("count confirmations of %s: %w", paymentID, err)
	}
	return st, nil
}

// write applies ch; every statement is guarded by the state ch was decided on.
func write(ctx context.Context, tx *sqlx.Tx, paymentID string, ch confirm.Changes) error {
	if r := ch.Record; r != nil {
		// Insert a transfer the scanner did not record, or revive a reorged one in the block
		// where it is canonical now.
		res, err := tx.ExecContext(ctx, `INSERT INTO payment_transfers
			(chain_id, tx_hash, log_index, payment_id, token_contract, value_base_units, block_number, block_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (chain_id, tx_hash, log_index) DO UPDATE SET status = 'detected',
				block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash, detected_at = now(),
				confirmed_at = NULL, reorged_at = NULL, reorg_reported_at = NULL
			WHERE payment_transfers.status = 'reorged' AND payment_transfers.payment_id = EXCLUDED.payment_id`,
			r.ChainID, r.TxHash, r.LogIndex, r.PaymentID, r.TokenContract, sharedpg.NewNumeric(r.Value), blockParam(r.BlockNumber), r.BlockHash)
		if err := one(res, err, "record transfer %s:%d", r.TxHash, r.LogIndex); err != nil {
			return err
		}
	}
	for _, u := range ch.Transfers {
		res, err := tx.ExecContext(ctx, `UPDATE payment_transfers SET status = $4,
				confirmed_at = CASE WHEN $4 = 'confirmed' THEN now() ELSE confirmed_at END,
				reorged_at = CASE WHEN $4 = 'detected' THEN NULL
					WHEN $4 = 'reorged' AND status <> 'reorged' THEN now() ELSE reorged_at END,
				reorg_reported_at = CASE WHEN $7::boolean THEN coalesce(reorg_reported_at, now()) END
			WHERE chain_id = $1 AND tx_hash = $2 AND log_index = $3 AND status = $5 AND block_hash = $6`,
			u.Key.ChainID, u.Key.TxHash, u.Key.LogIndex, u.To, u.From, u.BlockHash, u.ReorgReported)
		if err := one(res, err, "transfer %s:%d %s→%s", u.Key.TxHash, u.Key.LogIndex, u.From, u.To); err != nil {
			return err
		}
	}
	if ch.Received != nil || ch.Confirmed != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE payments SET
				received_base_units = coalesce($2::numeric, received_base_units),
				confirmed_base_units = coalesce($3::numeric, confirmed_base_units), updated_at = now()
			WHERE id = $1`, paymentID, numeric(ch.Received), numeric(ch.Confirmed)); err != nil {
			return fmt.Errorf("totals of %s: %w", paymentID, err)
		}
	}
	for _, t := range ch.Transitions {
		res, err := tx.ExecContext(ctx, `UPDATE payments SET status = $3, updated_at = now() WHERE id = $1 AND status = $2`,
			paymentID, t.From, t.To)
		if err := one(res, err, "payment %s %s→%s", paymentID, t.From, t.To); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO payment_status_changes (payment_id, from_status, to_status, reason, event_id)
			VALUES ($1, $2, $3, $4, nullif($5, ''))`, paymentID, t.From, t.To, t.Reason, t.EventID); err != nil {
			return fmt.Errorf("audit %s: %w", paymentID, err)
		}
	}
	if ch.TraceContext != nil {
		tc, err := json.Marshal(ch.TraceContext)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE payments SET trace_context = $2 WHERE id = $1 AND trace_context IS NULL`,
			paymentID, tc); err != nil {
			return fmt.Errorf("trace context of %s: %w", paymentID, err)
		}
	}
	for _, e := range ch.Events {
		if err := outbox.Add(ctx, tx, e); err != nil {
			return err
		}
	}
	return nil
}

// one checks that a guarded statement hit exactly its row.
func one(res sql.Result, err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n != 1 {
		return fmt.Errorf("%s: %w", what, confirm.ErrConflict)
	}
	return nil
}

// ToConfirm implements confirm.TransferFinder.
func (s *Store) ToConfirm(ctx context.Context, chainID int64, maxBlock uint64) ([]confirm.Transfer, error) {
	var rows []transferRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+transferColumns+`
		FROM payment_transfers t JOIN payments p ON p.id = t.payment_id
		WHERE t.chain_id = $1 AND t.status = 'detected' AND t.block_number <= $2
		ORDER BY t.block_number, t.tx_hash, t.log_index`, chainID, blockParam(maxBlock)); err != nil {
		return nil, fmt.Errorf("transfers to confirm on %d: %w", chainID, err)
	}
	return transfers(rows)
}

// Above implements confirm.TransferFinder.
func (s *Store) Above(ctx context.Context, chainID int64, block uint64) ([]confirm.Transfer, error) {
	var rows []transferRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+transferColumns+`
		FROM payment_transfers t JOIN payments p ON p.id = t.payment_id
		WHERE t.chain_id = $1 AND t.block_number > $2
		ORDER BY t.block_number, t.tx_hash, t.log_index`, chainID, blockParam(block)); err != nil {
		return nil, fmt.Errorf("transfers above %d on %d: %w", block, chainID, err)
	}
	return transfers(rows)
}

// DueForExpiry implements confirm.PaymentStore.
func (s *Store) DueForExpiry(ctx context.Context, limit int) ([]string, error) {
	var ids []string
	if err := s.db.SelectContext(ctx, &ids, `SELECT id FROM payments
		WHERE status IN ('pending', 'detected') AND expires_at < now() AND received_base_units < amount_base_units
		ORDER BY expires_at, id LIMIT $1`, limit); err != nil {
		return nil, fmt.Errorf("payments due for expiry: %w", err)
	}
	return ids, nil
}

func (r paymentRow) payment() (confirm.Payment, error) {
	p := confirm.Payment{PaymentCore: r.Core()}
	if len(r.TraceContext) > 0 {
		if err := json.Unmarshal(r.TraceContext, &p.TraceContext); err != nil {
			return p, fmt.Errorf("payment %s trace context: %w", r.ID, err)
		}
	}
	return p, nil
}

func transfers(rows []transferRow) ([]confirm.Transfer, error) {
	out := make([]confirm.Transfer, 0, len(rows))
	for _, r := range rows {
		if r.BlockNumber < 0 {
			return nil, fmt.Errorf("transfer %s:%d: negative block number %d", r.TxHash, r.LogIndex, r.BlockNumber)
		}
		out = append(out, confirm.Transfer{
			TransferKey: confirm.TransferKey{ChainID: r.ChainID, TxHash: r.TxHash, LogIndex: r.LogIndex},
			PaymentID:   r.PaymentID, TokenContract: r.TokenContract, Value: r.Value.Int(),
			BlockNumber: uint64(r.BlockNumber), BlockHash: r.BlockHash, Status: r.Status,
			ReorgReported: r.ReorgReported, Address: r.Address,
		})
	}
	return out, nil
}

// numeric is a big.Int as a numeric(78,0) parameter, NULL for nil.
func numeric(v *big.Int) any {
	if v == nil {
		return nil
	}
	return sharedpg.NewNumeric(v)
}

// blockParam is a block number as a bigint parameter; numbers beyond bigint (no real chain
// gets there) are clamped, which keeps "<=" and ">" comparisons right.
func blockParam(n uint64) int64 {
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}

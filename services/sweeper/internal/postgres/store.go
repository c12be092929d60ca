// Package postgres is the sweeper's adapter to the shared database: it reads payments, owns the
// sweeps and tx_nonces tables, and writes the confirmed → swept transition with its event.
package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/sweep"
	"github.com/ctrip-pay/pipeline/shared/event"
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
	ID                string           `db:"id"`
	MerchantID        string           `db:"merchant_id"`
	Status            string           `db:"status"`
	ChainID           int64            `db:"chain_id"`
	Token             string           `db:"token"`
	TokenContract     sql.NullString   `db:"token_contract"`
	Decimals          int              `db:"decimals"`
	Address           string           `db:"address"`
	AddressIndex      int64            `db:"address_index"`
	AmountBaseUnits   sharedpg.Numeric `db:"amount_base_units"`
	ReceivedBaseUnits sharedpg.Numeric `db:"received_base_units"`
	Metadata          json.RawMessage  `db:"metadata"`
	ExpiresAt         time.Time        `db:"expires_at"`
}

type transferRow struct {
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
	err := s.db.GetContext(ctx, &r, `SELECT id, merchant_id, status, chain_id, token, token_contract, decimals,
		address, address_index, amount_base_units, received_base_units, metadata, expires_at
		FROM payments WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return sweep.Payment{}, sweep.ErrNotFound
	}
	if err != nil {
		return sweep.Payment{}, fmt.Errorf("load payment %s: %w", id, err)
	}
	p := sweep.Payment{
		ID: r.ID, MerchantID: r.MerchantID, Status: r.Status, ChainID: r.ChainID, Token: r.Token,
		Decimals: r.Decimals, Address: r.Address, AddressIndex: r.AddressIndex,
		AmountBaseUnits: r.AmountBaseUnits.Int(), ReceivedBaseUnits: r.ReceivedBaseUnits.Int(),
		Metadata: r.Metadata, ExpiresAt: r.ExpiresAt.UTC(),
	}
	if r.TokenContract.Valid {
		c := r.TokenContract.String
		p.TokenContract = &c
	}
	var ts []transferRow
	if err := s.db.SelectContext(ctx, &ts, `SELECT tx_hash, log_index, block_number, block_hash,
		value_base_units::text AS value_base_units, status
		FROM payment_transfers WHERE payment_id = $1 AND status IN ('detected', 'confirmed')
		ORDER BY block_number, log_index`, id); err != nil {
		return sweep.Payment{}, fmt.Errorf("load transfers of %s: %w", id, err)
	}
	p.Transfers = make([]event.Transaction, 0, len(ts))
	for _, t := range ts {
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

// MarkSwept moves the payment confirmed → swept, with its audit row and event, in one
// transaction. False: the payment was not 'confirmed' (already swept, or stepped back).
func (s *Store) MarkSwept(ctx context.Context, paymentID, reason string, evt outbox.Message) (bool, error) {
	swept := false
	err := sharedpg.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE payments SET status = 'swept', updated_at = now()
			WHERE id = $1 AND status = 'confirmed'`, paymentID)
		if err != nil {
			return fmt.Errorf("mark %s swept: %w", paymentID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return sharedpg.ErrRollback
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO payment_status_changes (payment_id, from_status, to_status, reason, event_id)
			VALUES ($1, 'confirmed', 'swept', $2, $3)`, paymentID, reason, evt.EventID); err != nil {
			return fmt.Errorf("audit %s: %w", paymentID, err)
		}
		if err := outbox.Add(ctx, tx, evt); err != nil {
			return err
		}
		swept = true
		return nil
	})
	return swept, err
}

// ReportFailure writes the payments.sweep_failed event.
func (s *Store) ReportFailure(ctx context.Context, evt outbox.Message) error {
	return outbox.Add(ctx, s.db, evt)
}

type sweepRow struct {
	ID        string           `db:"id"`
	PaymentID string           `db:"payment_id"`
	Kind      string           `db:"kind"`
	ChainID   int64            `db:"chain_id"`
	From      string           `db:"from_address"`
	To        string           `db:"to_address"`
	Nonce     int64            `db:"nonce"`
	Value     sharedpg.Numeric `db:"value_base_units"`
	TxHash    string           `db:"tx_hash"`
	Raw       []byte           `db:"raw_tx"`
	Status    string           `db:"status"`
	Error     sql.NullString   `db:"error"`
}

// Sweeps returns the payment's recorded transactions in the order they are sent: the gas
// top-up before the token transfer.
func (s *Store) Sweeps(ctx context.Context, paymentID string) ([]sweep.Tx, error) {
	var rows []sweepRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT id, payment_id, kind, chain_id, from_address, to_address, nonce,
		value_base_units, tx_hash, raw_tx, status, error
		FROM sweeps WHERE payment_id = $1
		ORDER BY CASE kind WHEN 'gas_topup' THEN 0 ELSE 1 END`, paymentID); err != nil {
		return nil, fmt.Errorf("load sweeps of %s: %w", paymentID, err)
	}
	out := make([]sweep.Tx, 0, len(rows))
	for _, r := range rows {
		out = append(out, sweep.Tx{
			ID: r.ID, PaymentID: r.PaymentID, Kind: r.Kind, ChainID: r.ChainID,
			From: common.HexToAddress(r.From), To: common.HexToAddress(r.To), Nonce: uint64(r.Nonce), Value: r.Value.Int(),
			Hash: common.HexToHash(r.TxHash), Raw: r.Raw, Status: r.Status, Error: r.Error.String,
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

// recordDraft allocates the next nonce of d's sender, signs d with it and inserts the sweep.
func recordDraft(ctx context.Context, tx *sqlx.Tx, paymentID string, chainID int64, d sweep.Draft) (sweep.Tx, error) {
	from := strings.ToLower(d.From.Hex())
	var nonce int64
	// next = max(stored next, the node's pending nonce): the node's count lags right
	// after a send (and behind load balancers), the stored one lags after a transaction
	// sent by anyone else.
	if err := tx.GetContext(ctx, &nonce, `INSERT INTO tx_nonces (chain_id, address, next_nonce) VALUES ($1, $2, $3)
		ON CONFLICT (chain_id, address) DO UPDATE SET next_nonce = GREATEST(tx_nonces.next_nonce, EXCLUDED.next_nonce)
		RETURNING next_nonce`, chainID, from, int64(d.PendingNonce)); err != nil {
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
	t := sweep.Tx{
		ID: event.NewID("swp"), PaymentID: paymentID, Kind: d.Kind, ChainID: chainID, From: d.From, To: d.To,
		Nonce: uint64(nonce), Value: d.Value, Hash: signed.Hash(), Raw: raw, Status: sweep.StatusSigned,
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sweeps (id, payment_id, kind, chain_id, from_address, to_address,
		nonce, value_base_units, tx_hash, raw_tx) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		t.ID, paymentID, t.Kind, chainID, from, strings.ToLower(t.To.Hex()), nonce, sharedpg.NewNumeric(t.Value), t.Hash.Hex(), raw); err != nil {
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "23505" { // unique_violation
			return sweep.Tx{}, sweep.ErrAlreadyRecorded
		}
		return sweep.Tx{}, fmt.Errorf("record %s sweep of %s: %w", d.Kind, paymentID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE tx_nonces SET next_nonce = $3 WHERE chain_id = $1 AND address = $2`,
		chainID, from, nonce+1); err != nil {
		return sweep.Tx{}, fmt.Errorf("advance nonce of %s: %w", from, err)
	}
	return t, nil
}

// SetStatus updates a recorded transaction's status.
func (s *Store) SetStatus(ctx context.Context, id, status, errText string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE sweeps SET status = $2, error = NULLIF($3, ''), updated_at = now() WHERE id = $1`,
		id, status, errText); err != nil {
		return fmt.Errorf("sweep %s status: %w", id, err)
	}
	return nil
}

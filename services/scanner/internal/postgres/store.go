// Package postgres is the scanner's adapter to the shared database: chain_cursors and
// chain_blocks (its own), payments (read: deposit addresses) and payment_transfers (insert on
// detection).
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/ctrip-pay/pipeline/services/scanner/internal/scan"
	sharedpg "github.com/ctrip-pay/pipeline/shared/postgres"
)

// Store implements scan.Store on *sqlx.DB.
type Store struct{ db *sqlx.DB }

var _ scan.Store = (*Store)(nil)

// New wraps db.
func New(db *sqlx.DB) *Store { return &Store{db: db} }

// hex is how the database spells addresses and hashes: lower-case 0x.
func hex(v interface{ Hex() string }) string { return strings.ToLower(v.Hex()) }

// Cursor returns the last processed block of the chain, with its parent from chain_blocks.
func (s *Store) Cursor(ctx context.Context, chainID int64) (scan.Block, bool, error) {
	var row struct {
		Number int64          `db:"block_number"`
		Hash   string         `db:"block_hash"`
		Parent sql.NullString `db:"parent_hash"`
	}
	err := s.db.GetContext(ctx, &row, `SELECT c.block_number, c.block_hash, b.parent_hash
		FROM chain_cursors c
		LEFT JOIN chain_blocks b ON b.chain_id = c.chain_id AND b.number = c.block_number AND b.hash = c.block_hash
		WHERE c.chain_id = $1`, chainID)
	if errors.Is(err, sql.ErrNoRows) {
		return scan.Block{}, false, nil
	}
	if err != nil {
		return scan.Block{}, false, fmt.Errorf("cursor of chain %d: %w", chainID, err)
	}
	return scan.Block{Number: uint64(row.Number), Hash: common.HexToHash(row.Hash), Parent: common.HexToHash(row.Parent.String)}, true, nil
}

// BlockHash returns the stored hash of block number, if it is still kept.
func (s *Store) BlockHash(ctx context.Context, chainID int64, number uint64) (common.Hash, bool, error) {
	var h string
	err := s.db.GetContext(ctx, &h, `SELECT hash FROM chain_blocks WHERE chain_id = $1 AND number = $2`, chainID, int64(number))
	if errors.Is(err, sql.ErrNoRows) {
		return common.Hash{}, false, nil
	}
	if err != nil {
		return common.Hash{}, false, fmt.Errorf("block %d of chain %d: %w", number, chainID, err)
	}
	return common.HexToHash(h), true, nil
}

// CommitBlocks records blocks and moves the cursor from prev to the last of them in one
// transaction, pruning all but the newest keep blocks.
func (s *Store) CommitBlocks(ctx context.Context, chainID int64, prev *scan.Block, blocks []scan.Block, keep uint64) error {
	if len(blocks) == 0 {
		return nil
	}
	last := blocks[len(blocks)-1]
	return sharedpg.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		if err := moveCursor(ctx, tx, chainID, prev, last); err != nil {
			return err
		}
		if err := upsertBlocks(ctx, tx, chainID, blocks...); err != nil {
			return err
		}
		if last.Number >= keep {
			if _, err := tx.ExecContext(ctx, `DELETE FROM chain_blocks WHERE chain_id = $1 AND number <= $2`,
				chainID, int64(last.Number-keep)); err != nil {
				return fmt.Errorf("prune chain_blocks: %w", err)
			}
		}
		return nil
	})
}

// Rewind forgets the blocks above ancestor and moves the cursor from prev back to it.
func (s *Store) Rewind(ctx context.Context, chainID int64, prev scan.Block, ancestor scan.Block) error {
	return sharedpg.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		if err := moveCursor(ctx, tx, chainID, &prev, ancestor); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM chain_blocks WHERE chain_id = $1 AND number > $2`,
			chainID, int64(ancestor.Number)); err != nil {
			return fmt.Errorf("rewind chain_blocks: %w", err)
		}
		// Kept even when the walk went past the stored blocks, so the next parent check has it.
		return upsertBlocks(ctx, tx, chainID, ancestor)
	})
}

// moveCursor is a compare-and-set: the cursor moves only from where this scanner left it.
func moveCursor(ctx context.Context, tx *sqlx.Tx, chainID int64, prev *scan.Block, to scan.Block) error {
	var (
		res sql.Result
		err error
	)
	if prev == nil {
		res, err = tx.ExecContext(ctx, `INSERT INTO chain_cursors (chain_id, block_number, block_hash)
			VALUES ($1, $2, $3) ON CONFLICT (chain_id) DO NOTHING`, chainID, int64(to.Number), hex(to.Hash))
	} else {
		res, err = tx.ExecContext(ctx, `UPDATE chain_cursors SET block_number = $2, block_hash = $3, updated_at = now()
			WHERE chain_id = $1 AND block_number = $4 AND block_hash = $5`,
			chainID, int64(to.Number), hex(to.Hash), int64(prev.Number), hex(prev.Hash))
	}
	if err != nil {
		return fmt.Errorf("move cursor of chain %d to %d: %w", chainID, to.Number, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return scan.ErrCursorMoved
	}
	return nil
}

func upsertBlocks(ctx context.Context, tx *sqlx.Tx, chainID int64, blocks ...scan.Block) error {
	numbers := make([]int64, len(blocks))
	hashes := make([]string, len(blocks))
	parents := make([]string, len(blocks))
	for i, b := range blocks {
		numbers[i], hashes[i], parents[i] = int64(b.Number), hex(b.Hash), hex(b.Parent)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO chain_blocks (chain_id, number, hash, parent_hash)
		SELECT $1, u.number, u.hash, u.parent_hash FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(number, hash, parent_hash)
		ON CONFLICT (chain_id, number) DO UPDATE SET hash = EXCLUDED.hash, parent_hash = EXCLUDED.parent_hash`,
		chainID, pq.Array(numbers), pq.Array(hashes), pq.Array(parents))
	if err != nil {
		return fmt.Errorf("record blocks %d..%d: %w", blocks[0].Number, blocks[len(blocks)-1].Number, err)
	}
	return nil
}

// Deposits returns the deposit addresses of the payments, of every chain and any status (value
// that arrives after expiry is still recorded and reported), whose address_index is above after
// or one of missing: two ranges of the address_index key, whatever the number of payments.
func (s *Store) Deposits(ctx context.Context, after int64, missing []int64) ([]scan.Deposit, error) {
	if missing == nil {
		missing = []int64{}
	}
	var rows []struct {
		ID            string         `db:"id"`
		ChainID       int64          `db:"chain_id"`
		Address       string         `db:"address"`
		TokenContract sql.NullString `db:"token_contract"`
		Index         int64          `db:"address_index"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT id, chain_id, address, token_contract, address_index FROM payments
		WHERE address_index > $1 OR address_index = ANY($2::bigint[])`, after, pq.Array(missing)); err != nil {
		return nil, fmt.Errorf("deposit addresses after index %d: %w", after, err)
	}
	out := make([]scan.Deposit, 0, len(rows))
	for _, r := range rows {
		d := scan.Deposit{PaymentID: r.ID, ChainID: r.ChainID, Address: common.HexToAddress(r.Address), Index: r.Index}
		if r.TokenContract.Valid {
			c := common.HexToAddress(r.TokenContract.String)
			d.TokenContract = &c
		}
		out = append(out, d)
	}
	return out, nil
}

// RecordTransfers inserts the transfers of consecutive blocks from `from` on in one statement;
// a transfer already recorded in another block (re-included after a reorg) moves to its new
// block and is detected again. Each payment comes back with the total of its transfers in
// blocks before `from`, leaving out those marked reorged and those whose block the scanner has
// since seen replaced (the confirmer may not have marked them yet).
func (s *Store) RecordTransfers(ctx context.Context, from uint64, ts []scan.Transfer) (map[string]scan.Payment, error) {
	if len(ts) == 0 {
		return map[string]scan.Payment{}, nil
	}
	var (
		txHashes, paymentIDs, values, blockHashes []string
		logIndexes, blockNumbers                  []int64
		contracts                                 []sql.NullString
		ids                                       []string
		seen                                      = map[string]bool{}
	)
	for _, t := range ts {
		txHashes = append(txHashes, hex(t.TxHash))
		logIndexes = append(logIndexes, t.LogIndex)
		paymentIDs = append(paymentIDs, t.PaymentID)
		values = append(values, t.Value.String())
		blockNumbers = append(blockNumbers, int64(t.BlockNumber))
		blockHashes = append(blockHashes, hex(t.BlockHash))
		var c sql.NullString
		if t.TokenContract != nil {
			c = sql.NullString{String: hex(*t.TokenContract), Valid: true}
		}
		contracts = append(contracts, c)
		if !seen[t.PaymentID] {
			seen[t.PaymentID] = true
			ids = append(ids, t.PaymentID)
		}
	}
	// The data-modifying CTE runs whether or not the query reads it; the totals, which only
	// count earlier blocks, cannot see its rows and need not.
	var rows []scan.Payment
	err := s.db.SelectContext(ctx, &rows, `WITH recorded AS (
			INSERT INTO payment_transfers
				(chain_id, tx_hash, log_index, payment_id, token_contract, value_base_units, block_number, block_hash, status)
			SELECT $1, u.tx_hash, u.log_index, u.payment_id, u.token_contract, u.value, u.block_number, u.block_hash, 'detected'
			FROM unnest($3::text[], $4::int[], $5::text[], $6::text[], $7::numeric[], $8::bigint[], $9::text[])
				AS u(tx_hash, log_index, payment_id, token_contract, value, block_number, block_hash)
			-- A transfer re-included in another block after a reorg keeps its row as it is: the
			-- confirmer moves it once it has handled the reorg message, so payments.reorged is
			-- reported for the old block first (the detected event carries the new block).
			ON CONFLICT (chain_id, tx_hash, log_index) DO NOTHING
		)
		SELECT p.id, p.merchant_id, p.chain_id, p.token, p.token_contract, p.decimals, p.address,
			p.amount_base_units::text AS amount_base_units, p.metadata, p.expires_at, p.trace_context,
			COALESCE((SELECT sum(t.value_base_units) FROM payment_transfers t
				WHERE t.payment_id = p.id AND t.status IN ('detected', 'confirmed') AND t.block_number < $2
				  -- Only a block still kept can have been seen replaced: older ones skip the probe.
				  AND ((t.chain_id = $1 AND t.block_number < (SELECT min(number) FROM chain_blocks WHERE chain_id = $1))
				       OR NOT EXISTS (SELECT 1 FROM chain_blocks b
				                      WHERE b.chain_id = t.chain_id AND b.number = t.block_number AND b.hash <> t.block_hash))
			), 0)::text AS received
		FROM payments p WHERE p.id = ANY($10::text[])`,
		ts[0].ChainID, int64(from),
		pq.Array(txHashes), pq.Array(logIndexes), pq.Array(paymentIDs), pq.Array(contracts), pq.Array(values),
		pq.Array(blockNumbers), pq.Array(blockHashes), pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("record %d transfers from block %d: %w", len(ts), from, err)
	}
	out := make(map[string]scan.Payment, len(rows))
	for _, p := range rows {
		out[p.ID] = p
	}
	return out, nil
}

var _ scan.OpenPaymentFinder = (*Store)(nil)

// OpenPayments returns the ids of the chain's open native payments (pending or detected): the
// addresses balance reconciliation watches.
func (s *Store) OpenPayments(ctx context.Context, chainID int64) ([]string, error) {
	var ids []string
	if err := s.db.SelectContext(ctx, &ids, `SELECT id FROM payments
		WHERE chain_id = $1 AND token_contract IS NULL AND status IN ('pending', 'detected')`, chainID); err != nil {
		return nil, fmt.Errorf("open payments of chain %d: %w", chainID, err)
	}
	return ids, nil
}

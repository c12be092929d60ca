// Package scan follows one EVM chain's head block by block: it detects native and ERC-20
// transfers to deposit addresses, publishes payments.detected and chain.<id>.head, and detects
// reorgs by the parent hash of each block, walking back to the common ancestor.
package scan

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// Block is one processed block as the scanner remembers it (table chain_blocks).
type Block struct {
	Number uint64
	Hash   common.Hash
	Parent common.Hash
	Time   time.Time
}

// Deposit is a payment's deposit address on its chain. TokenContract is nil for the native
// coin. Index is the payment's address_index, taken from the deposit_address_index sequence.
type Deposit struct {
	PaymentID     string
	ChainID       int64
	Address       common.Address
	TokenContract *common.Address
	Index         int64
}

// NativeLogIndex is the log_index of a native transfer: it has no log, the value is the
// transaction's own.
const NativeLogIndex = -1

// Transfer is one transfer to a deposit address, counted towards Deposit's payment.
type Transfer struct {
	ChainID       int64
	TxHash        common.Hash
	TxIndex       uint
	LogIndex      int64 // NativeLogIndex for a native transfer
	PaymentID     string
	TokenContract *common.Address
	Value         *big.Int
	BlockNumber   uint64
	BlockHash     common.Hash
}

// Payment is what a payments.detected event says about the payment besides the transfer.
type Payment struct {
	ID              string  `db:"id"`
	MerchantID      string  `db:"merchant_id"`
	ChainID         int64   `db:"chain_id"`
	Token           string  `db:"token"`
	TokenContract   *string `db:"token_contract"`
	Decimals        int     `db:"decimals"`
	Address         string  `db:"address"`
	AmountBaseUnits string  `db:"amount_base_units"`
	// Received is the sum of the payment's transfers in blocks before those being recorded,
	// leaving out those marked reorged and those in blocks the scanner has seen replaced.
	Received  string          `db:"received"`
	Metadata  json.RawMessage `db:"metadata"`
	ExpiresAt time.Time       `db:"expires_at"`
}

// ErrCursorMoved is returned by a Store when the cursor it was asked to advance is no longer
// where the scanner left it: another scanner instance moved it. The scanner reloads it.
var ErrCursorMoved = errors.New("scan: chain cursor moved by someone else")

// CursorStore keeps the scanner's position and the recent blocks it has processed.
type CursorStore interface {
	// Cursor returns the last processed block, if any.
	Cursor(ctx context.Context, chainID int64) (Block, bool, error)
	// BlockHash returns the stored hash of a processed block, if it is still kept.
	BlockHash(ctx context.Context, chainID int64, number uint64) (common.Hash, bool, error)
	// CommitBlocks records blocks (consecutive, oldest first) as processed and moves the
	// cursor from prev (nil: no cursor yet) to the last of them in one transaction, pruning
	// all but the newest keep blocks; ErrCursorMoved if the cursor is not at prev.
	CommitBlocks(ctx context.Context, chainID int64, prev *Block, blocks []Block, keep uint64) error
	// Rewind forgets every block above ancestor and moves the cursor from prev back to it.
	Rewind(ctx context.Context, chainID int64, prev Block, ancestor Block) error
}

// DepositFinder lists the deposit addresses of payments of any status, by address_index.
type DepositFinder interface {
	// Deposits returns the payments, of every chain, whose address_index is above after or
	// one of missing.
	Deposits(ctx context.Context, after int64, missing []int64) ([]Deposit, error)
}

// TransferRecorder stores detected transfers idempotently.
type TransferRecorder interface {
	// RecordTransfers inserts the transfers of consecutive blocks from `from` on — moving one
	// recorded in another block (re-included after a reorg) to its new one — and returns
	// their payments by id.
	RecordTransfers(ctx context.Context, from uint64, ts []Transfer) (map[string]Payment, error)
}

// Store is everything the scanner keeps in Postgres.
type Store interface {
	CursorStore
	DepositFinder
	TransferRecorder
}

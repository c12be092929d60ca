// Package scan follows one EVM chain's head block by block: it detects native and ERC-20
// transfers to deposit addresses — ETH paid from inside a contract's transaction too, from
// block traces where the node has the debug API and by reconciling balances where it has not
// (internal.go, reconcile.go) — publishes payments.detected and chain.<id>.head, and detects
// reorgs by the parent hash of each block, walking back to the common ancestor.
package scan

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
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

// Native transfers have no log, so their log_index (payment_transfers' key is chain, tx_hash,
// log_index; a log's index is ≥ 0) holds a negative number that says what moved the value and
// stays the same however often a block is scanned:
//
//   - NativeLogIndex (−1): the transaction's own value, paid to the deposit address by a
//     transaction sent to it.
//   - InternalLogIndex(n) (−2 … −2^30+1): the value of a CALL inside the transaction (a Safe,
//     an exchange's batch payout, a payment router), seen in the node's callTracer trace; n is
//     the frame's place among the transaction's value-carrying CALL frames below the top
//     call, counted depth-first in call order, reverted ones included — a property of the
//     transaction alone, not of which addresses are deposits.
//   - ReconciledLogIndex(i) (−2^30 … −2^31+1): a balance increase of deposit address index i
//     in a block that no transfer the scanner detected explains (chains whose node has no
//     debug API). No transaction carries it, so its tx_hash is the hash of that block, which is
//     the evidence; the block hash with the address's index is unique per address and block,
//     and no real transaction has a block's hash.
//
// The ranges do not overlap each other or any log index.
const NativeLogIndex = -1

const (
	// maxInternalOrdinal is the last frame place InternalLogIndex encodes: a transaction
	// would need a billion value-carrying calls (9,000 gas each) to go past it.
	maxInternalOrdinal = 1<<30 - 3
	reconciledBase     = -(1 << 30)
	reconciledSpan     = 1 << 30
)

// InternalLogIndex is the log_index of the transfer made by the n-th (from 0) value-carrying
// CALL frame below a transaction's top call.
func InternalLogIndex(n int) int64 { return int64(-2 - n) }

// ReconciledLogIndex is the log_index of a reconciled balance increase of the deposit address
// with address_index index. Indexes are BIP-32 child numbers (below 2^31); two open payments
// share a log_index only if their indexes are 2^30 apart, and then only in a block where both
// balances rose unexplained.
func ReconciledLogIndex(index int64) int64 {
	return int64(reconciledBase) - ((index%reconciledSpan)+reconciledSpan)%reconciledSpan
}

// Transfer is one transfer to a deposit address, counted towards Deposit's payment.
type Transfer struct {
	ChainID       int64
	TxHash        common.Hash
	TxIndex       uint
	LogIndex      int64 // NativeLogIndex, InternalLogIndex or ReconciledLogIndex for a native transfer
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
	// TraceContext is the payment's trace (the api request that created it): a detection
	// continues it.
	TraceContext natsbus.TraceCarrier `db:"trace_context"`
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

// OpenPaymentFinder is what a Store may offer besides: the payments of a chain that are open
// (pending or detected). Balance reconciliation then reads only the addresses of open native
// payments; with a Store without it, every native deposit address is reconciled, whatever its
// payment's status.
type OpenPaymentFinder interface {
	// OpenPayments returns the ids of the chain's open payments.
	OpenPayments(ctx context.Context, chainID int64) ([]string, error)
}

// Store is everything the scanner keeps in Postgres.
type Store interface {
	CursorStore
	DepositFinder
	TransferRecorder
}

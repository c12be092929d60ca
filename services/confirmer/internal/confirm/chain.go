package confirm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// ChainReader is what the confirmer reads from a chain's RPC node; *ethclient.Client is one.
type ChainReader interface {
	BlockNumber(ctx context.Context) (uint64, error)
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	TransactionReceipt(ctx context.Context, txHash common.Hash) (*types.Receipt, error)
}

// transferTopic is topic 0 of an ERC-20 Transfer(address,address,uint256) log.
var transferTopic = crypto.Keccak256Hash([]byte("Transfer(address,address,uint256)"))

type outcome int

const (
	// verified: the block is canonical and holds the transfer as recorded.
	verified outcome = iota
	// orphaned: the block left the canonical chain.
	orphaned
	// invalid: the block is canonical but the transfer is not in it as recorded (a failed
	// transaction, no such Transfer log).
	invalid
)

type verdict struct {
	outcome outcome
	why     string
}

// verify re-checks a transfer against the chain now: its block is canonical, its receipt is
// in that block with status 1 and, for a token, holds the Transfer log at its index. An error
// is an RPC failure or a disagreement that only a retry can settle (a node behind a load
// balancer that has not seen the block yet).
func (c *Confirmer) verify(ctx context.Context, chain Chain, t Transfer) (verdict, error) {
	canonical, err := c.canonical(ctx, chain, t.BlockNumber, t.BlockHash)
	if err != nil {
		return verdict{}, err
	}
	if !canonical {
		return verdict{outcome: orphaned}, nil
	}
	if sameHash(t.TxHash, t.BlockHash) {
		// A balance increase the scanner reconciled (no debug API on the node): no transaction
		// carries it, so its tx_hash is its block's hash, and that block being canonical is
		// all there is to check.
		return verdict{outcome: verified}, nil
	}
	rctx, cancel := context.WithTimeout(ctx, c.rpcTimeout)
	defer cancel()
	rcpt, err := chain.RPC.TransactionReceipt(rctx, common.HexToHash(t.TxHash))
	if errors.Is(err, ethereum.NotFound) {
		return verdict{}, fmt.Errorf("no receipt for %s although block %d is canonical", t.TxHash, t.BlockNumber)
	}
	if err != nil {
		return verdict{}, fmt.Errorf("receipt %s: %w", t.TxHash, err)
	}
	if rcpt.BlockHash != common.HexToHash(t.BlockHash) {
		return verdict{}, fmt.Errorf("receipt of %s is in block %s, the canonical block %d is %s",
			t.TxHash, rcpt.BlockHash.Hex(), t.BlockNumber, t.BlockHash)
	}
	if rcpt.Status != types.ReceiptStatusSuccessful {
		return verdict{outcome: invalid, why: "transaction failed (receipt status 0)"}, nil
	}
	if t.LogIndex < 0 {
		return verdict{outcome: verified}, nil
	}
	if why := transferLogMismatch(rcpt, t); why != "" {
		return verdict{outcome: invalid, why: why}, nil
	}
	return verdict{outcome: verified}, nil
}

// transferLogMismatch checks that the receipt holds, at the transfer's log index, a Transfer
// log of the token to the deposit address for the recorded value; it says what differs.
func transferLogMismatch(rcpt *types.Receipt, t Transfer) string {
	for _, l := range rcpt.Logs {
		if int64(l.Index) != t.LogIndex {
			continue
		}
		switch {
		case t.TokenContract == nil || l.Address != common.HexToAddress(*t.TokenContract):
			return fmt.Sprintf("log %d is from %s, not the token", t.LogIndex, l.Address.Hex())
		case len(l.Topics) != 3 || l.Topics[0] != transferTopic:
			return fmt.Sprintf("log %d is not an ERC-20 Transfer", t.LogIndex)
		case common.BytesToAddress(l.Topics[2].Bytes()) != common.HexToAddress(t.Address):
			return fmt.Sprintf("log %d pays %s, not the deposit address", t.LogIndex, common.BytesToAddress(l.Topics[2].Bytes()).Hex())
		case len(l.Data) != 32 || !bytes.Equal(l.Data, common.LeftPadBytes(t.Value.Bytes(), 32)):
			return fmt.Sprintf("log %d carries another value", t.LogIndex)
		}
		return ""
	}
	return fmt.Sprintf("receipt has no log %d", t.LogIndex)
}

// canonical reports whether hash is the canonical block at number now.
func (c *Confirmer) canonical(ctx context.Context, chain Chain, number uint64, hash string) (bool, error) {
	got, err := c.canonicalHash(ctx, chain, number)
	if err != nil {
		return false, err
	}
	return sameHash(got, hash), nil
}

// canonicalHash is the hash of the canonical block at number, "" if the chain is shorter.
func (c *Confirmer) canonicalHash(ctx context.Context, chain Chain, number uint64) (string, error) {
	if number > math.MaxInt64 {
		return "", fmt.Errorf("block number %d out of range", number)
	}
	rctx, cancel := context.WithTimeout(ctx, c.rpcTimeout)
	defer cancel()
	// A non-negative number: go-ethereum reads negative ones as tags (latest, safe, finalized).
	h, err := chain.RPC.HeaderByNumber(rctx, new(big.Int).SetUint64(number))
	if errors.Is(err, ethereum.NotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("header %d: %w", number, err)
	}
	return h.Hash().Hex(), nil
}

func (c *Confirmer) tip(ctx context.Context, chain Chain) (uint64, error) {
	rctx, cancel := context.WithTimeout(ctx, c.rpcTimeout)
	defer cancel()
	n, err := chain.RPC.BlockNumber(rctx)
	if err != nil {
		return 0, fmt.Errorf("block number: %w", err)
	}
	return n, nil
}

func sameHash(a, b string) bool {
	return a != "" && b != "" && common.HexToHash(a) == common.HexToHash(b)
}

package scan

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// TransferTopic is topic[0] of the ERC-20 event Transfer(address indexed from, address indexed
// to, uint256 value).
var TransferTopic = crypto.Keccak256Hash([]byte("Transfer(address,address,uint256)"))

// logsQuery is the eth_getLogs filter for the configured tokens' Transfer logs in blocks
// from..to.
func (s *Scanner) logsQuery(from, to uint64) map[string]any {
	return map[string]any{
		"fromBlock": hexutil.EncodeUint64(from),
		"toBlock":   hexutil.EncodeUint64(to),
		"address":   s.tokens,
		"topics":    [][]common.Hash{{TransferTopic}},
	}
}

// blockLogs makes sure logs are the Transfer logs of blk itself. The range query ran a moment
// before the block was fetched and may have seen another fork: logs carrying another block
// hash, or none where the block's bloom says the tokens emitted some, are fetched again by the
// block's hash.
func (s *Scanner) blockLogs(ctx context.Context, blk *types.Block, logs []types.Log) ([]types.Log, error) {
	if len(s.tokens) == 0 {
		return nil, nil
	}
	stale := false
	for _, l := range logs {
		if l.BlockHash != blk.Hash() {
			stale = true
		}
	}
	if !stale && len(logs) > 0 {
		return logs, nil
	}
	if !stale && !s.bloomMayHaveTransfers(blk.Bloom()) {
		return nil, nil
	}
	h := blk.Hash()
	q := ethereum.FilterQuery{BlockHash: &h, Addresses: s.tokens, Topics: [][]common.Hash{{TransferTopic}}}
	var fresh []types.Log
	err := s.retry(ctx, "filter_logs_by_hash", func(ctx context.Context) (err error) {
		fresh, err = s.rpc.FilterLogs(ctx, q)
		if err != nil && (errors.Is(err, ethereum.NotFound) || strings.Contains(err.Error(), "unknown block")) {
			return stop{errChainMoved}
		}
		return err
	})
	return fresh, err
}

func (s *Scanner) bloomMayHaveTransfers(b types.Bloom) bool {
	if !types.BloomLookup(b, TransferTopic) {
		return false
	}
	for _, t := range s.tokens {
		if types.BloomLookup(b, t) {
			return true
		}
	}
	return false
}

// transfers returns the transfers to deposit addresses in the block, in transaction then log
// order: the value of successful transactions sent to a native payment's address, the value
// calls inside transactions paid to one (on a node that traces blocks), and Transfer logs of
// the payment's own token.
func (s *Scanner) transfers(ctx context.Context, f fetched, logs []types.Log) ([]Transfer, error) {
	out, err := s.nativeTransfers(ctx, f)
	if err != nil {
		return nil, err
	}
	out = append(out, f.internal...)
	for _, l := range logs {
		if t, ok := s.tokenTransfer(ctx, l); ok {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b Transfer) int {
		return cmp.Or(cmp.Compare(a.TxIndex, b.TxIndex), cmp.Compare(a.LogIndex, b.LogIndex))
	})
	return out, nil
}

// nativeCandidates returns the transactions with value sent to a deposit address. It runs on
// the prefetchers' goroutines: it only reads the deposit set.
func (s *Scanner) nativeCandidates(ctx context.Context, blk *types.Block) []candidate {
	var cands []candidate
	for i, tx := range blk.Transactions() {
		to := tx.To()
		if to == nil || tx.Value().Sign() <= 0 {
			continue
		}
		dep, ok := s.deposits.lookup(*to)
		if !ok {
			continue
		}
		if dep.TokenContract != nil {
			s.log.WarnContext(ctx, "native transfer to a token payment's address not counted",
				"payment_id", dep.PaymentID, "tx_hash", tx.Hash().Hex(), "block", blk.NumberU64(), "value", tx.Value().String())
			continue
		}
		cands = append(cands, candidate{tx: tx, index: uint(i), dep: dep})
	}
	return cands
}

func (s *Scanner) nativeTransfers(ctx context.Context, f fetched) ([]Transfer, error) {
	if len(f.candidates) == 0 {
		return nil, nil
	}
	blk := f.block
	if len(f.receipts) != len(f.candidates) {
		return nil, fmt.Errorf("block %d: %d receipts for %d candidates: %w", blk.NumberU64(), len(f.receipts), len(f.candidates), errChainMoved)
	}
	var out []Transfer
	for i, c := range f.candidates {
		r := f.receipts[i]
		if r.TxHash != c.tx.Hash() || r.BlockHash != blk.Hash() {
			return nil, fmt.Errorf("block %d: receipt %d is not of this block: %w", blk.NumberU64(), c.index, errChainMoved)
		}
		if r.Status != types.ReceiptStatusSuccessful {
			// A reverted transaction moves no value.
			s.log.InfoContext(ctx, "failed transaction to a deposit address ignored",
				"payment_id", c.dep.PaymentID, "tx_hash", c.tx.Hash().Hex(), "block", blk.NumberU64())
			continue
		}
		out = append(out, Transfer{
			ChainID: s.chainID(), TxHash: c.tx.Hash(), TxIndex: c.index, LogIndex: NativeLogIndex,
			PaymentID: c.dep.PaymentID, Value: new(big.Int).Set(c.tx.Value()),
			BlockNumber: blk.NumberU64(), BlockHash: blk.Hash(),
		})
	}
	return out, nil
}

// tokenTransfer matches one Transfer log to a deposit address. Logs only exist for successful
// transactions, so no receipt is needed.
func (s *Scanner) tokenTransfer(ctx context.Context, l types.Log) (Transfer, bool) {
	// ERC-721 Transfer has the same signature with the token id indexed: four topics, no data.
	if l.Removed || len(l.Topics) != 3 || l.Topics[0] != TransferTopic || len(l.Data) != 32 {
		return Transfer{}, false
	}
	to := common.BytesToAddress(l.Topics[2].Bytes())
	dep, ok := s.deposits.lookup(to)
	if !ok {
		return Transfer{}, false
	}
	value := new(big.Int).SetBytes(l.Data)
	if value.Sign() == 0 {
		return Transfer{}, false
	}
	if dep.TokenContract == nil || *dep.TokenContract != l.Address {
		s.log.WarnContext(ctx, "transfer of another token to a payment's address not counted",
			"payment_id", dep.PaymentID, "token_contract", strings.ToLower(l.Address.Hex()),
			"tx_hash", l.TxHash.Hex(), "log_index", l.Index, "value", value.String())
		return Transfer{}, false
	}
	contract := l.Address
	return Transfer{
		ChainID: s.chainID(), TxHash: l.TxHash, TxIndex: l.TxIndex, LogIndex: int64(l.Index),
		PaymentID: dep.PaymentID, TokenContract: &contract, Value: value,
		BlockNumber: l.BlockNumber, BlockHash: l.BlockHash,
	}, true
}

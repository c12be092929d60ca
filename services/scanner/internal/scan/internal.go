package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"
)

// ETH that reaches a deposit address through a contract (a Safe or Argent wallet, an
// exchange's batch payout, a payment router) is paid by a CALL inside a transaction whose own
// `to` is the contract. Where the node offers the debug API the scanner reads those calls from
// the callTracer trace of each block (this file); elsewhere it reconciles the balances of the
// open payments' addresses (reconcile.go).

// traceMethod traces every transaction of a block pinned by its hash: a trace from another
// branch cannot slip in, as it could by number.
const traceMethod = "debug_traceBlockByHash"

// callTracer is the tracer configuration: go-ethereum's native call tracer, the call tree of
// each transaction with the value and the error of every frame.
var callTracer = map[string]any{"tracer": "callTracer"}

// probeAnswers is how many error answers other than "not offered" the probe takes before it
// gives up on the debug API: a node that answers every trace with an error is no tracer.
const probeAnswers = 3

// probeTraces finds out, once per process, whether the node traces blocks: it traces the head
// block. A "method not found" (or "not supported", "tracer not found", ...) answer means no
// debug API: the scanner reconciles balances instead, and probes how it can read them.
// Transport failures are retried like any other call.
func (s *Scanner) probeTraces(ctx context.Context) error {
	if s.probed {
		return nil
	}
	var head *types.Header
	if err := s.retry(ctx, "head", func(ctx context.Context) (err error) {
		head, err = s.rpc.HeaderByNumber(ctx, nil)
		return err
	}); err != nil {
		return err
	}
	answers := 0
	var why error
	err := s.retry(ctx, "probe_debug_api", func(ctx context.Context) error {
		var res json.RawMessage
		batch := []rpc.BatchElem{{Method: traceMethod, Args: []any{head.Hash(), callTracer}, Result: &res}}
		if err := s.rpc.BatchCallContext(ctx, batch); err != nil {
			var herr rpc.HTTPError
			if errors.As(err, &herr) && herr.StatusCode >= 400 && herr.StatusCode < 500 &&
				herr.StatusCode != http.StatusRequestTimeout && herr.StatusCode != http.StatusTooManyRequests {
				s.traces, why = false, err // a gateway that refuses the method
				return nil
			}
			return err
		}
		switch e := batch[0].Error; {
		case e == nil || strings.Contains(e.Error(), "genesis is not traceable"):
			s.traces = true
		case debugUnavailable(e):
			s.traces, why = false, e
		default:
			if answers++; answers < probeAnswers {
				return e
			}
			s.traces, why = false, e
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.traces {
		s.log.InfoContext(ctx, "the node traces blocks: transfers inside transactions are read from callTracer traces", "method", traceMethod)
	} else {
		s.log.InfoContext(ctx, "the node does not trace blocks: transfers inside transactions are found by reconciling the balances of open payments' addresses",
			"reason", why.Error(), "budget_per_block", s.cfg.ReconcileBudget)
		if err := s.probeBalanceReader(ctx); err != nil {
			return err
		}
	}
	s.probed = true
	return nil
}

// debugUnavailable reports whether err says the node does not offer the tracing method (or the
// call tracer) at all, as geth, Erigon, Nethermind and the RPC providers word it.
func debugUnavailable(err error) bool {
	var rerr rpc.Error
	if errors.As(err, &rerr) && rerr.ErrorCode() == -32601 {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"method not found", "does not exist", "unsupported method", "method not allowed",
		"not whitelisted", "not supported", "tracer not found", "unknown tracer", "is not available on"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// stateUnavailable reports whether err says the node no longer holds the state of the block
// asked about: a pruning node keeps that of the last 128 blocks only.
func stateUnavailable(err error) bool {
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"historical state", "missing trie node", "state is not available", "state not available",
		"required historical state unavailable", "state histories haven't been fully indexed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// blockGone reports whether err says the node does not know the block asked for by hash: it
// has left the chain since it was fetched.
func blockGone(err error) bool {
	msg := strings.ToLower(err.Error())
	if strings.Contains(msg, "unknown block") {
		return true
	}
	return strings.Contains(msg, "not found") &&
		(strings.Contains(msg, "block") || strings.Contains(msg, "header") || strings.Contains(msg, "hash"))
}

// txTrace is one transaction's entry in a block trace.
type txTrace struct {
	TxHash common.Hash `json:"txHash"`
	Result *callFrame  `json:"result"`
	Error  string      `json:"error"`
}

// callFrame is what the scanner reads of a callTracer frame.
type callFrame struct {
	Type  string          `json:"type"`
	To    *common.Address `json:"to"`
	Value *hexutil.Big    `json:"value"`
	Error string          `json:"error"`
	Calls []callFrame     `json:"calls"`
}

// needsTrace: a transaction that runs code may pay a deposit address from inside; one sent to
// a deposit address (a key of this wallet, no code) cannot. A block of only those, or none,
// is not traced.
func (s *Scanner) needsTrace(blk *types.Block) bool {
	for _, tx := range blk.Transactions() {
		if to := tx.To(); to == nil {
			return true
		} else if _, ok := s.deposits.lookup(*to); !ok {
			return true
		}
	}
	return false
}

// fetchTraces traces the blocks of out that need it in one batch request and sets their
// internal transfers. It returns how many of out's blocks stand: a block the node no longer
// knows by its hash ends them. A block whose state the node no longer holds is left
// untraced (and said so).
func (s *Scanner) fetchTraces(ctx context.Context, out []fetched) (int, error) {
	var need []int
	for i := range out {
		if s.needsTrace(out[i].block) {
			need = append(need, i)
		}
	}
	if len(need) == 0 {
		return len(out), nil
	}
	stand := len(out)
	err := s.retry(ctx, "traces", func(ctx context.Context) error {
		traces := make([][]txTrace, len(need))
		batch := make([]rpc.BatchElem, len(need))
		for k, i := range need {
			batch[k] = rpc.BatchElem{Method: traceMethod, Args: []any{out[i].block.Hash(), callTracer}, Result: &traces[k]}
		}
		if err := s.rpc.BatchCallContext(ctx, batch); err != nil {
			return err
		}
		for k, i := range need {
			blk := out[i].block
			if e := batch[k].Error; e != nil {
				switch {
				case stateUnavailable(e):
					out[i].untraced = true
					continue
				case blockGone(e):
					stand = i
					return stop{fmt.Errorf("trace of block %d: %w", blk.NumberU64(), errChainMoved)}
				}
				return fmt.Errorf("trace of block %d: %w", blk.NumberU64(), e)
			}
			if err := matchTraces(blk, traces[k]); err != nil {
				return err
			}
		}
		for k, i := range need {
			if !out[i].untraced {
				out[i].internal = s.internalTransfers(ctx, out[i].block, traces[k])
			}
		}
		return nil
	})
	if stand < len(out) {
		return stand, err
	}
	return len(out), err
}

// matchTraces checks that a block's trace has one entry per transaction, in order.
func matchTraces(blk *types.Block, traces []txTrace) error {
	txs := blk.Transactions()
	if len(traces) != len(txs) {
		return fmt.Errorf("trace of block %d has %d transactions, the block %d", blk.NumberU64(), len(traces), len(txs))
	}
	for i, tr := range traces {
		if tr.TxHash != (common.Hash{}) && tr.TxHash != txs[i].Hash() {
			return fmt.Errorf("trace of block %d: transaction %d is %s, not %s", blk.NumberU64(), i, tr.TxHash.Hex(), txs[i].Hash().Hex())
		}
		if tr.Error != "" {
			return fmt.Errorf("trace of transaction %s: %s", txs[i].Hash().Hex(), tr.Error)
		}
	}
	return nil
}

// internalTransfers walks each successful transaction's call tree depth-first and returns the
// value that CALL frames below the top call paid to native deposit addresses, in frames that
// did not fail themselves nor below a failed one (a reverted frame undoes its children's
// transfers). The top call is the transaction's own value, counted by nativeTransfers.
// DELEGATECALL and STATICCALL carry no value of their own, CALLCODE keeps it with the caller.
// Every value-carrying CALL frame gets its place in the walk, whether it pays a deposit address
// or failed: the transfer's InternalLogIndex depends on the transaction only.
func (s *Scanner) internalTransfers(ctx context.Context, blk *types.Block, traces []txTrace) []Transfer {
	var out []Transfer
	for i, tr := range traces {
		root := tr.Result
		if root == nil || root.Error != "" {
			continue // a failed transaction moves no value
		}
		tx := blk.Transactions()[i]
		place := 0
		var walk func(f *callFrame, failed bool)
		walk = func(f *callFrame, failed bool) {
			for k := range f.Calls {
				c := &f.Calls[k]
				bad := failed || c.Error != ""
				if strings.EqualFold(c.Type, "CALL") && c.Value != nil && c.Value.ToInt().Sign() > 0 {
					n := place
					place++
					if !bad && c.To != nil {
						if t, ok := s.internalTransfer(ctx, blk, tx, uint(i), n, *c.To, c.Value.ToInt()); ok {
							out = append(out, t)
						}
					}
				}
				walk(c, bad)
			}
		}
		walk(root, false)
	}
	return out
}

func (s *Scanner) internalTransfer(ctx context.Context, blk *types.Block, tx *types.Transaction, index uint, place int, to common.Address, value *big.Int) (Transfer, bool) {
	dep, ok := s.deposits.lookup(to)
	if !ok {
		return Transfer{}, false
	}
	if dep.TokenContract != nil {
		s.log.WarnContext(ctx, "native transfer to a token payment's address not counted", "payment_id", dep.PaymentID,
			"tx_hash", tx.Hash().Hex(), "block", blk.NumberU64(), "value", value.String(), "internal", true)
		return Transfer{}, false
	}
	if place > maxInternalOrdinal {
		s.log.ErrorContext(ctx, "internal transfer beyond the frames a log index can name; not counted", "payment_id", dep.PaymentID,
			"tx_hash", tx.Hash().Hex(), "frame", place)
		return Transfer{}, false
	}
	return Transfer{
		ChainID: s.chainID(), TxHash: tx.Hash(), TxIndex: index, LogIndex: InternalLogIndex(place),
		PaymentID: dep.PaymentID, Value: new(big.Int).Set(value),
		BlockNumber: blk.NumberU64(), BlockHash: blk.Hash(),
	}, true
}

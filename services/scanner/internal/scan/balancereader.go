package scan

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/rpc"
)

// The balance reader: the reconciliation's readings in a few eth_call requests instead of one
// eth_getBalance per address. eth_call's state override (geth, Erigon, Nethermind, Besu, Reth
// and the large RPC providers take it) places the runtime code of balancereader/
// BalanceReader.sol at an address that holds none; called with deposit addresses packed 20
// bytes each, it answers their balances, 32 bytes each, from the state of the block the call
// is pinned to. One state opened and one answer for up to readerBatch addresses: on the
// simulated chain, 10,000 readings cost the node a fraction of what 10,000 eth_getBalance
// calls do (see the catch-up benchmark). A node that refuses or ignores the override is read
// with eth_getBalance, decided once by probeBalanceReader.

//go:embed balancereader/BalanceReader.bin-runtime
var balanceReaderHex string

// balanceReaderCode is the reader's runtime code (solc 0.8.37, reproducible: see compile.js).
var balanceReaderCode = hexutil.MustDecode("0x" + strings.TrimSpace(balanceReaderHex))

// balanceReaderAddress is where the override puts the code: an address no key or contract
// holds, so the call never depends on the chain's own code there.
var balanceReaderAddress = common.HexToAddress("0x00000000000000000000000000000000c7219ba1")

// readerBatch is the most addresses one eth_call reads: with a cold BALANCE at 2,600 gas, the
// call stays far below the 50M gas cap geth and the providers put on eth_call.
const readerBatch = 1000

// readerGas is the gas an eth_call reading n addresses is given: a cold BALANCE (2,600) and the
// loop around it, with room to spare.
func readerGas(n int) uint64 { return 50_000 + 4_000*uint64(n) }

// readerCallsPerRequest bounds the eth_calls of one JSON-RPC batch request.
const readerCallsPerRequest = 10

// readerCall is one eth_call of the reader: the addresses of reads[idx...] at block hash.
type readerCall struct {
	hash common.Hash
	idx  []int
}

// readerElem is the JSON-RPC call of c over reads.
func readerElem(c readerCall, reads []balanceRead, result *hexutil.Bytes) rpc.BatchElem {
	data := make([]byte, 0, 20*len(c.idx))
	for _, i := range c.idx {
		data = append(data, reads[i].addr.Bytes()...)
	}
	return rpc.BatchElem{
		Method: "eth_call",
		Args: []any{
			map[string]any{"to": balanceReaderAddress, "data": hexutil.Bytes(data), "gas": hexutil.Uint64(readerGas(len(c.idx)))},
			rpc.BlockNumberOrHashWithHash(c.hash, false),
			map[common.Address]map[string]any{balanceReaderAddress: {"code": hexutil.Bytes(balanceReaderCode)}},
		},
		Result: result,
	}
}

// readerCalls groups reads by block, readerBatch addresses per call.
func readerCalls(reads []balanceRead) []readerCall {
	var calls []readerCall
	open := map[common.Hash]int{} // the call of each block still taking addresses
	for i, rd := range reads {
		k, ok := open[rd.hash]
		if !ok || len(calls[k].idx) == readerBatch {
			calls = append(calls, readerCall{hash: rd.hash})
			k = len(calls) - 1
			open[rd.hash] = k
		}
		calls[k].idx = append(calls[k].idx, i)
	}
	return calls
}

// readBalancesByCall makes the readings with the balance reader, in JSON-RPC batch requests
// of readerCallsPerRequest calls, retrying failed requests; like readBalances, a reading whose
// block's state the node no longer holds, or whose block it no longer knows, keeps that in err.
func (s *Scanner) readBalancesByCall(ctx context.Context, reads []balanceRead) error {
	calls := readerCalls(reads)
	for len(calls) > 0 {
		chunk := calls[:min(len(calls), readerCallsPerRequest)]
		calls = calls[len(chunk):]
		err := s.retry(ctx, "balances", func(ctx context.Context) error {
			results := make([]hexutil.Bytes, len(chunk))
			batch := make([]rpc.BatchElem, len(chunk))
			n := 0
			for i, c := range chunk {
				batch[i] = readerElem(c, reads, &results[i])
				n += len(c.idx)
			}
			s.metrics.balanceReads(ctx, s.chainID(), n)
			if err := s.rpc.BatchCallContext(ctx, batch); err != nil {
				return err
			}
			for i, el := range batch {
				c := chunk[i]
				var failed error
				switch e := el.Error; {
				case e == nil:
				case stateUnavailable(e):
					failed = errNoState
				case blockGone(e):
					failed = fmt.Errorf("balances at block %d: %w", reads[c.idx[0]].block, errChainMoved)
				default:
					return fmt.Errorf("balance reader at block %d: %w", reads[c.idx[0]].block, e)
				}
				if failed == nil && len(results[i]) != 32*len(c.idx) {
					return fmt.Errorf("balance reader at block %d: %d bytes for %d addresses", reads[c.idx[0]].block, len(results[i]), len(c.idx))
				}
				for k, j := range c.idx {
					if failed != nil {
						reads[j].err = failed
						continue
					}
					reads[j].balance, reads[j].err = new(big.Int).SetBytes(results[i][32*k:32*k+32]), nil
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// probeBalanceReader finds out, once per process, whether the node runs the balance reader: a
// call at the head reading readerBatch addresses must answer 32 bytes for each. An error
// answer that says the override (or eth_call's third parameter) is not taken, an answer of
// the wrong length (a node that ignores the override calls an address without code and
// answers nothing) or probeAnswers other error answers (a gas cap below readerGas, say) mean
// eth_getBalance. Transport failures are retried like any other call.
func (s *Scanner) probeBalanceReader(ctx context.Context) error {
	var head common.Hash
	if err := s.retry(ctx, "head", func(ctx context.Context) error {
		h, err := s.rpc.HeaderByNumber(ctx, nil)
		if err == nil {
			head = h.Hash()
		}
		return err
	}); err != nil {
		return err
	}
	reads := make([]balanceRead, readerBatch)
	for i := range reads {
		reads[i] = balanceRead{addr: common.BigToAddress(big.NewInt(int64(i + 1))), hash: head}
	}
	call := readerCall{hash: head, idx: make([]int, len(reads))}
	for i := range call.idx {
		call.idx[i] = i
	}
	answers := 0
	var why error
	err := s.retry(ctx, "probe_balance_reader", func(ctx context.Context) error {
		var res hexutil.Bytes
		batch := []rpc.BatchElem{readerElem(call, reads, &res)}
		if err := s.rpc.BatchCallContext(ctx, batch); err != nil {
			return err
		}
		switch e := batch[0].Error; {
		case e == nil && len(res) == 32*len(reads):
			s.balanceCalls = true
		case e == nil:
			s.balanceCalls, why = false, fmt.Errorf("the state override was ignored: %d bytes for %d addresses", len(res), len(reads))
		case overrideUnavailable(e):
			s.balanceCalls, why = false, e
		default:
			if answers++; answers < probeAnswers {
				return e
			}
			s.balanceCalls, why = false, e
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.balanceCalls {
		s.log.InfoContext(ctx, "balances are read with eth_call and a state override", "addresses_per_call", readerBatch)
	} else {
		s.log.InfoContext(ctx, "the node does not run eth_call with a state override: balances are read with eth_getBalance", "reason", why.Error())
	}
	return nil
}

// overrideUnavailable reports whether err says the node does not take eth_call's state
// override: geth before overrides answered "too many arguments", others "invalid params".
func overrideUnavailable(err error) bool {
	var rerr rpc.Error
	if errors.As(err, &rerr) && (rerr.ErrorCode() == -32602 || rerr.ErrorCode() == -32601) {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"too many arguments", "invalid params", "invalid argument", "not supported", "unsupported", "override"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

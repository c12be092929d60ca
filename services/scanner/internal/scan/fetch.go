package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"
)

// fetched is a block with what the scanner needs of it: the Transfer logs of the configured
// tokens that the range's eth_getLogs returned for it, the transactions paying a deposit
// address and, if there are any, their receipts (receipts[i] is candidates[i]'s). On a node
// that traces blocks, internal holds the transfers made inside its transactions (untraced: the
// node could not trace it); elsewhere balances holds the readings the reconciliation schedule
// has due at it (noState: the node could not give them).
type fetched struct {
	block      *types.Block
	logs       []types.Log
	candidates []candidate
	receipts   []*types.Receipt
	internal   []Transfer
	untraced   bool
	balances   map[common.Address]*big.Int
	noState    bool
}

// candidate is a transaction with value sent to a native payment's deposit address.
type candidate struct {
	tx    *types.Transaction
	index uint
	dep   Deposit
}

// prefetcher fetches blocks from..to and hands them over in order. Blocks come in JSON-RPC
// batch requests of RPCBatch blocks that never straddle a range of Batch blocks; the first
// request of each range also carries its eth_getLogs. Up to Prefetch requests are in flight
// or waiting to be taken, so at most (Prefetch+1) × RPCBatch blocks are held.
type prefetcher struct {
	queue  chan chan chunkResult // the requests in order, each answering on its own channel
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup

	// cur is the request whose blocks next hands out, pos the next of them; logs the token
	// logs of the current range, by block.
	cur  *chunkResult
	pos  int
	logs map[uint64][]types.Log
}

// chunkResult is one request's answer: the first len(blocks) of its blocks, then err if the
// rest could not be had (a block that vanished ends the chunk there). logs is set for the
// first request of a range.
type chunkResult struct {
	blocks []fetched
	logs   map[uint64][]types.Log
	err    error
}

func (s *Scanner) prefetch(ctx context.Context, from, to uint64, sched schedule) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{
		queue:  make(chan chan chunkResult, s.cfg.Prefetch),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		defer close(p.queue)
		for lo := from; lo <= to; {
			rangeEnd := min(to, lo+s.cfg.Batch-1)
			for first := true; lo <= rangeEnd; first = false {
				hi := min(rangeEnd, lo+uint64(s.cfg.RPCBatch)-1)
				res := make(chan chunkResult, 1)
				select {
				case p.queue <- res:
				case <-ctx.Done():
					return
				}
				var logs *blockSpan // the range's logs come with its first request
				if first {
					logs = &blockSpan{lo, rangeEnd}
				}
				chunkFrom := lo // lo moves on below
				p.wg.Go(func() { res <- s.fetchRange(ctx, chunkFrom, hi, logs, sched) })
				if hi == to {
					return // lo+1 could wrap at the top of uint64
				}
				lo = hi + 1
			}
		}
	}()
	return p
}

// next returns the next block in order.
func (p *prefetcher) next(ctx context.Context) (fetched, error) {
	if p.cur == nil {
		var res chan chunkResult
		select {
		case res = <-p.queue:
		case <-ctx.Done():
			return fetched{}, ctx.Err()
		}
		select {
		case r := <-res:
			p.cur, p.pos = &r, 0
			if r.logs != nil {
				p.logs = r.logs
			}
		case <-ctx.Done():
			return fetched{}, ctx.Err()
		}
	}
	r := p.cur
	if p.pos == len(r.blocks) {
		return fetched{}, r.err
	}
	f := r.blocks[p.pos]
	r.blocks[p.pos] = fetched{} // the scanner holds it now
	p.pos++
	if p.pos == len(r.blocks) && r.err == nil {
		p.cur = nil
	}
	f.logs = p.logs[f.block.NumberU64()]
	return f, nil
}

// stop abandons the blocks not taken and waits for the requests in flight.
func (p *prefetcher) stop() {
	p.cancel()
	<-p.done
	p.wg.Wait()
}

// blockSpan is the blocks from..to.
type blockSpan struct{ from, to uint64 }

// fetchRange gets blocks from..to in one batch request — with, unless logs is nil, the
// configured tokens' Transfer logs of the blocks in logs — then, on a node that traces blocks,
// their traces in a second, or else the balances sched has due at them, and in a last the
// receipts of those with a transaction paying a native deposit address, retrying failures. A
// block that does not exist (the chain got shorter, or a node behind a load balancer lags)
// ends the range there: the blocks before it come back with errChainMoved, so the scan resumes
// from the cursor.
func (s *Scanner) fetchRange(ctx context.Context, from, to uint64, logSpan *blockSpan, sched schedule) chunkResult {
	var (
		blocks []*types.Block
		logs   map[uint64][]types.Log
		gone   error
	)
	err := s.retry(ctx, "blocks", func(ctx context.Context) error {
		batch := make([]rpc.BatchElem, 0, to-from+2)
		raws := make([]json.RawMessage, to-from+1)
		for n := from; n <= to; n++ {
			batch = append(batch, rpc.BatchElem{
				Method: "eth_getBlockByNumber",
				Args:   []any{hexutil.EncodeUint64(n), true},
				Result: &raws[n-from],
			})
		}
		var rangeLogs []types.Log
		if logSpan != nil && len(s.tokens) > 0 {
			batch = append(batch, rpc.BatchElem{
				Method: "eth_getLogs",
				Args:   []any{s.logsQuery(logSpan.from, logSpan.to)},
				Result: &rangeLogs,
			})
		}
		if err := s.rpc.BatchCallContext(ctx, batch); err != nil {
			return err
		}
		for _, el := range batch {
			if el.Error != nil {
				return fmt.Errorf("%s %v: %w", el.Method, el.Args[0], el.Error)
			}
		}
		blocks, gone = blocks[:0], nil
		for i := range raws {
			b, err := decodeBlock(raws[i])
			if errors.Is(err, ethereum.NotFound) {
				gone = fmt.Errorf("block %d: %w", from+uint64(i), errChainMoved)
				break
			}
			if err != nil {
				return fmt.Errorf("block %d: %w", from+uint64(i), err)
			}
			blocks = append(blocks, b)
		}
		if logSpan != nil {
			logs = map[uint64][]types.Log{}
			for _, l := range rangeLogs {
				logs[l.BlockNumber] = append(logs[l.BlockNumber], l)
			}
		}
		return nil
	})
	if err != nil {
		return chunkResult{err: err}
	}
	out := make([]fetched, len(blocks))
	for i, b := range blocks {
		out[i] = fetched{block: b, candidates: s.nativeCandidates(ctx, b)}
	}
	// Traces and balances are of blocks pinned by hash: one the node no longer knows has left
	// the chain, and ends the range like a missing block.
	extra := func(ctx context.Context, out []fetched) (int, error) { return len(out), nil }
	switch {
	case s.traces:
		extra = s.fetchTraces
	case sched.stride > 0:
		extra = func(ctx context.Context, out []fetched) (int, error) { return s.fetchBalances(ctx, sched, out) }
	}
	stand, err := extra(ctx, out)
	if stand < len(out) {
		out = out[:stand]
		if err == nil {
			err = fmt.Errorf("block %d: %w", from+uint64(stand), errChainMoved)
		}
		gone = err
	} else if err != nil {
		return chunkResult{err: err}
	}
	var needReceipts []int
	for i := range out {
		if len(out[i].candidates) > 0 {
			needReceipts = append(needReceipts, i)
		}
	}
	if len(needReceipts) == 0 {
		return chunkResult{out, logs, gone}
	}
	// A block with one candidate — the usual case: a deposit among many transactions — asks
	// for that receipt alone; one with more asks for all of its receipts at once (a node
	// derives a whole block's receipts for each eth_getTransactionReceipt).
	var single []int
	for _, i := range needReceipts {
		if len(out[i].candidates) == 1 {
			single = append(single, i)
		}
	}
	if len(single) > 0 {
		if err := s.candidateReceipts(ctx, out, single); err != nil {
			return chunkResult{err: err}
		}
	}
	// goneAt is the first block whose receipts are gone: it is no longer canonical, the
	// blocks before it stand.
	goneAt := -1
	var wholeBlocks []int
	for _, i := range needReceipts {
		if out[i].receipts == nil {
			wholeBlocks = append(wholeBlocks, i)
		}
	}
	if len(wholeBlocks) == 0 {
		return chunkResult{out, logs, gone}
	}
	err = s.retry(ctx, "block_receipts", func(ctx context.Context) error {
		batch := make([]rpc.BatchElem, len(wholeBlocks))
		receipts := make([][]*types.Receipt, len(wholeBlocks))
		for k, i := range wholeBlocks {
			// Pinned to the block's hash: a receipt from another branch cannot slip in.
			batch[k] = rpc.BatchElem{
				Method: "eth_getBlockReceipts",
				Args:   []any{rpc.BlockNumberOrHashWithHash(out[i].block.Hash(), false)},
				Result: &receipts[k],
			}
		}
		if err := s.rpc.BatchCallContext(ctx, batch); err != nil {
			return err
		}
		for k, el := range batch {
			if el.Error != nil {
				return fmt.Errorf("receipts of block %d: %w", out[wholeBlocks[k]].block.NumberU64(), el.Error)
			}
		}
		for k, i := range wholeBlocks {
			f := &out[i]
			if receipts[k] == nil || len(receipts[k]) != len(f.block.Transactions()) {
				goneAt = i
				return stop{fmt.Errorf("receipts of block %d: %w", f.block.NumberU64(), errChainMoved)}
			}
			f.receipts = make([]*types.Receipt, len(f.candidates))
			for j, c := range f.candidates {
				f.receipts[j] = receipts[k][c.index]
			}
		}
		return nil
	})
	switch {
	case goneAt >= 0:
		return chunkResult{out[:goneAt], logs, err}
	case err != nil:
		return chunkResult{err: err}
	}
	return chunkResult{out, logs, gone}
}

// candidateReceipts fetches the receipts of the candidate transactions of blocks out[i], i in
// need, by transaction hash in one batch request: those blocks need only these, not all of
// their receipts. A block for which one does not come back for this very block (a node
// without the transaction index, a reorg in between) keeps no receipts: it is then asked for
// all of its own, pinned to its hash.
func (s *Scanner) candidateReceipts(ctx context.Context, out []fetched, need []int) error {
	return s.retry(ctx, "receipts", func(ctx context.Context) error {
		var batch []rpc.BatchElem
		receipts := map[int][]*types.Receipt{}
		for _, i := range need {
			receipts[i] = make([]*types.Receipt, len(out[i].candidates))
			for j, c := range out[i].candidates {
				batch = append(batch, rpc.BatchElem{
					Method: "eth_getTransactionReceipt",
					Args:   []any{c.tx.Hash()},
					Result: &receipts[i][j],
				})
			}
		}
		if err := s.rpc.BatchCallContext(ctx, batch); err != nil {
			return err
		}
		for _, el := range batch {
			if el.Error != nil {
				return fmt.Errorf("receipt of %v: %w", el.Args[0], el.Error)
			}
		}
		for _, i := range need {
			f := &out[i]
			f.receipts = receipts[i]
			for j, r := range f.receipts {
				if r == nil || r.BlockHash != f.block.Hash() || r.TxHash != f.candidates[j].tx.Hash() {
					f.receipts = nil
					break
				}
			}
		}
		return nil
	})
}

// rpcBlock is what the scanner reads of an eth_getBlockByNumber answer besides the header.
type rpcBlock struct {
	Transactions []*types.Transaction `json:"transactions"`
	UncleHashes  []common.Hash        `json:"uncles"`
	Withdrawals  []*types.Withdrawal  `json:"withdrawals,omitempty"`
}

// decodeBlock decodes a block with full transactions, checking the lists against the header
// as ethclient does; JSON null (no such block) is ethereum.NotFound. Uncles are not fetched:
// the scanner reads only the block's hash, parent and transactions.
func decodeBlock(raw json.RawMessage) (*types.Block, error) {
	var head *types.Header
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, err
	}
	if head == nil {
		return nil, ethereum.NotFound
	}
	var body rpcBlock
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, err
	}
	switch {
	case (head.UncleHash == types.EmptyUncleHash) != (len(body.UncleHashes) == 0):
		return nil, errors.New("server returned an uncle list that does not match the block header")
	case (head.TxHash == types.EmptyTxsHash) != (len(body.Transactions) == 0):
		return nil, errors.New("server returned a transaction list that does not match the block header")
	}
	emptyWithdrawals := head.WithdrawalsHash == nil || *head.WithdrawalsHash == types.EmptyWithdrawalsHash
	if emptyWithdrawals != (len(body.Withdrawals) == 0) {
		return nil, errors.New("server returned a withdrawal list that does not match the block header")
	}
	return types.NewBlockWithHeader(head).WithBody(types.Body{Transactions: body.Transactions, Withdrawals: body.Withdrawals}), nil
}

package scan

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"
)

// fetched is a block with what the scanner needs of it besides the token logs: the
// transactions paying a deposit address and, if there are any, the block's receipts.
type fetched struct {
	block      *types.Block
	candidates []candidate
	receipts   []*types.Receipt
}

// candidate is a transaction with value sent to a native payment's deposit address.
type candidate struct {
	tx    *types.Transaction
	index uint
	dep   Deposit
}

// prefetcher fetches blocks from..to with up to Prefetch requests in flight and hands them
// over in order. A slot frees when its block is taken, so at most Prefetch blocks are held.
type prefetcher struct {
	from    uint64
	taken   uint64
	results []chan fetchResult
	slots   chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	wg      sync.WaitGroup
}

type fetchResult struct {
	f   fetched
	err error
}

func (s *Scanner) prefetch(ctx context.Context, from, to uint64) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{
		from:    from,
		results: make([]chan fetchResult, to-from+1),
		slots:   make(chan struct{}, s.cfg.Prefetch),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	for i := range p.results {
		p.results[i] = make(chan fetchResult, 1)
	}
	go func() {
		defer close(p.done)
		for n := from; n <= to; n++ {
			select {
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			p.wg.Go(func() {
				f, err := s.fetch(ctx, n)
				p.results[n-from] <- fetchResult{f, err}
			})
		}
	}()
	return p
}

// next returns the next block in order.
func (p *prefetcher) next(ctx context.Context) (fetched, error) {
	select {
	case r := <-p.results[p.taken]:
		p.taken++
		<-p.slots
		return r.f, r.err
	case <-ctx.Done():
		return fetched{}, ctx.Err()
	}
}

// stop abandons the blocks not taken and waits for the requests in flight.
func (p *prefetcher) stop() {
	p.cancel()
	<-p.done
	p.wg.Wait()
}

// fetch gets block n and, when a transaction in it pays a native deposit address, its receipts,
// retrying failures; only a block that no longer exists ends it.
func (s *Scanner) fetch(ctx context.Context, n uint64) (fetched, error) {
	var f fetched
	err := s.retry(ctx, "block", func(ctx context.Context) (err error) {
		f.block, err = s.rpc.BlockByNumber(ctx, new(big.Int).SetUint64(n))
		if errors.Is(err, ethereum.NotFound) {
			// Below the head read a moment ago: the chain got shorter, or a node behind a
			// load balancer lags. Either way, start over from the cursor.
			return stop{fmt.Errorf("block %d: %w", n, errChainMoved)}
		}
		return err
	})
	if err != nil {
		return f, err
	}
	f.candidates = s.nativeCandidates(ctx, f.block)
	if len(f.candidates) == 0 {
		return f, nil
	}
	// One call for the whole block, pinned to its hash: a receipt from another branch cannot
	// slip in.
	err = s.retry(ctx, "block_receipts", func(ctx context.Context) (err error) {
		f.receipts, err = s.rpc.BlockReceipts(ctx, rpc.BlockNumberOrHashWithHash(f.block.Hash(), false))
		if errors.Is(err, ethereum.NotFound) {
			return stop{fmt.Errorf("receipts of block %d: %w", n, errChainMoved)}
		}
		return err
	})
	return f, err
}

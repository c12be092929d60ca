package chaintest

import (
	"context"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

// Reorg replaces the top depth blocks with a longer branch and returns the hashes of the
// orphaned blocks, lowest first. Step by step, with block production (Commit, Mine, the block
// timer) held off throughout:
//
//  1. Pending transactions, if any, are mined into one more block first, so the fork starts from
//     an empty pool; that block counts in depth and is orphaned with the rest.
//  2. The chain is rewound to the block at head-depth (simulated.Backend.Fork).
//  3. The pool is cleared: transactions of the orphaned blocks are dropped, not re-mined, so a
//     transaction that was only in them has no receipt afterwards. Resend puts one back.
//  4. The Chain forgets the nonces it used, so the next send from an account reuses the first
//     nonce the orphaned blocks had taken (a same-nonce replacement comes for free).
//  5. replacement runs, if not nil, and sends what the new branch should hold (SendETH,
//     TransferToken, Resend). It must not mine: Commit, Mine, DeployToken and MintToken would
//     wait for Reorg forever.
//  6. depth+1 blocks are mined; the first holds replacement's transactions. The new head is one
//     block higher than the old one, as when a longer branch wins on a real chain.
//
// depth must be between 1 and the head's number.
func (c *Chain) Reorg(depth int, replacement func()) (orphaned []common.Hash) {
	c.tb.Helper()
	return c.reorg(func(head uint64) uint64 {
		if depth < 1 || uint64(depth) > head {
			c.tb.Fatalf("chaintest: reorg depth %d at head %d", depth, head)
		}
		return head - uint64(depth) + 1
	}, replacement)
}

// ReorgFrom is Reorg with the depth fixed under the lock: it orphans block number and every
// block above it, however many the block timer has mined by then. Use it to knock out the
// block holding a receipt: c.ReorgFrom(receipt.BlockNumber.Uint64(), replacement).
// number must be between 1 and the head's number.
func (c *Chain) ReorgFrom(number uint64, replacement func()) (orphaned []common.Hash) {
	c.tb.Helper()
	return c.reorg(func(head uint64) uint64 {
		if number < 1 || number > head {
			c.tb.Fatalf("chaintest: reorg from block %d at head %d", number, head)
		}
		return number
	}, replacement)
}

// reorg runs Reorg's steps; lowest picks the lowest block to orphan given the head's number.
func (c *Chain) reorg(lowest func(head uint64) uint64, replacement func()) (orphaned []common.Hash) {
	c.tb.Helper()
	c.mineMu.Lock()
	defer c.mineMu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if n, err := c.client.PendingTransactionCount(ctx); err != nil {
		c.tb.Fatalf("chaintest: reorg: pending transactions: %v", err)
	} else if n > 0 {
		c.commitLocked()
	}
	// The pool may still be settling the transactions just sent when the count is read: Fork
	// waits for it and then refuses a pool with pending transactions. Those are mined first, as
	// the count's would have been, and the blocks to orphan are read again.
	for attempt := 1; ; attempt++ {
		head := c.Head().Number.Uint64()
		from := lowest(head)
		parent, err := c.client.HeaderByNumber(ctx, new(big.Int).SetUint64(from-1))
		if err != nil {
			c.tb.Fatalf("chaintest: reorg: block %d: %v", from-1, err)
		}
		orphaned = orphaned[:0]
		for n := from; n <= head; n++ {
			h, err := c.client.HeaderByNumber(ctx, new(big.Int).SetUint64(n))
			if err != nil {
				c.tb.Fatalf("chaintest: reorg: block %d: %v", n, err)
			}
			orphaned = append(orphaned, h.Hash())
		}
		err = c.backend.Fork(parent.Hash())
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "pending block dirty") || attempt == 3 {
			c.tb.Fatalf("chaintest: reorg: fork at %d: %v", from-1, err)
		}
		c.commitLocked()
	}
	// Fork's head event reaches the pool before Fork returns, and Rollback waits for the pool's
	// reset (which re-injects the orphaned transactions) before clearing it.
	c.backend.Rollback()

	c.nonceMu.Lock()
	clear(c.nonces)
	c.nonceMu.Unlock()

	if replacement != nil {
		replacement()
	}
	for range len(orphaned) + 1 {
		c.commitLocked()
	}
	return orphaned
}

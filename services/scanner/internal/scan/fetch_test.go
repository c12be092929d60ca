package scan

import (
	"context"
	"errors"
	"log/slog"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// fetchScanner is a scanner with only what fetching needs: the RPC, one native deposit
// address, and batches of rpcBatch blocks.
func fetchScanner(t *testing.T, c *chaintest.Chain, deposit common.Address, rpcBatch int) *Scanner {
	t.Helper()
	return fetchScannerAt(t, c.RPCURL(), deposit, rpcBatch)
}

// fetchScannerAt is fetchScanner reaching the chain at rpcURL (a proxy in front of it).
func fetchScannerAt(t *testing.T, rpcURL string, deposit common.Address, rpcBatch int) *Scanner {
	t.Helper()
	client, err := rpc.DialContext(context.Background(), rpcURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	s := &Scanner{
		cfg: Config{Chain: chains.Chain{ID: 1337}, Batch: 4, Prefetch: 2, RPCBatch: rpcBatch,
			Retry: Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}, CallTimeout: 5 * time.Second},
		rpc: NewRPCClient(client), metrics: NewMetrics(nil), deposits: newDeposits(), log: slog.New(slog.DiscardHandler),
	}
	s.deposits.add(1337, []Deposit{{PaymentID: "pay_1", ChainID: 1337, Address: deposit, Index: 0}}, time.Now())
	return s
}

// TestPrefetchHandsOverBlocksInOrder fetches 11 blocks in batches of 3 (ranges of 4, two
// requests in flight): every block comes once, in order, and each block paying the deposit
// address comes with its receipts.
func TestPrefetchHandsOverBlocksInOrder(t *testing.T) {
	c := chaintest.New(t, chaintest.WithHTTP())
	deposit := chaintest.NewAccount("fetch test deposit").Address
	first := c.Head().Number.Uint64() + 1
	for i := range 11 {
		if i%3 == 0 {
			c.SendETH(c.Accounts[0], deposit, big.NewInt(1))
		}
		c.Commit()
	}
	s := fetchScanner(t, c, deposit, 3)
	last := first + 10
	p := s.prefetch(context.Background(), first, last, schedule{})
	defer p.stop()
	for n := first; n <= last; n++ {
		f, err := p.next(context.Background())
		if err != nil {
			t.Fatalf("block %d: %v", n, err)
		}
		if f.block.NumberU64() != n {
			t.Fatalf("got block %d, want %d", f.block.NumberU64(), n)
		}
		paid := (n-first)%3 == 0
		if got := len(f.candidates) == 1 && len(f.receipts) == 1 && f.receipts[0].TxHash == f.candidates[0].tx.Hash(); got != paid {
			t.Fatalf("block %d: %d candidates, %d receipts for %d transactions; paid %v",
				n, len(f.candidates), len(f.receipts), len(f.block.Transactions()), paid)
		}
	}
}

// TestFetchRangeEndsAtAVanishedBlock asks for blocks past the head: the ones that exist come
// back, then errChainMoved, so the scan restarts from its cursor instead of retrying forever.
func TestFetchRangeEndsAtAVanishedBlock(t *testing.T) {
	c := chaintest.New(t, chaintest.WithHTTP())
	c.Commit()
	head := c.Head().Number.Uint64()
	s := fetchScanner(t, c, common.Address{1}, 10)
	r := s.fetchRange(context.Background(), head-1, head+2, nil, schedule{})
	if !errors.Is(r.err, errChainMoved) || len(r.blocks) != 2 || r.blocks[1].block.NumberU64() != head {
		t.Fatalf("%d blocks, err %v; want blocks %d..%d, then errChainMoved", len(r.blocks), r.err, head-1, head)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// TestRPCFaultsSkipNoBlock fails every third JSON-RPC request the scanner makes — as a 502 from
// a load balancer while it backfills 30 blocks in batches of 7, then as a JSON-RPC error from
// the node while it follows 10 more as they are mined; each block holds one transfer:
// every transfer is detected once and the cursor reaches the head over an unbroken run of
// blocks.
func TestRPCFaultsSkipNoBlock(t *testing.T) {
	var proxy *chaintest.Proxy
	h := newHarness(t, viaRPC(func(url string) string {
		proxy = chaintest.FlakyProxy(t, url, 3)
		return proxy.URL()
	}))
	h.cfg.BatchBlocks = 7
	first := h.head() + 1
	h.cfg.StartBlock = strconv.FormatUint(first, 10)

	const backfill, follow = 30, 10
	var payments []payment
	var txs []*types.Transaction
	for i := range backfill + follow {
		if i == backfill {
			h.start()
			h.waitScanned(h.head())
			proxy.SetFault(chaintest.FaultRPCError)
		}
		var p payment
		var tx *types.Transaction
		if i%2 == 0 {
			p = h.newPayment("ETH", ether(1), time.Now().Add(time.Hour))
			tx = h.chain.SendETH(h.payer, p.Address, ether(1))
		} else {
			p = h.newPayment("USDC", big.NewInt(1_000_000), time.Now().Add(time.Hour))
			tx = h.chain.TransferToken(h.payer, h.usdc, p.Address, big.NewInt(1_000_000))
		}
		h.mine(tx)
		payments, txs = append(payments, p), append(txs, tx)
	}
	head := h.head()
	h.waitScanned(head)
	h.checkNothingLost(proxy, payments, first, head)
	t.Logf("%d requests through the proxy, %d failed", proxy.Requests(), proxy.Failures())
}

// TestReorgRescansFromCommonAncestor pays a deposit address, lets the scanner detect it, then
// replaces the blocks from the payment's on with a longer branch in which the same nonce pays
// another payment: chain.<id>.reorg names the common ancestor, the orphaned transfer is not detected
// again, and the replacement branch's transfer is.
func TestReorgRescansFromCommonAncestor(t *testing.T) {
	h := startHarness(t)
	orphanedPay := h.newPayment("ETH", ether(1), time.Now().Add(time.Hour))
	replacementPay := h.newPayment("ETH", ether(1), time.Now().Add(time.Hour))

	orphanedTx := h.chain.SendETH(h.payer, orphanedPay.Address, ether(1))
	orphanedBlock := h.mine(orphanedTx)[0].BlockNumber.Uint64()
	h.chain.Commit()
	ancestor, err := h.chain.Client().HeaderByNumber(h.ctx(), new(big.Int).SetUint64(orphanedBlock-1))
	if err != nil {
		t.Fatal(err)
	}
	oldHead := h.chain.Head()
	h.waitScanned(oldHead.Number.Uint64())
	if n := len(h.detectedFor(orphanedPay.ID)); n != 1 {
		t.Fatalf("before the reorg: %d events, want 1", n)
	}

	var replacementTx *types.Transaction
	orphaned := h.chain.Reorg(int(oldHead.Number.Uint64()-ancestor.Number.Uint64()), func() {
		replacementTx = h.chain.SendETH(h.payer, replacementPay.Address, ether(1))
	})
	if replacementTx.Nonce() != orphanedTx.Nonce() {
		t.Fatalf("replacement nonce %d, orphaned %d: not a replacement", replacementTx.Nonce(), orphanedTx.Nonce())
	}
	receipt := h.mine(replacementTx)[0]
	newHead := h.chain.Head()
	testkit.Eventually(t, 20*time.Second, "cursor on the new branch's head", func() bool {
		var hash string
		err := h.db.Get(&hash, `SELECT block_hash FROM chain_cursors WHERE chain_id = $1`, testChainID)
		return err == nil && hash == lower(newHead.Hash().Hex())
	})

	reorgs := h.streamMsgs("CHAIN", event.ReorgSubject(testChainID))
	if len(reorgs) != 1 {
		t.Fatalf("%d chain reorg messages, want 1", len(reorgs))
	}
	var r event.ChainReorg
	if err := json.Unmarshal(reorgs[0].Data, &r); err != nil {
		t.Fatal(err)
	}
	if r.ChainID != testChainID || r.CommonAncestorNumber != ancestor.Number.Uint64() || r.CommonAncestorHash != lower(ancestor.Hash().Hex()) ||
		r.OldHeadNumber != oldHead.Number.Uint64() || r.OldHeadHash != lower(orphaned[len(orphaned)-1].Hex()) {
		t.Fatalf("reorg message %+v; ancestor %d %s, old head %d %s", r, ancestor.Number, ancestor.Hash().Hex(), oldHead.Number, orphaned[len(orphaned)-1].Hex())
	}
	wantID := fmt.Sprintf("reorg.%d.%d.%s", testChainID, r.CommonAncestorNumber, r.NewHeadHash)
	if got := reorgs[0].Header.Get(event.HeaderMsgID); got != wantID || reorgs[0].Header.Get(event.HeaderEventType) != "chain.reorg" {
		t.Fatalf("reorg headers %v, want msg id %s", reorgs[0].Header, wantID)
	}

	if n := len(h.detectedFor(orphanedPay.ID)); n != 1 {
		t.Fatalf("orphaned transfer: %d events, want only the original 1", n)
	}
	got := h.detectedFor(replacementPay.ID)
	if len(got) != 1 || got[0].data.Transactions[0].BlockHash != lower(receipt.BlockHash.Hex()) {
		t.Fatalf("replacement transfer: %d events (%+v), want 1 in block %s", len(got), got, receipt.BlockHash.Hex())
	}
	// A later payment to the orphaned transfer's address counts alone: the orphaned transfer
	// is still recorded as detected (the confirmer marks it reorged), but its block is gone.
	h.mine(h.chain.SendETH(h.payer, orphanedPay.Address, ether(1)))
	h.waitScanned(h.head())
	if got := h.detectedFor(orphanedPay.ID); len(got) != 2 || got[1].data.AmountReceivedBaseUnits != "1000000000000000000" {
		t.Fatalf("payment after the reorg: %d events, last received %v; want 2, 1 ETH", len(got), got[len(got)-1].data.AmountReceivedBaseUnits)
	}
	// The stored blocks are the new branch's.
	for n := ancestor.Number.Uint64() + 1; n <= h.head(); n++ {
		var stored string
		if err := h.db.Get(&stored, `SELECT hash FROM chain_blocks WHERE chain_id = $1 AND number = $2`, testChainID, n); err != nil {
			t.Fatalf("block %d: %v", n, err)
		}
		if want := h.canonicalHash(n); stored != lower(want.Hex()) {
			t.Fatalf("block %d stored %s, canonical %s", n, stored, want.Hex())
		}
	}
}

// TestRestartResumesFromCursor stops the scanner, mines blocks with transfers while it is down,
// and rewinds its cursor by two blocks as a crash between publishing a block's events and
// committing it would leave it. The restarted scanner detects the transfers mined while it was
// down (it starts from its cursor, not from the head) and republishes the rewound blocks'
// events, which JetStream drops as duplicates: one message per transfer on the stream.
func TestRestartResumesFromCursor(t *testing.T) {
	h := startHarness(t)
	payments := h.paidETHPayments(3)
	h.waitScanned(h.head())
	if n := len(h.detected()); n != 3 {
		t.Fatalf("%d events before the restart, want 3", n)
	}
	h.stop()

	payments = append(payments, h.paidETHPayments(3)...)
	h.chain.Mine(testConfirmations + 2) // the default start (head − confirmations) is past these
	cursor := h.cursor()
	rewound := cursor - 2
	h.rewindCursor(rewound)

	h.start()
	h.waitScanned(h.head())
	got := h.detected()
	ids := map[string]bool{}
	perPayment := map[string]int{}
	for _, d := range got {
		if ids[d.msgID] {
			t.Errorf("duplicate message %s on the stream", d.msgID)
		}
		ids[d.msgID] = true
		perPayment[d.data.PaymentID]++
	}
	for i, p := range payments {
		if perPayment[p.ID] != 1 {
			t.Errorf("payment %d: %d events, want 1", i, perPayment[p.ID])
		}
	}
	if len(got) != len(payments) {
		t.Fatalf("%d payments.detected messages, want %d", len(got), len(payments))
	}
}

// TestStartBlock checks where a chain with no cursor is first scanned.
func TestStartBlock(t *testing.T) {
	cases := []struct {
		name       string
		mine       int
		startBlock string
		wantFirst  uint64
	}{
		{name: "head minus confirmations", mine: 10, wantFirst: 10 - testConfirmations},
		{name: "floored at zero below the confirmations", mine: 1, wantFirst: 0},
		{name: "SCAN_START_BLOCK", mine: 10, startBlock: "5", wantFirst: 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, withoutTokens())
			h.chain.Mine(c.mine)
			h.cfg.StartBlock = c.startBlock
			h.start()
			h.waitScanned(h.head())
			var first uint64
			if err := h.db.Get(&first, `SELECT min(number) FROM chain_blocks WHERE chain_id = $1`, testChainID); err != nil {
				t.Fatal(err)
			}
			if first != c.wantFirst {
				t.Fatalf("first block scanned %d, want %d", first, c.wantFirst)
			}
		})
	}
}

func (h *harness) canonicalHash(n uint64) common.Hash {
	h.t.Helper()
	hdr, err := h.chain.Client().HeaderByNumber(h.ctx(), new(big.Int).SetUint64(n))
	if err != nil {
		h.t.Fatal(err)
	}
	return hdr.Hash()
}

// TestRunRefusesBadChains checks that a misconfigured chain stops the service with a message
// naming the problem, instead of leaving the chain silently unwatched.
func TestRunRefusesBadChains(t *testing.T) {
	h := newHarness(t, withoutTokens())
	cases := []struct {
		name    string
		file    func() string
		wantErr string
	}{
		{"rpc_url serves another chain", func() string {
			return testkit.TempFile(t, "chains.yaml", fmt.Sprintf("chains:\n  - {id: 1, name: mainnet, rpc_url: %q, confirmations: 12, native: {symbol: ETH}}\n", h.chain.RPCURL()))
		}, "rpc_url serves chain id 1337"},
		{"unreadable chains file", func() string { return filepath.Join(t.TempDir(), "missing.yaml") }, "CHAINS_FILE"},
		{"invalid chains file", func() string {
			return testkit.TempFile(t, "chains.yaml", "chains:\n  - {id: 5, name: x, confirmations: 1, native: {symbol: ETH}}\n")
		}, "rpc_url is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := h.cfg
			cfg.ChainsFile = c.file()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, cfg)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("run: %v, want an error containing %q", err, c.wantErr)
			}
		})
	}
}

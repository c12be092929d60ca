package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/ctrip-pay/pipeline/services/scanner/internal/scan"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// BenchmarkCatchUp measures how fast the scanner catches up after downtime on blocks already
// mined — JSON-RPC over HTTP, Postgres, JetStream acks — next to the raw batched rate at which
// the same chain serves those blocks in the same run: per SCAN_BATCH_BLOCKS, one eth_getLogs for
// the token transfers, and eth_getBlockByNumber with full transactions in JSON-RPC batch
// requests of SCAN_RPC_BATCH blocks, one request after another, each answer decoded (header
// and transactions) as the scanner decodes it; the better of two passes counts.
//
// The chain holds BENCH_BLOCKS blocks (default 1000) of BENCH_TXS transactions (default 10),
// half ETH, half USDC transfers, each paying one of 100 open payments in turn (half of them ETH
// payments, half USDC: 100 partial payments each, one payments.detected event per transfer).
// BENCH_DEPOSITS (default: all) sets how many of a block's transactions pay a payment; the
// others pay addresses that are no deposit address. The second case adds 9,900 open payments
// that are not paid, so the scanner watches 10,000.
// BENCH_RPC_BATCH, BENCH_PREFETCH and BENCH_BATCH_BLOCKS override the scanner's SCAN_RPC_BATCH,
// SCAN_PREFETCH and SCAN_BATCH_BLOCKS; BENCH_CPUPROFILE=FILE writes a CPU profile of each
// case's scanner phase (FILE.open<N>).
//
// The scanner and the raw loop reach the chain through a chaintest.Meter that hides the debug
// API, as most RPC providers do: the scanner then reconciles the balances of the open native
// payments' addresses, and the benchmark prints what that cost — the balance reader's eth_call
// calls per block and the node's time for them as a share of the catch-up's (the readings go
// with the prefetched blocks, so part of it overlaps other work), and apart the first reading
// of every address at start-up. BENCH_OVERRIDE=0 makes the meter refuse eth_call's state
// override, so the balances are read with eth_getBalance, and prints the cost of those;
// BENCH_TRACE=1 leaves the debug API on: the scanner traces the blocks instead, and the
// benchmark prints the cost of the traces.
//
//	go test -run '^$' -bench CatchUp -benchtime 1x ./services/scanner/
func BenchmarkCatchUp(b *testing.B) {
	blocks, txs := testkit.EnvInt("BENCH_BLOCKS", 1000), testkit.EnvInt("BENCH_TXS", 10)
	for _, open := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("open_payments=%d", open), func(b *testing.B) {
			for range b.N {
				r := runCatchUp(b, blocks, txs, open)
				reportRates(b, r.scanner, r.raw)
				fmt.Printf("catch-up %d blocks × %d transactions (%d paying %d of %d open payments), batch %d blocks, rpc batch %d, prefetch %d:\n",
					r.blocks, txs, r.deposits, r.paid, open, r.batch, r.rpcBatch, r.prefetch)
				fmt.Printf("  raw batched RPC (getLogs per batch + batched getBlockByNumber): %.0f blocks/s\n", r.raw)
				fmt.Printf("  scanner (RPC + Postgres + JetStream acks):                      %.0f blocks/s, ratio %.2f\n",
					r.scanner, r.scanner/r.raw)
				c := r.cost
				fmt.Printf("  %s: %d %s calls (%.1f per block) in %d requests; node time %s = %.0f%% of the catch-up's %s; %d more before the first commit\n",
					c.what, c.calls, c.method, float64(c.calls)/float64(r.blocks), c.requests,
					c.spent.Round(time.Millisecond), 100*c.spent.Seconds()/c.elapsed.Seconds(), c.elapsed.Round(time.Millisecond), c.startCalls)
			}
		})
	}
}

type catchUpRates struct {
	scanner, raw           float64
	blocks, paid, deposits int
	batch                  uint64
	rpcBatch, prefetch     int
	cost                   detectionCost
}

// detectionCost is what finding the transfers inside transactions cost the catch-up: the
// calls of method (eth_getBalance, or the block traces), the requests carrying them and the
// node's time for those requests, next to the catch-up's time; startCalls were made before
// the first block was committed.
type detectionCost struct {
	what, method                string
	calls, requests, startCalls int64
	spent, elapsed              time.Duration
}

func runCatchUp(b *testing.B, blocks, txsPerBlock, open int) catchUpRates {
	b.StopTimer()
	trace, override := os.Getenv("BENCH_TRACE") == "1", os.Getenv("BENCH_OVERRIDE") != "0"
	var meter *chaintest.Meter
	h := newHarness(b, viaRPC(func(chainURL string) string {
		meter = chaintest.NewMeter(b, chainURL)
		if !trace {
			meter.HideDebug()
		}
		if !override {
			meter.RefuseStateOverride()
		}
		return meter.URL()
	}))
	h.cfg.RPCBatch = testkit.EnvInt("BENCH_RPC_BATCH", scan.DefaultRPCBatch)
	h.cfg.Prefetch = testkit.EnvInt("BENCH_PREFETCH", h.cfg.Prefetch)
	h.cfg.BatchBlocks = uint64(testkit.EnvInt("BENCH_BATCH_BLOCKS", int(h.cfg.BatchBlocks)))
	paid := min(100, open)
	deposits := min(testkit.EnvInt("BENCH_DEPOSITS", txsPerBlock), txsPerBlock)
	total := blocks * txsPerBlock

	first := h.head() + 1
	// Payment i is an ETH payment when i is even, a USDC payment when odd; the k-th deposit
	// transaction pays payment k mod paid.
	payments := make([]payment, paid)
	for i := range payments {
		if i%2 == 0 {
			payments[i] = h.newPayment("ETH", ether(1000), time.Now().Add(time.Hour))
		} else {
			payments[i] = h.newPayment("USDC", big.NewInt(1_000_000_000), time.Now().Add(time.Hour))
		}
	}
	elsewhere := func() common.Address {
		var raw [20]byte
		if _, err := rand.Read(raw[:]); err != nil {
			b.Fatal(err)
		}
		return common.BytesToAddress(raw[:])
	}
	sent := 0
	for k := range total {
		if k%txsPerBlock < deposits {
			p := payments[sent%paid]
			sent++
			if p.Token == "ETH" {
				h.chain.SendETH(h.payer, p.Address, big.NewInt(1_000_000_000))
			} else {
				h.chain.TransferToken(h.payer, h.usdc, p.Address, big.NewInt(1))
			}
		} else if k%2 == 0 {
			h.chain.SendETH(h.payer, elsewhere(), big.NewInt(1_000_000_000))
		} else {
			h.chain.TransferToken(h.payer, h.usdc, elsewhere(), big.NewInt(1))
		}
		if k%txsPerBlock == txsPerBlock-1 {
			h.chain.Commit()
		}
	}
	if total%txsPerBlock != 0 {
		h.chain.Commit()
	}
	last := h.head()
	if extra := open - paid; extra > 0 {
		// Open, unpaid: the scanner watches their addresses like any other.
		if _, err := h.db.Exec(`INSERT INTO payments (id, merchant_id, chain_id, token, token_contract, decimals, address,
				address_index, amount_base_units, expires_at)
			SELECT 'pay_bench_' || i, $1, $2, 'ETH', NULL, 18, '0x' || substr(md5('a' || i) || md5('b' || i), 1, 40),
				nextval('deposit_address_index'), 1000, now() + interval '1 hour'
			FROM generate_series(1, $3) AS i`, testMerchant, testChainID, extra); err != nil {
			b.Fatal(err)
		}
	}

	raw := max(rawBatchedRate(b, h, meter.URL(), first, last), rawBatchedRate(b, h, meter.URL(), first, last))
	cost := detectionCost{what: "balance reconciliation (balance reader)", method: "eth_call"}
	switch {
	case trace:
		cost = detectionCost{what: "block traces", method: "debug_traceBlockByHash"}
	case !override:
		cost = detectionCost{what: "balance reconciliation", method: "eth_getBalance"}
	}
	calls0 := meter.Calls(cost.method)

	h.cfg.StartBlock = strconv.FormatUint(first, 10)
	stopProfile := func() {}
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(fmt.Sprintf("%s.open%d", path, open))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		stopProfile = pprof.StopCPUProfile
	}
	b.StartTimer()
	h.start()
	// The cost is counted, like the time, from the first committed block: the first reading
	// of every address at start-up is left out with the rest of the start-up, and counted
	// apart.
	atStart := make(chan detectionCost, 1)
	go func() {
		for {
			var n int64 = -1
			if err := h.db.Get(&n, `SELECT COALESCE((SELECT block_number FROM chain_cursors WHERE chain_id = $1), -1)`, testChainID); err == nil && n >= 0 {
				atStart <- detectionCost{calls: meter.Calls(cost.method), requests: meter.Requests(cost.method), spent: meter.Spent(cost.method)}
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// Timed from the first committed block, so start-up (migrations, provisioning, the first
	// read of the deposit addresses) is left out.
	from, elapsed := h.timeToCursor(b, last)
	b.StopTimer()
	stopProfile()
	h.stop()
	started := <-atStart
	cost.startCalls = started.calls - calls0
	cost.calls, cost.requests = meter.Calls(cost.method)-started.calls, meter.Requests(cost.method)-started.requests
	cost.spent, cost.elapsed = meter.Spent(cost.method)-started.spent, elapsed
	if got := len(h.detected()); got != sent {
		b.Fatalf("%d events, want %d", got, sent)
	}
	return catchUpRates{
		scanner: float64(int64(last)-from) / elapsed.Seconds(), raw: raw,
		blocks: int(last - first + 1), paid: paid, deposits: sent,
		batch: h.cfg.BatchBlocks, rpcBatch: h.cfg.RPCBatch, prefetch: h.cfg.Prefetch, cost: cost,
	}
}

// rawBatchedRate is blocks/s for one pass of the loop the scanner is measured against: per
// range of SCAN_BATCH_BLOCKS, one eth_getLogs for the token transfers, then the blocks with
// their transactions in batch requests of SCAN_RPC_BATCH, one request at a time, through
// rpcURL (the meter the scanner goes through).
func rawBatchedRate(b *testing.B, h *harness, rpcURL string, first, last uint64) float64 {
	ctx := context.Background()
	c, err := rpc.DialContext(ctx, rpcURL)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	client := ethclient.NewClient(c)
	batch, size := h.cfg.BatchBlocks, uint64(h.cfg.RPCBatch)
	start := time.Now()
	for from := first; from <= last; from += batch {
		to := min(last, from+batch-1)
		h.rawTokenLogs(b, client, from, to)
		for lo := from; lo <= to; lo += size {
			hi := min(to, lo+size-1)
			raws := make([]json.RawMessage, hi-lo+1)
			elems := make([]rpc.BatchElem, len(raws))
			for i := range elems {
				elems[i] = rpc.BatchElem{Method: "eth_getBlockByNumber", Args: []any{hexutil.EncodeUint64(lo + uint64(i)), true}, Result: &raws[i]}
			}
			if err := c.BatchCallContext(ctx, elems); err != nil {
				b.Fatal(err)
			}
			for i, el := range elems {
				if el.Error != nil {
					b.Fatal(el.Error)
				}
				var head types.Header
				var body struct {
					Transactions []*types.Transaction `json:"transactions"`
				}
				if err := json.Unmarshal(raws[i], &head); err != nil {
					b.Fatal(err)
				}
				if err := json.Unmarshal(raws[i], &body); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	return float64(last-first+1) / time.Since(start).Seconds()
}

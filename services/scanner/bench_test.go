package main

import (
	"context"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/ctrip-pay/pipeline/services/scanner/internal/scan"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// BenchmarkBackfill measures how fast the scanner catches up on blocks already mined — the
// whole path: JSON-RPC over HTTP, Postgres, JetStream acks — with 0 and 10 transfers to
// deposit addresses per block (half ETH, half USDC, each to its own payment), next to the raw
// rate at which the same RPC serves those blocks to a plain loop of eth_getLogs per batch +
// eth_getBlockByNumber per block. The RPC is the in-process node, then the same node behind a
// proxy adding 5 ms to each request, as a remote node would. BENCH_BLOCKS sets the number of
// blocks (default 500), BENCH_PREFETCH the scanner's SCAN_PREFETCH (default 4).
//
//	go test -run '^$' -bench Backfill -benchtime 1x ./services/scanner/
func BenchmarkBackfill(b *testing.B) {
	blocks := testkit.EnvInt("BENCH_BLOCKS", 500)
	for _, latency := range []time.Duration{0, 5 * time.Millisecond} {
		for _, perBlock := range []int{0, 10} {
			b.Run(fmt.Sprintf("rpc_latency=%v/transfers=%d", latency, perBlock), func(b *testing.B) {
				for range b.N {
					r := runBackfill(b, blocks, perBlock, latency)
					reportRates(b, r.scanner, r.raw)
					fmt.Printf("backfill %d blocks, %d transfers/block, RPC latency +%v, batch %d, prefetch %d:\n",
						blocks, perBlock, latency, r.batch, r.prefetch)
					fmt.Printf("  raw RPC (getLogs per batch + getBlockByNumber per block): %.0f blocks/s\n", r.raw)
					fmt.Printf("  scanner (RPC + Postgres + JetStream acks):                %.0f blocks/s (%.0f transfers/s), ratio %.2f\n",
						r.scanner, r.scanner*float64(perBlock), r.scanner/r.raw)
				}
			})
		}
	}
}

// reportRates reports the scanner's and the raw RPC's blocks/s and their ratio.
func reportRates(b *testing.B, scanner, raw float64) {
	b.ReportMetric(scanner, "blocks/s")
	b.ReportMetric(raw, "raw_blocks/s")
	b.ReportMetric(scanner/raw, "ratio")
}

type backfillRates struct {
	scanner, raw float64
	batch        uint64
	prefetch     int
}

func runBackfill(b *testing.B, blocks, perBlock int, latency time.Duration) backfillRates {
	b.StopTimer()
	var rpcURL string
	h := newHarness(b, viaRPC(func(url string) string {
		rpcURL = url
		if latency > 0 {
			rpcURL = slowProxy(b, url, latency)
		}
		return rpcURL
	}))
	first := h.head() + 1
	for range blocks {
		// Each transfer pays its own payment, as customers do.
		for i := range perBlock {
			if i%2 == 0 {
				p := h.newPayment("ETH", big.NewInt(1_000_000_000), time.Now().Add(time.Hour))
				h.chain.SendETH(h.payer, p.Address, big.NewInt(1_000_000_000))
			} else {
				p := h.newPayment("USDC", big.NewInt(1), time.Now().Add(time.Hour))
				h.chain.TransferToken(h.payer, h.usdc, p.Address, big.NewInt(1))
			}
		}
		h.chain.Commit()
	}
	last := h.head()

	raw := rawRate(b, h, rpcURL, first, last)

	h.cfg.StartBlock = strconv.FormatUint(first, 10)
	h.cfg.Prefetch = testkit.EnvInt("BENCH_PREFETCH", h.cfg.Prefetch)
	b.StartTimer()
	h.start()
	// Timed from the first committed block, so start-up (migrations, provisioning) is left out.
	from, elapsed := h.timeToCursor(b, last)
	b.StopTimer()
	h.stop()
	if got, want := len(h.detected()), blocks*perBlock; got != want {
		b.Fatalf("%d events, want %d", got, want)
	}
	return backfillRates{scanner: float64(int64(last)-from) / elapsed.Seconds(), raw: raw, batch: h.cfg.BatchBlocks, prefetch: h.cfg.Prefetch}
}

// timeToCursor waits for the scanner's cursor to reach last and returns the first cursor seen
// and the time from then: timed from the first committed block, so start-up is left out.
func (h *harness) timeToCursor(b *testing.B, last uint64) (from int64, elapsed time.Duration) {
	var began time.Time
	deadline := time.Now().Add(5 * time.Minute)
	for {
		c := h.cursor()
		if c >= 0 && began.IsZero() {
			began, from = time.Now(), c
		}
		if c >= int64(last) {
			if from >= int64(last) {
				b.Fatalf("the scanner had reached block %d before the first look: too few blocks to time (raise BENCH_BLOCKS)", last)
			}
			return from, time.Since(began)
		}
		if time.Now().After(deadline) {
			b.Fatalf("scanner stuck at block %d of %d", c, last)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rawRate is blocks/s for the loop a scanner cannot beat without parallel requests: per batch,
// one eth_getLogs for the token transfers; per block, one eth_getBlockByNumber with its
// transactions.
func rawRate(b *testing.B, h *harness, rpcURL string, first, last uint64) float64 {
	ctx := context.Background()
	client, err := ethclient.DialContext(ctx, rpcURL)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	batch := h.cfg.BatchBlocks
	start := time.Now()
	for from := first; from <= last; from += batch {
		to := min(last, from+batch-1)
		h.rawTokenLogs(b, client, from, to)
		for n := from; n <= to; n++ {
			if _, err := client.BlockByNumber(ctx, new(big.Int).SetUint64(n)); err != nil {
				b.Fatal(err)
			}
		}
	}
	return float64(last-first+1) / time.Since(start).Seconds()
}

// rawTokenLogs is the reference loops' eth_getLogs of one batch: the token transfers of
// from..to.
func (h *harness) rawTokenLogs(b *testing.B, client *ethclient.Client, from, to uint64) {
	if _, err := client.FilterLogs(context.Background(), ethereum.FilterQuery{
		FromBlock: new(big.Int).SetUint64(from), ToBlock: new(big.Int).SetUint64(to),
		Addresses: []common.Address{h.usdc, h.dai}, Topics: [][]common.Hash{{scan.TransferTopic}},
	}); err != nil {
		b.Fatal(err)
	}
}

// slowProxy forwards JSON-RPC to target after holding each request for latency.
func slowProxy(tb testing.TB, target string, latency time.Duration) string {
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(latency)
		proxy.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

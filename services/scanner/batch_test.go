package main

import (
	"errors"
	"math/big"
	"strconv"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

func TestRPCBatchFromEnvironment(t *testing.T) {
	cases := []struct {
		name, value string
		want        int // 0: an error naming SCAN_RPC_BATCH
	}{
		{"default", "", 25},
		{"one block per request", "1", 1},
		{"largest", "1000", 1000},
		{"too large", "1001", 0},
		{"negative", "-1", 0},
		{"not a number", "many", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"CHAINS_FILE": "c"}
			if c.value != "" {
				env["SCAN_RPC_BATCH"] = c.value
			}
			var cfg Config
			err := testkit.LoadConfig(&cfg, env)
			if c.want == 0 {
				var ce *config.Error
				if !errors.As(err, &ce) || ce.Var != "SCAN_RPC_BATCH" {
					t.Fatalf("error %v, want one naming SCAN_RPC_BATCH", err)
				}
				return
			}
			if err != nil || cfg.RPCBatch != c.want {
				t.Fatalf("SCAN_RPC_BATCH=%q: %d, %v; want %d", c.value, cfg.RPCBatch, err, c.want)
			}
		})
	}
}

// TestBatchedBackfillThroughFaults backfills 20 blocks, each with one transfer, in batch
// requests of 3 blocks (ranges of 8, three requests ahead) while every third request fails,
// as a 502 and then as JSON-RPC errors for every call in the batch: every transfer is detected
// once and every block is recorded.
func TestBatchedBackfillThroughFaults(t *testing.T) {
	for _, c := range []struct {
		name  string
		fault chaintest.Fault
	}{{"http 502", chaintest.FaultHTTP}, {"json-rpc errors", chaintest.FaultRPCError}} {
		fault := c.fault
		t.Run(c.name, func(t *testing.T) {
			var proxy *chaintest.Proxy
			h := newHarness(t, viaRPC(func(url string) string {
				proxy = chaintest.FlakyProxy(t, url, 3)
				proxy.SetFault(fault)
				return proxy.URL()
			}))
			h.cfg.BatchBlocks, h.cfg.RPCBatch, h.cfg.Prefetch = 8, 3, 3
			first := h.head() + 1
			h.cfg.StartBlock = strconv.FormatUint(first, 10)
			var payments []payment
			for i := range 20 {
				if i%2 == 0 {
					p := h.newPayment("ETH", ether(1), time.Now().Add(time.Hour))
					h.mine(h.chain.SendETH(h.payer, p.Address, ether(1)))
					payments = append(payments, p)
				} else {
					p := h.newPayment("USDC", big.NewInt(1_000_000), time.Now().Add(time.Hour))
					h.mine(h.chain.TransferToken(h.payer, h.usdc, p.Address, big.NewInt(1_000_000)))
					payments = append(payments, p)
				}
			}
			head := h.head()
			h.start()
			h.waitScanned(head)
			h.checkNothingLost(proxy, payments, first, head)
		})
	}
}

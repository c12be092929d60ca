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
	checkIntVariable(t, "SCAN_RPC_BATCH", func(c Config) int { return c.RPCBatch }, []intCase{
		{"default", "", 25, false},
		{"one block per request", "1", 1, false},
		{"largest", "1000", 1000, false},
		{"too large", "1001", 0, true},
		{"negative", "-1", 0, true},
		{"not a number", "many", 0, true},
	})
}

// intCase is a value of an integer variable and what the config makes of it.
type intCase struct {
	name, value string
	want        int
	refused     bool // an error naming the variable
}

// checkIntVariable loads the scanner's config with variable set to each case's value ("":
// unset) and checks the field get reads, or that the value is refused, naming the variable.
func checkIntVariable(t *testing.T, variable string, get func(Config) int, cases []intCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"CHAINS_FILE": "chains.yaml"}
			if c.value != "" {
				env[variable] = c.value
			}
			var cfg Config
			err := testkit.LoadConfig(&cfg, env)
			if c.refused {
				var ce *config.Error
				if !errors.As(err, &ce) || ce.Var != variable {
					t.Fatalf("error %v, want one naming %s", err, variable)
				}
				return
			}
			if err != nil || get(cfg) != c.want {
				t.Fatalf("%s=%q: %d, %v; want %d", variable, c.value, get(cfg), err, c.want)
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

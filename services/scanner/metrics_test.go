package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// The running scanner serves every metric deploy/prometheus/metrics.txt lists for it: after a
// detected payment and a one-block reorg, the head figures of its chain, the blocks, the
// reorg, and the RPC calls, through a proxy that fails every 10th request (counted as errors
// of type http_<status>).
func TestServesItsMetrics(t *testing.T) {
	var proxy *chaintest.Proxy
	h := newHarness(t, viaRPC(func(u string) string {
		proxy = chaintest.FlakyProxy(t, u, 10)
		return proxy.URL()
	}))
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.OpsAddr = fmt.Sprintf("127.0.0.1:%d", port)
	h.start()
	pay := h.newPayment("ETH", ether(1), time.Now().Add(time.Hour))
	h.mine(h.chain.SendETH(h.payer, pay.Address, ether(1)))
	h.chain.Commit()
	h.waitScanned(h.head())
	h.chain.Reorg(1, func() {})
	h.chain.Commit()
	h.waitScanned(h.head())

	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	telemetrytest.RequireExported(t, "scanner", url, 15*time.Second)
	chain := fmt.Sprintf(`chain_id="%d"`, testChainID)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ctrip_scanner_transfers_detected_total", []string{chain}, 1},
		{"ctrip_scanner_reorgs_total", []string{chain}, 1},
		{"ctrip_chain_head", []string{chain}, float64(h.head())},
		{"ctrip_chain_head_lag", []string{chain}, 0},
	} {
		testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%s%v = %v", c.name, c.labels, c.want), func() bool {
			v, found := telemetrytest.ScrapeValue(t, url, c.name, c.labels...)
			return found && v == c.want
		})
	}
	if age, _ := telemetrytest.ScrapeValue(t, url, "ctrip_chain_head_age_seconds", chain); age < 0 || age > 60 {
		t.Errorf("head age %v s right after a block", age)
	}
	if n, _ := telemetrytest.ScrapeValue(t, url, "rpc_client_duration_seconds_count", chain, `rpc_method="eth_blockNumber"`); n < 1 {
		t.Errorf("%v eth_blockNumber calls measured", n)
	}
	errs, _ := telemetrytest.ScrapeValue(t, url, "ctrip_rpc_client_errors_total", chain, `error_type="http_`)
	if failed := proxy.Failures(); errs < 1 || errs > float64(failed) {
		t.Errorf("%v RPC errors counted; the proxy failed %d requests", errs, failed)
	}
}

package main

import (
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// The running sweeper serves every metric deploy/prometheus/metrics.txt lists for it after one
// token sweep (with its gas top-up): the sweep, its gas and fee, the gas tank, the consumer,
// the outbox and the chain's RPC calls.
func TestServesItsMetrics(t *testing.T) {
	h := newHarness(t)
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.OpsAddr = fmt.Sprintf("127.0.0.1:%d", port)
	h.start()
	p := h.newPayment(&h.token, big.NewInt(7_000_000))
	h.chain.MintToken(h.token, p.Deposit, p.Amount)
	h.publishConfirmed(p, p.ID+".confirmed")
	testkit.Eventually(t, 30*time.Second, "payments.swept", func() bool { return len(h.messages(event.SubjectSwept)) == 1 })

	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	telemetrytest.RequireExported(t, "sweeper", url, 15*time.Second)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ctrip_sweep_sweeps_total", []string{`outcome="swept"`, `token="USDC"`, `chain_id="1337"`}, 1},
		{"ctrip_sweep_replacements_pending", []string{`chain_id="1337"`}, 0},
		{"ctrip_jetstream_consumer_ack_pending", []string{`consumer="sweeper"`}, 0},
		{"ctrip_outbox_backlog", nil, 0},
	} {
		testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%s%v = %v", c.name, c.labels, c.want), func() bool {
			v, found := telemetrytest.ScrapeValue(t, url, c.name, c.labels...)
			return found && v == c.want
		})
	}
	for _, kind := range []string{"gas_topup", "token"} {
		if gas, _ := telemetrytest.ScrapeValue(t, url, "ctrip_sweep_gas_total", `kind="`+kind+`"`); gas < 21000 {
			t.Errorf("%s gas %v, want at least 21000", kind, gas)
		}
		if fee, _ := telemetrytest.ScrapeValue(t, url, "ctrip_sweep_fee_total", `kind="`+kind+`"`); fee <= 0 || fee > 1 {
			t.Errorf("%s fee %v ETH, want a small positive amount", kind, fee)
		}
	}
	if n, _ := telemetrytest.ScrapeValue(t, url, "rpc_client_duration_seconds_count", `rpc_method="eth_sendRawTransaction"`, `rpc_system="jsonrpc"`); n < 2 {
		t.Errorf("%v eth_sendRawTransaction calls measured, want the top-up and the transfer", n)
	}
	if b, _ := telemetrytest.ScrapeValue(t, url, "ctrip_gas_tank_balance", `chain_id="1337"`, `token="ETH"`); b <= 0 {
		t.Errorf("gas tank balance %v ETH", b)
	}
}

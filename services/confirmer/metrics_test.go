package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// The running confirmer serves every metric deploy/prometheus/metrics.txt lists for it after
// a payment is detected and confirmed: its transitions, the receipts it re-verified over RPC,
// its consumers and the outbox.
func TestServesItsMetrics(t *testing.T) {
	h := newHarness(t, 1)
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.OpsAddr = fmt.Sprintf("127.0.0.1:%d", port)
	h.start()
	amount := eth(2)
	p := h.payment(amount, time.Hour, nil)
	tr := h.payETH(p, amount)
	h.detect(tr)
	h.waitStatus(p.ID, "detected")
	h.head(h.tip())
	h.waitStatus(p.ID, "confirmed")

	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	telemetrytest.RequireExported(t, "confirmer", url, 15*time.Second)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ctrip_payment_transitions_total", []string{`from="pending"`, `to="detected"`}, 1},
		{"ctrip_payment_transitions_total", []string{`from="detected"`, `to="confirmed"`}, 1},
		{"ctrip_jetstream_consumer_pending", []string{`stream="PAYMENTS"`, `consumer="confirmer"`}, 0},
		{"ctrip_outbox_backlog", nil, 0},
	} {
		testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%s%v = %v", c.name, c.labels, c.want), func() bool {
			v, found := telemetrytest.ScrapeValue(t, url, c.name, c.labels...)
			return found && v == c.want
		})
	}
	if n, _ := telemetrytest.ScrapeValue(t, url, "rpc_client_duration_seconds_count", `rpc_system="jsonrpc"`, `chain_id="`); n < 1 {
		t.Errorf("%v RPC calls measured", n)
	}
}

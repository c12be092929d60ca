package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// The running sender serves every metric deploy/prometheus/metrics.txt lists for it: one
// delivery to a healthy endpoint, one to an endpoint that answers 410 Gone (disabled), and the
// consumer and DLQ gauges.
func TestServesItsMetrics(t *testing.T) {
	h := newHarness(t)
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.OpsAddr = fmt.Sprintf("127.0.0.1:%d", port)
	ok := newReceiver(t, nil)
	gone := newReceiver(t, status(http.StatusGone))
	h.endpoint("m_ok", ok.srv.URL)
	h.endpoint("m_gone", gone.srv.URL)
	h.start()
	h.publish("payments.confirmed", "m_ok")
	h.publish("payments.confirmed", "m_gone")
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	telemetrytest.RequireExported(t, "webhook-sender", url, 15*time.Second)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ctrip_webhook_deliveries_total", []string{`outcome="delivered"`}, 1},
		{"ctrip_webhook_endpoints_disabled_total", nil, 1},
		{"ctrip_webhook_attempt_duration_seconds_count", nil, 2},
		{"ctrip_dlq_depth", nil, 1}, // the 410 terminated its message: dead-lettered
		{"ctrip_jetstream_consumer_pending", []string{`consumer="webhook-sender"`, `stream="WEBHOOKS"`}, 0},
	} {
		testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%s%v = %v", c.name, c.labels, c.want), func() bool {
			v, found := telemetrytest.ScrapeValue(t, url, c.name, c.labels...)
			return found && v == c.want
		})
	}
}

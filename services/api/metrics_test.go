package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// The running api serves every metric deploy/prometheus/metrics.txt lists for it: request
// durations by route and status, and the outbox it writes payments.created through.
func TestServesItsMetrics(t *testing.T) {
	h := newHarness(t)
	h.cfg.OpsAddr = testkit.FreeAddr(t)
	h.start()
	h.merchant("metrics")

	url := fmt.Sprintf("http://%s/metrics", h.cfg.OpsAddr)
	telemetrytest.RequireExported(t, "api", url, 15*time.Second)
	testkit.Eventually(t, 10*time.Second, "one POST /v1/merchants answered 201", func() bool {
		n, _ := telemetrytest.ScrapeValue(t, url, "http_server_request_duration_seconds_count", `http_route="POST /v1/merchants"`, `http_response_status_code="201"`)
		return n == 1
	})
	// Buckets for seconds (telemetry.DurationBuckets), not the SDK's millisecond defaults.
	// (The SDK's defaults, 0, 5, 10, … 10000, have no 0.005 boundary.)
	if _, ok := telemetrytest.ScrapeValue(t, url, "http_server_request_duration_seconds_bucket", `le="0.005"`); !ok {
		t.Error("no 5 ms bucket: the histogram has the SDK's default buckets")
	}
	if n, ok := telemetrytest.ScrapeValue(t, url, "ctrip_outbox_backlog"); !ok || n != 0 {
		t.Errorf("outbox backlog %v (served %v), want 0", n, ok)
	}
}

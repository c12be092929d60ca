package main

import (
	"encoding/json"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// Every delivery attempt is a span of the event's trace, a child of the fan-out's: its attempt
// number, endpoint, HTTP status and payment id, and status Error when the attempt failed. The
// sender exports over OTLP as in production, to an in-memory collector.
func TestEveryDeliveryAttemptIsASpanOfTheEventsTrace(t *testing.T) {
	col := telemetrytest.MustOTLPCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50") // ms: spans reach the collector soon
	h := newHarness(t)
	h.cfg.OTLPEndpoint = col.URL
	rc := newReceiver(t, failFirst(2))
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	h.start()
	env := h.publish("payments.confirmed", "m_1")
	var data struct {
		PaymentID string `json:"payment_id"`
	}
	if err := json.Unmarshal(env.Data, &data); err != nil || data.PaymentID == "" {
		t.Fatalf("event data %s: %v", env.Data, err)
	}
	testkit.Eventually(t, 15*time.Second, "third attempt delivered", func() bool { return len(rc.got()) == 3 })

	var deliveries []telemetrytest.Span
	var fanout *telemetrytest.Span
	testkit.Eventually(t, 10*time.Second, "the attempts' spans", func() bool {
		deliveries, fanout = nil, nil
		for _, s := range col.Spans() {
			if s.TraceID != testTraceID {
				continue
			}
			switch s.Name {
			case "webhook.deliver":
				deliveries = append(deliveries, s)
			case "webhook.fanout payments.confirmed":
				fanout = &s
			}
		}
		return len(deliveries) == 3 && fanout != nil
	})
	if fanout.Parent != "00f067aa0ba902b7" || fanout.Service != "webhook-sender" {
		t.Fatalf("fan-out span's parent %q (service %q), want the publisher's span", fanout.Parent, fanout.Service)
	}
	sort.Slice(deliveries, func(i, j int) bool {
		return deliveries[i].Attrs["webhook.attempt"] < deliveries[j].Attrs["webhook.attempt"]
	})
	for i, d := range deliveries {
		attempt := i + 1
		wantStatus, wantError := "500", true
		if attempt == 3 {
			wantStatus, wantError = "200", false
		}
		if d.Parent != fanout.SpanID {
			t.Errorf("attempt %d: parent %s, want the fan-out span %s", attempt, d.Parent, fanout.SpanID)
		}
		if d.Attrs["webhook.attempt"] != strconv.Itoa(attempt) || d.Attrs["webhook.endpoint_id"] != epID ||
			d.Attrs["http.response.status_code"] != wantStatus || d.Attrs["payment.id"] != data.PaymentID ||
			d.Attrs["webhook.event_id"] != env.ID {
			t.Errorf("attempt %d: attributes %v, want attempt %d, endpoint %s, status %s, payment %s, event %s",
				attempt, d.Attrs, attempt, epID, wantStatus, data.PaymentID, env.ID)
		}
		if d.Error != wantError {
			t.Errorf("attempt %d (HTTP %s): span status Error = %v, want %v", attempt, wantStatus, d.Error, wantError)
		}
	}
}

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/retention"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// The running sender prunes webhook_attempts older than RETENTION_AGE at start-up, in batches,
// and keeps the newer ones and every dead letter.
func TestSenderPrunesOldAttempts(t *testing.T) {
	h := newHarness(t)
	if _, err := h.db.Exec(`INSERT INTO webhook_attempts (event_id, event_type, endpoint_id, stream_seq, attempt,
			latency_ms, delivered, attempted_at)
		SELECT CASE WHEN g <= 25 THEN 'evt_old' ELSE 'evt_new' END, 'payment.confirmed', 'ep_1', g, 1, 1, true,
			CASE WHEN g <= 25 THEN now() - interval '40 days' ELSE now() - interval '29 days' END
		FROM generate_series(1, 30) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.Exec(`INSERT INTO webhook_dead_letters (id, origin_stream, origin_seq, origin_subject, endpoint_id,
			reason, deliveries, body, created_at)
		VALUES ('dl_old', 'WEBHOOKS', 1, 'webhooks.deliver.ep_1', 'ep_1', 'max_deliveries', 4, '{}', now() - interval '90 days')`); err != nil {
		t.Fatal(err)
	}
	h.cfg.Config = retention.Config{Age: 30 * 24 * time.Hour, Batch: 10, Interval: time.Hour}
	h.start()
	testkit.Eventually(t, 15*time.Second, "old attempts pruned", func() bool {
		return h.count(`SELECT count(*) FROM webhook_attempts WHERE event_id = 'evt_old'`) == 0
	})
	if n := h.count(`SELECT count(*) FROM webhook_attempts WHERE event_id = 'evt_new'`); n != 5 {
		t.Fatalf("%d of the 5 newer attempts left", n)
	}
	if n := h.count(`SELECT count(*) FROM webhook_dead_letters`); n != 1 {
		t.Fatalf("%d dead letters left, want the old one kept", n)
	}
}

// Attempts are read while a delivery is retried (the dead letter's last error): RETENTION_AGE
// must outlast the whole WEBHOOK_BACKOFF schedule; 0 keeps everything.
func TestRetentionAgeOutlastsTheSchedule(t *testing.T) {
	for name, tc := range map[string]struct {
		env     map[string]string
		wantVar string // "": valid
	}{
		"defaults":                   {nil, ""},
		"keep forever":               {map[string]string{"RETENTION_AGE": "0"}, ""},
		"a day past a short backoff": {map[string]string{"RETENTION_AGE": "24h", "WEBHOOK_BACKOFF": "1m,1h"}, ""},
		"a day, default schedule":    {map[string]string{"RETENTION_AGE": "24h"}, "RETENTION_AGE"}, // 27h35m5s of retries
		"exactly the schedule":       {map[string]string{"RETENTION_AGE": "2h", "WEBHOOK_BACKOFF": "1h,1h"}, "RETENTION_AGE"},
		"batch":                      {map[string]string{"RETENTION_BATCH": "-5"}, "RETENTION_BATCH"},
		"pause":                      {map[string]string{"RETENTION_PAUSE": "briefly"}, "RETENTION_PAUSE"},
	} {
		t.Run(name, func(t *testing.T) {
			var cfg Config
			err := testkit.LoadConfig(&cfg, tc.env)
			switch {
			case tc.wantVar == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.wantVar != "" && (err == nil || !strings.Contains(err.Error(), tc.wantVar)):
				t.Fatalf("error %v, want one naming %s", err, tc.wantVar)
			}
		})
	}
	var cfg Config
	if err := testkit.LoadConfig(&cfg, nil); err != nil || cfg.Age != 30*24*time.Hour || cfg.Batch != 1000 {
		t.Fatalf("retention defaults %+v (%v)", cfg.Config, err)
	}
}

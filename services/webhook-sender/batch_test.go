package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// Events waiting when the sender starts reach the fan-out together. Each is settled on its own:
// the good ones are delivered once, an undecodable one is terminated (not redelivered), one of a
// merchant without endpoints is acked with nothing to deliver, and nothing is nak'ed.
func TestFanoutBatchSettlesEachEventOnItsOwn(t *testing.T) {
	// An ack wait of 1 s, not the harness's 100 ms: a WEBHOOKS message waiting in the client's
	// pull buffer has no heartbeat yet, and under -race 40 of them can wait longer than 100 ms,
	// which redelivers them (a duplicate, allowed but not what this test is about).
	h := newHarness(t, time.Second, 2*time.Second)
	rc := newReceiver(t, nil)
	h.endpoint("m_1", rc.srv.URL)
	ctx := context.Background()
	if _, err := provision(ctx, h.js, h.cfg.Backoff, natsbus.Sizing{}); err != nil {
		t.Fatal(err)
	}
	const good = 40
	want := map[string]bool{}
	for i := range good {
		want[h.publish("payments.confirmed", "m_1").ID] = true
		if i == good/2 {
			if _, err := h.js.Publish(ctx, "payments.confirmed", []byte("{not json")); err != nil {
				t.Fatal(err)
			}
			h.publish("payments.confirmed", "m_without_endpoints")
		}
	}
	h.start()
	testkit.Eventually(t, 10*time.Second, "every good event delivered", func() bool { return len(rc.got()) >= good })
	testkit.Eventually(t, 5*time.Second, "fan-out settled everything", func() bool {
		info, err := testkit.ConsumerInfo(ctx, h.js, "PAYMENTS", "webhook-fanout")
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	// Room for a wrong redelivery to show.
	testkit.Never(t, 300*time.Millisecond, "the fan-out consumer redelivers or has pending acks", func() bool {
		info, err := testkit.ConsumerInfo(ctx, h.js, "PAYMENTS", "webhook-fanout")
		if err != nil {
			t.Fatal(err)
		}
		return info.NumRedelivered != 0 || info.NumAckPending != 0
	})
	got := rc.got()
	var rows []struct {
		Attempt int `db:"attempt"`
		N       int `db:"n"`
	}
	_ = h.db.Select(&rows, `SELECT attempt, count(*) AS n FROM webhook_attempts GROUP BY attempt ORDER BY attempt`)
	t.Logf("attempt rows by attempt number: %+v", rows)
	if len(got) != good {
		t.Fatalf("receiver got %d requests, want %d", len(got), good)
	}
	for _, r := range got {
		id := r.header.Get("webhook-id")
		if !want[id] {
			t.Fatalf("unexpected or repeated delivery of %s", id)
		}
		delete(want, id)
	}
}

// An attempt that takes longer than the ack wait (the first backoff step) is not redelivered
// while it runs: heartbeats keep restarting the ack timer.
func TestSlowAttemptIsNotRedeliveredMeanwhile(t *testing.T) {
	h := newHarness(t, 200*time.Millisecond, 400*time.Millisecond)
	rc := newReceiver(t, func(int, *http.Request) (int, http.Header) {
		time.Sleep(1200 * time.Millisecond)
		return http.StatusOK, nil
	})
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	h.start()
	env := h.publish("payments.confirmed", "m_1")
	testkit.Eventually(t, 5*time.Second, "attempt row", func() bool { return len(h.attempts(env.ID, epID)) == 1 })
	// Room for a wrong redelivery to show.
	testkit.Never(t, 500*time.Millisecond, "a second request for one slow delivery", func() bool { return len(rc.got()) != 1 })
	if a := h.attempts(env.ID, epID); len(a) != 1 || !a[0].Delivered || a[0].Attempt != 1 || a[0].LatencyMS < 1200 {
		t.Fatalf("attempt rows %+v, want one delivered first attempt of at least 1.2 s", a)
	}
}

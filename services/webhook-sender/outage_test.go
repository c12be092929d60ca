package main

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// Our own outages never dead-letter a merchant's webhook: only attempts that reached the
// merchant count against the schedule.

// noAdvisories fails the test if the DLQ stream holds anything: a MAX_DELIVERIES or
// MSG_TERMINATED advisory, or a dead letter.
func (h *harness) noAdvisories(t *testing.T) {
	t.Helper()
	dlq, err := h.js.Stream(context.Background(), "DLQ")
	if err != nil {
		t.Fatal(err)
	}
	if n := dlq.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("DLQ stream holds %d messages: the delivery was terminated or exhausted", n)
	}
	if n := h.count(`SELECT count(*) FROM webhook_dead_letters`); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

// SIGTERM while the last allowed attempt is in flight: the request is cut short by our shutdown,
// so it is not counted; the next sender delivers the webhook.
func TestSIGTERMDuringTheLastAttemptDoesNotDeadLetter(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and stops a real process")
	}
	bin := testkit.MustBuild(t, "webhook-sender")
	// 3 deliveries; steps long enough that no heartbeat is late on a busy machine (an early
	// redelivery would add an attempt the test does not expect).
	h := newProcessHarness(t, time.Second, time.Second)
	inLast := make(chan struct{})
	rc := newReceiver(t, func(n int, r *http.Request) (int, http.Header) {
		if n < 3 {
			return http.StatusInternalServerError, nil
		}
		close(inLast)
		<-r.Context().Done() // a slow merchant: the sender gives up first, at its shutdown
		return http.StatusInternalServerError, nil
	})
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	sender := h.senderProcess(t, bin, "sender-1.log", "SHUTDOWN_TIMEOUT=1s", "WEBHOOK_TIMEOUT=30s")
	testkit.Eventually(t, 20*time.Second, "sender provisioned", func() bool {
		_, err := h.js.Consumer(context.Background(), "PAYMENTS", "webhook-fanout")
		return err == nil
	})
	env := h.publish("payments.confirmed", "m_1")
	select {
	case <-inLast:
	case <-time.After(20 * time.Second):
		t.Fatalf("the third attempt never came; %d requests", len(rc.got()))
	}
	if err := sender.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := sender.Wait(); err != nil {
		t.Fatalf("sender did not stop cleanly: %v", err)
	}

	rc.setRespond(status(http.StatusOK))
	h.senderProcess(t, bin, "sender-2.log")
	testkit.Eventually(t, 20*time.Second, "delivered by the next sender", func() bool {
		for _, r := range rc.got()[3:] {
			if r.header.Get("webhook-id") == env.ID {
				return true
			}
		}
		return false
	})
	// The attempt row is written after the merchant's answer, so it may trail the request.
	var rows []attemptRow
	testkit.Eventually(t, 10*time.Second, "the delivered attempt recorded", func() bool {
		rows = h.attempts(env.ID, epID)
		return len(rows) >= 4
	})
	if len(rows) != 4 || rows[2].Attempt != 3 || rows[2].Error == nil || !strings.Contains(*rows[2].Error, "interrupted by the sender's shutdown") ||
		rows[3].Attempt != 3 || !rows[3].Delivered {
		t.Fatalf("attempt rows %+v, want 500, 500, attempt 3 interrupted, attempt 3 delivered", rows)
	}
	h.noAdvisories(t)
}

// Postgres stopped when the last allowed delivery loads its endpoint: the delivery waits for the
// database, then reaches the merchant.
func TestPostgresDownDuringTheLastAttemptDoesNotDeadLetter(t *testing.T) {
	// 3 deliveries; the last comes 3 s after the second, past the 2 s endpoint cache loaded by
	// the first.
	h := newHarness(t, time.Second, 3*time.Second)
	pg := testkit.MustPostgresCluster(t)
	h.usePostgres(pg.URL)
	rc := newReceiver(t, failFirst(2))
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	h.start()
	env := h.publish("payments.confirmed", "m_1")
	testkit.Eventually(t, 10*time.Second, "two failed attempts", func() bool { return len(rc.got()) == 2 })
	// The attempt row is written after the merchant's answer: stopping Postgres before it is in
	// would lose it (by design, a row that cannot be written is not retried).
	testkit.Eventually(t, 10*time.Second, "both failed attempts recorded", func() bool { return len(h.attempts(env.ID, epID)) == 2 })
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the last delivery, with Postgres down", func() bool {
		info, err := testkit.ConsumerInfo(context.Background(), h.js, "WEBHOOKS", "webhook-sender")
		return err == nil && info.Delivered.Consumer >= 3
	})
	// It is held meanwhile; the broken sender terminated it at once.
	testkit.Never(t, time.Second, "a request while the endpoint could not be loaded", func() bool { return len(rc.got()) != 2 })
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "delivered once Postgres is back", func() bool { return len(rc.got()) == 3 })
	if got := rc.got()[2].header.Get("webhook-id"); got != env.ID {
		t.Fatalf("third request webhook-id %q, want %q", got, env.ID)
	}
	testkit.Eventually(t, 10*time.Second, "the delivered attempt recorded", func() bool {
		rows := h.attempts(env.ID, epID)
		return len(rows) == 3 && rows[2].Delivered
	})
	h.noAdvisories(t)
}

// usePostgres points the harness (and the sender it starts) at a database on the given server.
func (h *harness) usePostgres(adminURL string) {
	h.t.Helper()
	h.db, h.dsn, h.cfg.DatabaseURL = testkit.MustOpenDB(h.t, adminURL), adminURL, adminURL
}

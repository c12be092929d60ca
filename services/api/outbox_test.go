package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/outbox"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// A crash between the commit and the publish must not lose payments.created: the handler
// commits with no relay running (as if the process died right after the commit), and the next
// api process publishes it — exactly once, also when a relay republishes a row it had published
// but not marked.
func TestOutboxPublishesAfterCrash(t *testing.T) {
	h := newHarness(t)
	srv := h.serveHandler(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	key := createMerchant(t, srv.URL, "m").APIKey
	r := call(t, srv.URL, "POST", "/v1/payments", key, `{"chain_id":1337,"token":"USDC","amount":"12.345678"}`)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var p payment
	r.json(t, &p)
	srv.Close()
	if n := h.count(`SELECT count(*) FROM outbox WHERE msg_id = $1 AND published_at IS NULL`, p.ID+".created"); n != 1 {
		t.Fatalf("committed payment has %d unpublished outbox rows, want 1", n)
	}
	if msgs := h.streamMsgs("PAYMENTS", ""); len(msgs) != 0 {
		t.Fatalf("%d messages on PAYMENTS before any relay ran", len(msgs))
	}

	h.start()
	testkit.Eventually(t, 10*time.Second, "the restarted api to publish the event", func() bool {
		return len(h.createdEvents()[p.ID]) == 1
	})
	testkit.Eventually(t, 5*time.Second, "the outbox row marked", func() bool {
		return h.count(`SELECT count(*) FROM outbox WHERE published_at IS NOT NULL`) == 1
	})

	// A relay that published and crashed before marking: the row is published again, and
	// PAYMENTS drops it as a duplicate (Nats-Msg-Id inside the 10-minute window).
	if _, err := h.db.Exec(`UPDATE outbox SET published_at = NULL`); err != nil {
		t.Fatal(err)
	}
	relay := &outbox.Relay{DB: h.db, JS: h.js, Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testkit.Eventually(t, 10*time.Second, "the row republished", func() bool {
		_, _ = relay.Flush(ctx)
		return h.count(`SELECT count(*) FROM outbox WHERE published_at IS NULL`) == 0
	})
	h.stopAPI()
	h.start()
	if n := h.count(`SELECT count(*) FROM outbox WHERE published_at IS NULL`); n != 0 {
		t.Fatalf("%d unpublished rows", n)
	}
	if msgs := h.streamMsgs("PAYMENTS", event.SubjectCreated); len(msgs) != 1 {
		t.Fatalf("%d payments.created messages on PAYMENTS, want exactly 1", len(msgs))
	}
}

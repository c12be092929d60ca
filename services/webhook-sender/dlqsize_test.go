package main

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctrip-pay/pipeline/services/webhook-sender/internal/webhook"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// A webhook message at the server's max payload is terminated as poison; its copy on DLQ, with
// the Dlq-* headers added, would exceed the max payload, so the copy carries the first bytes of
// the body and Dlq-Body-Truncated, the full body stays in the dead-letter row, and the DLQ
// consumer goes on to the next dead letter.
func TestDeadLetterOfAMaxPayloadMessageGetsACopyThatFits(t *testing.T) {
	// A long first step: an 8 MB message takes a while to reach a busy sender, and a redelivery
	// on an ack wait that ran out meanwhile would end as max_deliveries, not poison.
	h := newHarness(t, 10*time.Second)
	rc := newReceiver(t, status(http.StatusOK))
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	h.start()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	maxPayload := int(h.nc.MaxPayload())
	big := nats.NewMsg("webhooks.deliver." + epID)
	big.Header.Set("Nats-Msg-Id", "evt_big."+epID)
	big.Data = bytes.Repeat([]byte("x"), maxPayload-64) // not JSON: poison
	if _, err := h.js.PublishMsg(ctx, big); err != nil {
		t.Fatalf("publish a message at the max payload: %v", err)
	}
	testkit.Eventually(t, 30*time.Second, "the big message's dead letter published", func() bool {
		return h.count(`SELECT count(*) FROM webhook_dead_letters WHERE published_at IS NOT NULL`) == 1
	})
	var row struct {
		Seq    uint64 `db:"dlq_seq"`
		Reason string `db:"reason"`
		Size   int    `db:"size"`
	}
	if err := h.db.Get(&row, `SELECT dlq_seq, reason, length(body) AS size FROM webhook_dead_letters`); err != nil {
		t.Fatal(err)
	}
	if row.Reason != webhook.ReasonPoison || row.Size != len(big.Data) {
		t.Fatalf("dead letter row: reason %q, body %d bytes; want poison with the full %d bytes", row.Reason, row.Size, len(big.Data))
	}
	dlq, err := h.js.Stream(ctx, "DLQ")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := dlq.GetMsg(ctx, row.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if got := cp.Header.Get(webhook.HeaderDlqBodyTruncated); got != strconv.Itoa(len(big.Data)) {
		t.Fatalf("%s = %q, want the original size %d", webhook.HeaderDlqBodyTruncated, got, len(big.Data))
	}
	if len(cp.Data) == 0 || len(cp.Data) >= len(big.Data) || !bytes.Equal(cp.Data, big.Data[:len(cp.Data)]) {
		t.Fatalf("copy body: %d bytes, want a prefix of the original", len(cp.Data))
	}
	if cp.Header.Get(webhook.HeaderDlqID) == "" || cp.Header.Get(webhook.HeaderDlqReason) != webhook.ReasonPoison {
		t.Fatalf("copy headers %v", cp.Header)
	}

	// The DLQ consumer moved past it: the next dead letter is processed.
	small := nats.NewMsg("webhooks.deliver." + epID)
	small.Header.Set("Nats-Msg-Id", "evt_small."+epID)
	small.Data = []byte("not json either")
	if _, err := h.js.PublishMsg(ctx, small); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the next dead letter published", func() bool {
		return h.count(`SELECT count(*) FROM webhook_dead_letters WHERE published_at IS NOT NULL`) == 2
	})
}

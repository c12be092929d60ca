package main

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// A sender that dies during every attempt never terminates the message itself: the server's
// MAX_DELIVERIES advisory is what must produce the dead letter, once, even if the advisory is
// seen twice.
func TestServerMaxDeliveriesAdvisoryBecomesOneDeadLetter(t *testing.T) {
	schedule := Schedule{50 * time.Millisecond, 100 * time.Millisecond}
	h := newHarness(t, schedule...)
	rc := newReceiver(t, nil)
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	ctx := context.Background()
	if _, err := provision(ctx, h.js, schedule, natsbus.Sizing{}); err != nil {
		t.Fatal(err)
	}
	env := h.publishDelivery(epID)

	// Take every delivery and never settle it, like a sender crashing mid-request.
	cons, err := h.js.Consumer(ctx, "WEBHOOKS", "webhook-sender")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= len(schedule)+1; i++ {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			md, _ := m.Metadata()
			if int(md.NumDelivered) != i {
				t.Fatalf("delivery %d has NumDelivered %d", i, md.NumDelivered)
			}
			got++
		}
		if got != 1 {
			t.Fatalf("delivery %d: got %d messages (%v)", i, got, batch.Error())
		}
	}
	dlq, err := h.js.Stream(ctx, "DLQ")
	if err != nil {
		t.Fatal(err)
	}
	// The server decides a message is exhausted when it would redeliver it, i.e. while a pull
	// is waiting — as there always is with a running sender. That pull gets nothing.
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		md, _ := m.Metadata()
		t.Fatalf("message delivered beyond MaxDeliver (delivery %d)", md.NumDelivered)
	}
	var advisory *jetstream.RawStreamMsg
	testkit.Eventually(t, 10*time.Second, "MAX_DELIVERIES advisory captured by DLQ", func() bool {
		advisory, err = dlq.GetLastMsgForSubject(ctx, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.WEBHOOKS.webhook-sender")
		return err == nil
	})

	h.start()
	testkit.Eventually(t, 10*time.Second, "dead letter", func() bool {
		return h.count(`SELECT count(*) FROM webhook_dead_letters WHERE published_at IS NOT NULL`) == 1
	})
	// The advisory arrives again (a redelivery, or a second copy): still one dead letter.
	m := nats.NewMsg(advisory.Subject)
	m.Data = advisory.Data
	if _, err := h.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "second advisory consumed", func() bool {
		info, err := testkit.ConsumerInfo(ctx, h.js, "DLQ", "dlq-processor")
		return err == nil && info.AckFloor.Stream >= info.Delivered.Stream && info.NumPending == 0 && info.Delivered.Consumer >= 2
	})
	if n := h.count(`SELECT count(*) FROM webhook_dead_letters`); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
	var reason, eventID string
	var deliveries int
	if err := h.db.QueryRow(`SELECT reason, event_id, deliveries FROM webhook_dead_letters`).Scan(&reason, &eventID, &deliveries); err != nil {
		t.Fatal(err)
	}
	if reason != "max_deliveries" || eventID != env || deliveries != len(schedule)+1 {
		t.Fatalf("dead letter reason %q event %q deliveries %d", reason, eventID, deliveries)
	}
	info, err := dlq.Info(ctx, jetstream.WithSubjectFilter("dlq.webhooks.>"))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects["dlq.webhooks."+epID]; n != 1 {
		t.Fatalf("%d copies on dlq.webhooks.%s, want 1", n, epID)
	}
	if n := len(rc.got()); n != 0 {
		t.Fatalf("receiver got %d requests; the sender must not deliver a message the server gave up on", n)
	}
}

// publishDelivery puts one message straight on WEBHOOKS, as the fan-out would, and returns the event id.
func (h *harness) publishDelivery(endpointID string) string {
	h.t.Helper()
	env, err := newTestEnvelope("m_1")
	if err != nil {
		h.t.Fatal(err)
	}
	m := nats.NewMsg("webhooks.deliver." + endpointID)
	m.Data = mustJSON(h.t, env)
	m.Header.Set("Nats-Msg-Id", env.ID+"."+endpointID)
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		h.t.Fatal(err)
	}
	return env.ID
}

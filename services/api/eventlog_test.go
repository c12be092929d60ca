package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/streams"
)

// publishDetected publishes a payments.detected event as the scanner does (straight to
// PAYMENTS, not through the outbox) and returns its id.
func (h *harness) publishDetected(merchantID, paymentID, msgID string) string {
	h.t.Helper()
	env, err := event.New("payment.detected", event.Payment{PaymentID: paymentID, MerchantID: merchantID, Status: "detected",
		ChainID: 1337, Chain: "devnet", Token: "ETH"})
	if err != nil {
		h.t.Fatal(err)
	}
	body, err := json.Marshal(env)
	if err != nil {
		h.t.Fatal(err)
	}
	h.publishRaw(event.SubjectDetected, msgID, body)
	return env.ID
}

func (h *harness) publishRaw(subject, msgID string, body []byte) {
	h.t.Helper()
	m := nats.NewMsg(subject)
	m.Data = body
	if msgID != "" {
		m.Header.Set(event.HeaderMsgID, msgID)
	}
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		h.t.Fatal(err)
	}
}

// TestDetectedEventsJoinTheEventLog: the payments.detected events the scanner publishes
// itself are kept by the api's consumer api-events, so a payment's events list them (once,
// however often they are delivered) and a replay resends them; a message that is no event is
// terminated and the next one is kept.
func TestDetectedEventsJoinTheEventLog(t *testing.T) {
	h := startHarness(t)
	merchantID, key := h.merchant("m")
	p := h.createPayment(key, `{"chain_id":1337,"token":"ETH","amount":"1"}`)
	h.published()

	h.publishRaw(event.SubjectDetected, "poison.1", []byte(`{"id":`))
	h.publishRaw(event.SubjectDetected, "", []byte(`{"id":"evt_x","type":"payment.detected","data":{"payment_id":"p","merchant_id":"m"}}`))
	detected := h.publishDetected(merchantID, p.ID, "detected.1337.0xab.-1.0xcd")
	testkit.Eventually(t, 10*time.Second, "the detected event in the event log", func() bool {
		return h.count(`SELECT count(*) FROM outbox WHERE msg_id = 'detected.1337.0xab.-1.0xcd' AND published_at IS NOT NULL
			AND payment_id = $1 AND merchant_id = $2`, p.ID, merchantID) == 1
	})
	h.stopAPI()
	cons, err := h.js.Consumer(context.Background(), streams.Payments, "api-events")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 {
		t.Fatalf("api-events: %d ack pending, %d pending: the poison messages were not terminated", info.NumAckPending, info.NumPending)
	}
	// Everything delivered again (the consumer recreated from scratch): the event is kept once.
	if err := h.js.DeleteConsumer(context.Background(), streams.Payments, "api-events"); err != nil {
		t.Fatal(err)
	}
	h.start()
	testkit.Eventually(t, 10*time.Second, "api-events to take every message again", func() bool {
		c, err := h.js.Consumer(context.Background(), streams.Payments, "api-events")
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Consumer >= 3
	})
	if n := h.count(`SELECT count(*) FROM outbox WHERE msg_id = 'detected.1337.0xab.-1.0xcd'`); n != 1 {
		t.Fatalf("%d rows for the redelivered event, want 1", n)
	}

	var got paymentEvents
	r := h.call("GET", "/v1/payments/"+p.ID+"/events", key, nil)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r.json(t, &got)
	if len(got.Data) != 2 || got.Data[0].Type != "payment.created" || got.Data[1].ID != detected || got.Data[1].Type != "payment.detected" {
		t.Fatalf("events %s", r.body)
	}
	if n := h.count(`SELECT count(*) FROM outbox WHERE msg_id IN ('poison.1', '')`); n != 0 {
		t.Fatalf("%d poison rows kept", n)
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/streams"
)

// TestPoisonOnEveryConsumedSubject: each kind of poison on payments.detected, the subject of
// the api's event-log consumer api-events, is terminated once with a reason (the server's
// MSG_TERMINATED advisory carries it), is not redelivered, keeps no outbox row and leaves the
// api ready; the next good payments.detected joins the event log. Nats-Msg-Id is the event
// log's key, so a message without it is poison here.
func TestPoisonOnEveryConsumedSubject(t *testing.T) {
	h := newHarness(t)
	h.cfg.OpsAddr = testkit.FreeAddr(t)
	h.start()
	ctx := context.Background()
	testkit.Eventually(t, 10*time.Second, "consumer api-events", func() bool {
		_, err := h.js.Consumer(ctx, streams.Payments, "api-events")
		return err == nil
	})
	merchantID, key := h.merchant("m")
	p := h.createPayment(key, `{"chain_id":1337,"token":"ETH","amount":"1"}`)
	h.published()

	detected := func(id, typ, data string) []byte {
		return []byte(fmt.Sprintf(`{"id":%q,"type":%q,"timestamp":"2026-11-28T20:14:26Z","data":%s}`, id, typ, data))
	}
	ids := fmt.Sprintf(`{"payment_id":%q,"merchant_id":%q}`, p.ID, merchantID)
	cases := []struct {
		name, msgID string
		body        []byte
	}{
		{"not JSON", "poison.1", []byte(`{"id":`)},
		{"an array", "poison.2", []byte(`[{"id":"evt_1"}]`)},
		{"an empty object", "poison.3", []byte(`{}`)},
		{"no Nats-Msg-Id header", "", detected("evt_poison4", "payment.detected", ids)},
		{"an id that is no event id", "poison.5", detected("pay_1", "payment.detected", ids)},
		{"the type of another subject", "poison.6", detected("evt_poison6", "payment.confirmed", ids)},
		{"no event type", "poison.7", detected("evt_poison7", "", ids)},
		{"data without payment_id", "poison.8", detected("evt_poison8", "payment.detected", fmt.Sprintf(`{"merchant_id":%q}`, merchantID))},
		{"data without merchant_id", "poison.9", detected("evt_poison9", "payment.detected", fmt.Sprintf(`{"payment_id":%q}`, p.ID))},
		{"ids of the wrong type", "poison.10", detected("evt_poison10", "payment.detected", `{"payment_id":1,"merchant_id":2}`)},
		{"data is not an object", "poison.11", detected("evt_poison11", "payment.detected", `"x"`)},
		{"payment_id with a NUL byte", "poison.12", detected("evt_poison12", "payment.detected",
			fmt.Sprintf(`{"payment_id":"pay\u0000","merchant_id":%q}`, merchantID))},
		{"an id too long to be one", "poison.13", detected("evt_poison13", "payment.detected",
			fmt.Sprintf(`{"payment_id":%q,"merchant_id":%q}`, strings.Repeat("p", 600), merchantID))},
		{"huge body", "poison.14", bytes.Repeat([]byte("x"), 900<<10)},
	}
	nc, _ := testkit.MustJetStream(t, h.nats.URL())
	terminated, err := nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + streams.Payments + ".api-events")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := apiOutbox(t, h)
			m := nats.NewMsg(event.SubjectDetected)
			m.Data = tc.body
			if tc.msgID != "" {
				m.Header.Set(event.HeaderMsgID, tc.msgID)
			}
			// A 900 KiB publish on a loaded machine can outlast the client's default 5 s.
			pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ack, err := h.js.PublishMsg(pctx, m)
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			if reason := testkit.AwaitTerminated(t, terminated, ack.Sequence); !strings.HasPrefix(reason, "invalid_event: ") {
				t.Errorf("terminated with reason %q, want invalid_event: <why>", reason)
			}
			info, err := testkit.ConsumerInfo(ctx, h.js, streams.Payments, "api-events")
			if err != nil {
				t.Fatal(err)
			}
			delivered := info.Delivered.Consumer
			testkit.Never(t, 100*time.Millisecond, "the poison message was delivered again or is still pending", func() bool {
				info, err := testkit.ConsumerInfo(ctx, h.js, streams.Payments, "api-events")
				return err != nil || info.Delivered.Consumer != delivered || info.NumAckPending != 0
			})
			if after := apiOutbox(t, h); after != before {
				t.Errorf("outbox changed:\nbefore %s\nafter  %s", before, after)
			}
			testkit.AssertReady(t, h.cfg.OpsAddr)
		})
	}

	// The next good payments.detected joins the event log.
	h.publishDetected(merchantID, p.ID, "detected.1337.0xab.-1")
	testkit.Eventually(t, 10*time.Second, "the good detected event in the event log", func() bool {
		return h.count(`SELECT count(*) FROM outbox WHERE msg_id = 'detected.1337.0xab.-1' AND published_at IS NOT NULL
			AND payment_id = $1 AND merchant_id = $2`, p.ID, merchantID) == 1
	})
	testkit.AssertReady(t, h.cfg.OpsAddr)
}

// apiOutbox is the outbox (the event log) as text.
func apiOutbox(t *testing.T, h *harness) string {
	t.Helper()
	var s string
	if err := h.db.Get(&s, `SELECT coalesce(string_agg(o.msg_id || ' ' || o.subject, '|' ORDER BY o.id), '') FROM outbox o`); err != nil {
		t.Fatal(err)
	}
	return s
}

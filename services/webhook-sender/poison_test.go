package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctrip-pay/pipeline/services/webhook-sender/internal/webhook"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// TestPoisonOnEveryConsumedSubject: every subject the sender consumes gets each kind of poison.
//   - DLQ (dlq-processor): forged advisories that cannot be decoded are terminated with a reason
//     and leave no dead letter;
//   - WEBHOOKS (webhook-sender): a delivery that cannot be decoded, or names no endpoint, is
//     terminated at once and dead-lettered with its reason (row and dlq.webhooks.<id> copy),
//     never POSTed;
//   - PAYMENTS (webhook-fanout), on every payments.* subject it fans out: an event that cannot be
//     decoded is terminated with a reason and fans out nothing.
//
// Each poison message is settled once (no ack pending, not delivered again), changes nothing
// else, and the sender stays ready; afterwards a good event on each subject goes out.
// Headers are not poison for the sender: it posts the body and falls back on the body's ids.
func TestPoisonOnEveryConsumedSubject(t *testing.T) {
	h := newHarness(t)
	h.cfg.OpsAddr = testkit.FreeAddr(t)
	rc := newReceiver(t, nil)
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	h.start()

	huge := bytes.Repeat([]byte("x"), 900<<10)
	envelope := func(typ, data string) []byte {
		return []byte(fmt.Sprintf(`{"id":"evt_poison","type":%q,"timestamp":"2026-11-28T20:14:26Z","data":%s}`, typ, data))
	}
	bodies := []struct {
		name string
		body func(typ string) []byte
	}{
		{"not JSON", func(string) []byte { return []byte("{not json") }},
		{"an array", func(string) []byte { return []byte(`[{"id":"evt_1"}]`) }},
		{"an empty object", func(string) []byte { return []byte(`{}`) }},
		{"no type", func(string) []byte { return envelope("", `{"payment_id":"pay_1","merchant_id":"m_1"}`) }},
		{"data is not an object", func(typ string) []byte { return envelope(typ, `"pay_1"`) }},
		{"data is null", func(typ string) []byte { return envelope(typ, `null`) }},
		{"merchant_id of the wrong type", func(typ string) []byte { return envelope(typ, `{"payment_id":"pay_1","merchant_id":1}`) }},
		{"timestamp of the wrong type", func(string) []byte {
			return []byte(`{"id":"evt_poison","type":"payment.confirmed","timestamp":1764360866,"data":{"merchant_id":"m_1"}}`)
		}},
		{"huge body", func(string) []byte { return huge }},
	}
	type poison struct {
		name, stream, durable, subject string
		body                           []byte
		deadLetter                     string // the reason of the dead letter it must leave, "" none
	}
	var cases []poison
	for _, adv := range []string{"MSG_TERMINATED", "MAX_DELIVERIES"} {
		subject := "$JS.EVENT.ADVISORY.CONSUMER." + adv + ".WEBHOOKS.webhook-sender"
		for _, b := range []struct{ name, body string }{
			{"not JSON", "{not json"}, {"an array", "[]"}, {"no stream_seq", `{"stream":"WEBHOOKS","reason":"x"}`},
			{"stream_seq of the wrong type", `{"stream":"WEBHOOKS","stream_seq":"1"}`},
		} {
			cases = append(cases, poison{name: "DLQ " + adv + ": " + b.name, stream: "DLQ", durable: "dlq-processor",
				subject: subject, body: []byte(b.body)})
		}
		cases = append(cases, poison{name: "DLQ " + adv + ": huge body", stream: "DLQ", durable: "dlq-processor", subject: subject, body: huge})
	}
	for _, b := range bodies {
		cases = append(cases, poison{name: "WEBHOOKS: " + b.name, stream: "WEBHOOKS", durable: "webhook-sender",
			subject: webhook.DeliverSubjectPrefix + epID, body: b.body("payment.confirmed"), deadLetter: webhook.ReasonPoison})
	}
	good, _ := newTestEnvelope("m_1")
	cases = append(cases, poison{name: "WEBHOOKS: unknown endpoint", stream: "WEBHOOKS", durable: "webhook-sender",
		subject: webhook.DeliverSubjectPrefix + "ep_nobody", body: mustJSON(t, good), deadLetter: webhook.ReasonEndpointUnknown})
	cases = append(cases, poison{name: "WEBHOOKS: event id with a NUL byte", stream: "WEBHOOKS", durable: "webhook-sender",
		subject: webhook.DeliverSubjectPrefix + epID, body: envelope("payment.confirmed", `{"payment_id":"pay_1","merchant_id":"m_1"}`),
		deadLetter: webhook.ReasonPoison})
	cases[len(cases)-1].body = bytes.Replace(cases[len(cases)-1].body, []byte(`"evt_poison"`), []byte(`"evt\u0000"`), 1)
	fanned := []string{event.SubjectCreated, event.SubjectDetected, event.SubjectConfirmed, event.SubjectExpired, event.SubjectReorged, event.SubjectSwept}
	for _, subject := range fanned {
		for _, b := range bodies {
			cases = append(cases, poison{name: subject + ": " + b.name, stream: "PAYMENTS", durable: "webhook-fanout",
				subject: subject, body: b.body(event.TypeForSubject(subject))})
		}
		cases = append(cases, poison{name: subject + ": merchant_id with a NUL byte", stream: "PAYMENTS", durable: "webhook-fanout",
			subject: subject, body: envelope(event.TypeForSubject(subject), `{"payment_id":"pay_1","merchant_id":"m\u0000"}`)})
		cases = append(cases, poison{name: subject + ": a type not its subject's", stream: "PAYMENTS", durable: "webhook-fanout",
			subject: subject, body: envelope("payment.bogus", `{"payment_id":"pay_1","merchant_id":"m_1"}`)})
	}

	nc, _ := testkit.MustJetStream(t, h.nats.URL())
	terminated := map[string]*nats.Subscription{}
	for _, c := range []string{"DLQ.dlq-processor", "WEBHOOKS.webhook-sender", "PAYMENTS.webhook-fanout"} {
		sub, err := nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + c)
		if err != nil {
			t.Fatal(err)
		}
		terminated[c] = sub
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			webhooksBefore := streamMsgs(t, h, "WEBHOOKS")
			attemptsBefore := h.count(`SELECT count(*) FROM webhook_attempts`)
			letters := h.count(`SELECT count(*) FROM webhook_dead_letters`)
			m := nats.NewMsg(tc.subject)
			m.Data = tc.body
			if tc.stream != "DLQ" {
				m.Header.Set(event.HeaderMsgID, fmt.Sprintf("poison.%d", i))
				m.Header.Set(event.HeaderEventType, "payment.confirmed")
			}
			// A 900 KiB publish on a loaded machine can outlast the client's default 5 s.
			pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ack, err := h.js.PublishMsg(pctx, m)
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			if ack.Stream != tc.stream {
				t.Fatalf("published to %s, want %s", ack.Stream, tc.stream)
			}
			reason := testkit.AwaitTerminated(t, terminated[tc.stream+"."+tc.durable], ack.Sequence)
			if reason == "" {
				t.Errorf("terminated without a reason")
			}
			info, err := testkit.ConsumerInfo(ctx, h.js, tc.stream, tc.durable)
			if err != nil {
				t.Fatal(err)
			}
			delivered := info.Delivered.Consumer
			testkit.Never(t, 100*time.Millisecond, "the poison message was delivered again or is still pending", func() bool {
				info, err := testkit.ConsumerInfo(ctx, h.js, tc.stream, tc.durable)
				return err != nil || info.Delivered.Consumer != delivered || info.NumAckPending != 0
			})
			if tc.deadLetter != "" {
				var row struct {
					Reason    string `db:"reason"`
					Published bool   `db:"published"`
				}
				testkit.Eventually(t, 10*time.Second, "the dead letter, copied to DLQ", func() bool {
					err := h.db.Get(&row, `SELECT reason, published_at IS NOT NULL AS published FROM webhook_dead_letters
						WHERE origin_stream = 'WEBHOOKS' AND origin_seq = $1`, ack.Sequence)
					return err == nil && row.Published
				})
				if row.Reason != tc.deadLetter || !strings.HasPrefix(reason, tc.deadLetter+": ") {
					t.Errorf("dead letter reason %q, term reason %q; want %s", row.Reason, reason, tc.deadLetter)
				}
				letters++
			}
			if n := h.count(`SELECT count(*) FROM webhook_dead_letters`); n != letters {
				t.Errorf("%d dead letters, want %d", n, letters)
			}
			if n := h.count(`SELECT count(*) FROM webhook_attempts`); n != attemptsBefore {
				t.Errorf("%d attempts recorded, want %d", n, attemptsBefore)
			}
			if n := streamMsgs(t, h, "WEBHOOKS"); tc.stream == "PAYMENTS" && n != webhooksBefore {
				t.Errorf("fanned out %d deliveries", n-webhooksBefore)
			}
			if n := len(rc.got()); n != 0 {
				t.Fatalf("poison was POSTed %d times", n)
			}
			testkit.AssertReady(t, h.cfg.OpsAddr)
		})
	}

	// The next good event on every fanned-out subject is delivered (fan-out and delivery).
	var want []string
	for _, subject := range fanned {
		want = append(want, h.publish(subject, "m_1").ID)
	}
	testkit.Eventually(t, 10*time.Second, "every good event delivered", func() bool { return len(rc.got()) == len(fanned) })
	for i, r := range rc.got() {
		if got := r.header.Get("webhook-id"); got != want[i] && !contains(want, got) {
			t.Errorf("delivered %s, not one of the good events", got)
		}
	}
	testkit.AssertReady(t, h.cfg.OpsAddr)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func streamMsgs(t *testing.T, h *harness, stream string) uint64 {
	t.Helper()
	s, err := h.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/streams"
)

// TestPoisonOnEveryConsumedSubject: each kind of poison on payments.confirmed, the sweeper's
// one subject, is terminated once with a reason (the server's MSG_TERMINATED advisory carries
// it), is not redelivered, signs and records nothing, and leaves the sweeper ready; the next good
// payments.confirmed is swept. The sweeper reads no header, so a message without headers is
// not poison for it and has no case here.
func TestPoisonOnEveryConsumedSubject(t *testing.T) {
	h := newHarness(t)
	h.cfg.OpsAddr = testkit.FreeAddr(t)
	h.start()
	nc, _ := testkit.MustJetStream(t, h.nats.URL())
	terminated, err := nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + streams.Payments + "." + consumerName)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	huge := bytes.Repeat([]byte("x"), 900<<10)
	confirmed := func(data string) []byte {
		return []byte(fmt.Sprintf(`{"id":"evt_poison","type":"payment.confirmed","timestamp":"2026-11-28T20:14:26Z","data":%s}`, data))
	}
	cases := []struct {
		name string
		body []byte
	}{
		{"not JSON", []byte("not an event")},
		{"an array", []byte(`[{"payment_id":"pay_1"}]`)},
		{"an empty object", []byte(`{}`)},
		{"data is not an object", confirmed(`"pay_1"`)},
		{"data without payment_id", confirmed(`{"status":"confirmed"}`)},
		{"payment_id of the wrong type", confirmed(`{"payment_id":["pay_1"]}`)},
		{"payment_id with a NUL byte", confirmed(`{"payment_id":"pay\u0000x"}`)},
		{"unknown payment", confirmed(`{"payment_id":"pay_unknown","status":"confirmed"}`)},
		{"huge body", huge},
		{"huge event for an unknown payment", confirmed(fmt.Sprintf(`{"payment_id":"pay_unknown","metadata":{"pad":%q}}`, huge))},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := sweeperState(t, h)
			m := nats.NewMsg(event.SubjectConfirmed)
			m.Data = tc.body
			m.Header.Set(event.HeaderMsgID, fmt.Sprintf("poison.%d", i))
			m.Header.Set(event.HeaderEventType, "payment.confirmed")
			// A 900 KiB publish on a loaded machine can outlast the client's default 5 s.
			pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ack, err := h.js.PublishMsg(pctx, m)
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			if reason := testkit.AwaitTerminated(t, terminated, ack.Sequence); reason == "" {
				t.Errorf("terminated without a reason")
			}
			info, err := testkit.ConsumerInfo(context.Background(), h.js, streams.Payments, consumerName)
			if err != nil {
				t.Fatal(err)
			}
			delivered := info.Delivered.Consumer
			testkit.Never(t, 100*time.Millisecond, "the poison message was delivered again or is still pending", func() bool {
				info, err := testkit.ConsumerInfo(context.Background(), h.js, streams.Payments, consumerName)
				return err != nil || info.Delivered.Consumer != delivered || info.NumAckPending != 0
			})
			if after := sweeperState(t, h); after != before {
				t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
			}
			testkit.AssertReady(t, h.cfg.OpsAddr)
		})
	}

	// The next good payments.confirmed is swept.
	p := h.newPayment(nil, ether)
	h.chain.WaitMined(h.chain.SendETH(h.chain.Accounts[1], p.Deposit, ether))
	h.publishConfirmed(p, p.ID+".confirmed")
	testkit.Eventually(t, 20*time.Second, "payment swept", func() bool { return h.status(p.ID) == event.StatusSwept })
	h.settled()
	testkit.AssertReady(t, h.cfg.OpsAddr)
}

// sweeperState is every row the sweeper may change, as text.
func sweeperState(t *testing.T, h *harness) string {
	t.Helper()
	return testkit.TableRows(t, h.db, "payments", "payment_status_changes", "sweeps", "tx_nonces", "outbox")
}

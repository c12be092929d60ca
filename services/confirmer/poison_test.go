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
)

// TestPoisonOnEveryConsumedSubject: every subject the confirmer consumes (payments.detected,
// chain.<id>.head, chain.<id>.reorg) gets each kind of poison. Each one is terminated once with
// a reason (the server's MSG_TERMINATED advisory carries it), is not redelivered, changes no
// row, and leaves the confirmer ready; afterwards good messages on the same subjects are handled.
// The confirmer reads no header (Nats-Msg-Id is only the stream's dedup key), so a message
// without headers is not poison for it and has no case here.
func TestPoisonOnEveryConsumedSubject(t *testing.T) {
	h := newHarness(t, 2)
	h.cfg.OpsAddr = testkit.FreeAddr(t)
	h.start()
	p := h.payment(eth(10), time.Hour, nil)
	tr := h.payETH(p, eth(10))
	h.record(tr)

	huge := bytes.Repeat([]byte("x"), 900<<10)
	detected := func(data string) []byte {
		return []byte(fmt.Sprintf(`{"id":"evt_poison","type":"payment.detected","timestamp":"2026-11-28T20:14:26Z","data":%s}`, data))
	}
	tx := fmt.Sprintf(`{"tx_hash":%q,"log_index":-1,"block_number":%d,"block_hash":%q`, tr.TxHash, tr.BlockNumber, tr.BlockHash)
	heads, reorgs := event.HeadSubject(chainID), event.ReorgSubject(chainID)
	cases := []struct {
		name, subject string
		body          []byte
	}{
		{"detected: not JSON", event.SubjectDetected, []byte("{not json")},
		{"detected: an array", event.SubjectDetected, []byte(`[1,2,3]`)},
		{"detected: an empty object", event.SubjectDetected, []byte(`{}`)},
		{"detected: data is not an object", event.SubjectDetected, detected(`[]`)},
		{"detected: data without payment_id", event.SubjectDetected, detected(`{"status":"detected","chain_id":1337}`)},
		{"detected: payment_id of the wrong type", event.SubjectDetected, detected(`{"payment_id":42}`)},
		{"detected: payment_id with a NUL byte", event.SubjectDetected, detected(`{"payment_id":"pay\u0000x"}`)},
		{"detected: tx_hash with a NUL byte", event.SubjectDetected,
			detected(fmt.Sprintf(`{"payment_id":%q,"chain_id":1337,"transactions":[{"tx_hash":"0x\u0000","block_hash":"0x01","value_base_units":"1"}]}`, p.ID))},
		{"detected: unknown payment", event.SubjectDetected, detected(`{"payment_id":"pay_unknown","chain_id":1337}`)},
		{"detected: transaction without tx_hash", event.SubjectDetected,
			detected(fmt.Sprintf(`{"payment_id":%q,"chain_id":1337,"transactions":[{"value_base_units":"1"}]}`, p.ID))},
		{"detected: value that is not a number", event.SubjectDetected,
			detected(fmt.Sprintf(`{"payment_id":%q,"chain_id":1337,"transactions":[%s,"value_base_units":"1e18"}]}`, p.ID, tx))},
		{"detected: negative value", event.SubjectDetected,
			detected(fmt.Sprintf(`{"payment_id":%q,"chain_id":1337,"transactions":[%s,"value_base_units":"-1"}]}`, p.ID, tx))},
		{"detected: huge body", event.SubjectDetected, huge},
		{"detected: huge event for an unknown payment", event.SubjectDetected,
			detected(fmt.Sprintf(`{"payment_id":"pay_unknown","metadata":{"pad":%q}}`, huge))},

		{"head: not JSON", heads, []byte("{not json")},
		{"head: an array", heads, []byte(`[1337]`)},
		{"head: an empty object (no chain id)", heads, []byte(`{}`)},
		{"head: wrong types", heads, []byte(`{"chain_id":"1337","number":"ten"}`)},
		{"head: body about another chain than its subject", heads, []byte(`{"chain_id":1,"number":10,"hash":"0x01"}`)},
		{"head: unknown chain", event.HeadSubject(999), []byte(`{"chain_id":999,"number":10,"hash":"0x01"}`)},
		{"head: subject without a chain id", "chain.devnet.head", []byte(`{"chain_id":1337,"number":10,"hash":"0x01"}`)},
		{"head: huge body", heads, huge},

		{"reorg: not JSON", reorgs, []byte("{not json")},
		{"reorg: an array", reorgs, []byte(`[]`)},
		{"reorg: an empty object (no chain id)", reorgs, []byte(`{}`)},
		{"reorg: wrong types", reorgs, []byte(`{"chain_id":1337,"common_ancestor_number":-1}`)},
		{"reorg: unknown chain", event.ReorgSubject(999), []byte(`{"chain_id":999,"common_ancestor_number":1}`)},
		{"reorg: huge body", reorgs, huge},
	}
	terminated := map[string]*nats.Subscription{}
	for _, stream := range []string{"PAYMENTS", "CHAIN"} {
		sub, err := h.nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + stream + ".confirmer")
		if err != nil {
			t.Fatal(err)
		}
		terminated[stream] = sub
	}
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := "PAYMENTS"
			if strings.HasPrefix(tc.subject, "chain.") {
				stream = "CHAIN"
			}
			before := confirmerState(t, h)
			m := nats.NewMsg(tc.subject)
			m.Data = tc.body
			m.Header.Set(event.HeaderMsgID, fmt.Sprintf("poison.%d", i))
			m.Header.Set(event.HeaderEventType, "payment.detected")
			// A 900 KiB publish on a loaded machine can outlast the client's default 5 s.
			pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ack, err := h.js.PublishMsg(pctx, m)
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			reason := testkit.AwaitTerminated(t, terminated[stream], ack.Sequence)
			if reason == "" {
				t.Errorf("terminated without a reason")
			}
			info, err := testkit.ConsumerInfo(context.Background(), h.js, stream, "confirmer")
			if err != nil {
				t.Fatal(err)
			}
			delivered := info.Delivered.Consumer
			testkit.Never(t, 100*time.Millisecond, "the poison message was delivered again or is still pending", func() bool {
				info, err := testkit.ConsumerInfo(context.Background(), h.js, stream, "confirmer")
				return err != nil || info.Delivered.Consumer != delivered || info.NumAckPending != 0
			})
			if after := confirmerState(t, h); after != before {
				t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
			}
			testkit.AssertReady(t, h.cfg.OpsAddr)
		})
	}

	// The next good messages on the same subjects are handled.
	h.publishDetected(tr, "")
	h.waitStatus(p.ID, "detected")
	h.chain.Mine(1)
	h.head(tr.BlockNumber + 1)
	h.waitStatus(p.ID, "confirmed")
	h.reorg(event.ChainReorg{CommonAncestorNumber: tr.BlockNumber + 1, CommonAncestorHash: h.headerHash(tr.BlockNumber + 1),
		NewHeadNumber: tr.BlockNumber + 1, NewHeadHash: h.headerHash(tr.BlockNumber + 1)}, "reorg.good")
	h.idle()
	if got := h.status(p.ID); got != "confirmed" {
		t.Fatalf("status after a reorg above the transfer = %s, want confirmed", got)
	}
	testkit.AssertReady(t, h.cfg.OpsAddr)
}

// confirmerState is every row the confirmer may change, as text.
func confirmerState(t *testing.T, h *harness) string {
	t.Helper()
	return testkit.TableRows(t, h.db, "payments", "payment_transfers", "payment_status_changes", "outbox")
}

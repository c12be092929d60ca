package main

import (
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/services/scanner/internal/scan"
	"github.com/ctrip-pay/pipeline/shared/event"
)

// loggedEvent is a row of the event log (the outbox table) the scanner writes.
type loggedEvent struct {
	Subject     string     `db:"subject"`
	MerchantID  *string    `db:"merchant_id"`
	Payload     []byte     `db:"payload"`
	PublishedAt *time.Time `db:"published_at"`
}

func (h *harness) loggedEvents(msgID string) []loggedEvent {
	h.t.Helper()
	var rows []loggedEvent
	if err := h.db.Select(&rows, `SELECT subject, merchant_id, payload, published_at FROM outbox WHERE msg_id = $1`, msgID); err != nil {
		h.t.Fatal(err)
	}
	return rows
}

// TestDetectedEventsAreLogged: every payments.detected event is kept in the event log (the
// outbox table, where the api reads a payment's events and replays them) as published, with
// its owner, and with the very body the stream carries; an event an earlier run logged but did
// not get acknowledged goes out with that run's body, so the log and the stream agree on its id.
func TestDetectedEventsAreLogged(t *testing.T) {
	h := newHarness(t)
	h.start()
	later := time.Now().Add(time.Hour)

	p := h.newPayment("ETH", ether(1), later)
	h.mine(h.chain.SendETH(h.payer, p.Address, big.NewInt(300)))
	h.waitDetected(p, 1)
	got := h.detectedFor(p.ID)[0]
	rows := h.loggedEvents(got.msgID)
	if len(rows) != 1 {
		t.Fatalf("%d rows logged for %s, want 1", len(rows), got.msgID)
	}
	var env event.Envelope
	if err := json.Unmarshal(rows[0].Payload, &env); err != nil {
		t.Fatal(err)
	}
	row := rows[0]
	if row.Subject != event.SubjectDetected || row.PublishedAt == nil || row.MerchantID == nil || *row.MerchantID != testMerchant ||
		env.ID != got.env.ID || env.Type != "payment.detected" {
		t.Fatalf("logged %s (published %v, merchant %v) event %s %s; the stream has %s", row.Subject, row.PublishedAt, row.MerchantID, env.ID, env.Type, got.env.ID)
	}
	var owner string
	if err := h.db.Get(&owner, `SELECT payment_id FROM outbox WHERE msg_id = $1`, got.msgID); err != nil || owner != p.ID {
		t.Fatalf("payment_id %q (%v), want %s", owner, err, p.ID)
	}

	// An earlier run logged the next transfer's event and stopped before publishing it.
	h.stop()
	q := h.newPayment("ETH", ether(1), later)
	rq := h.mine(h.chain.SendETH(h.payer, q.Address, big.NewInt(500)))[0]
	msgID := scan.DetectedMsgID(testChainID, rq.TxHash.Hex(), scan.NativeLogIndex, rq.BlockHash.Hex())
	data := got.data // a whole payment's data, so the body keeps the event contract
	data.PaymentID, data.Address = q.ID, lower(q.Address.Hex())
	earlier, err := event.New("payment.detected", data)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(earlier)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.Exec(`INSERT INTO outbox (subject, msg_id, headers, payload, merchant_id, payment_id, published_at)
		VALUES ($1, $2, '{}', $3, $4, $5, now())`, event.SubjectDetected, msgID, body, testMerchant, q.ID); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.waitDetected(q, 1)
	if d := h.detectedFor(q.ID); len(d) != 1 || d[0].env.ID != earlier.ID || d[0].msgID != msgID {
		t.Fatalf("published %+v, want the logged event %s under %s", d, earlier.ID, msgID)
	}
	if rows := h.loggedEvents(msgID); len(rows) != 1 || string(rows[0].Payload) != string(body) {
		t.Fatalf("%d rows for %s after the rerun, want the one logged before", len(rows), msgID)
	}
}

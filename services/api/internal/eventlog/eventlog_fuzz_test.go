package eventlog

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// FuzzDecode: a PAYMENTS message is either refused (HandleBatch terminates it) or an Event
// whose every field is set, whose type is its subject's, whose body is the message unchanged,
// and whose text columns from the message (msg_id, merchant_id, payment_id) hold what
// Postgres' text accepts: valid UTF-8 without NUL, at most 512 bytes.
func FuzzDecode(f *testing.F) {
	good := `{"id":"evt_1","type":"payment.detected","timestamp":"2026-11-28T20:14:26Z","data":{"payment_id":"pay_1","merchant_id":"m_1"}}`
	for _, tc := range []struct{ subject, msgID, body string }{
		{event.SubjectDetected, "pay_1.detected.0xab.3", good},
		{event.SubjectConfirmed, "pay_1.confirmed", good},
		{event.SubjectDetected, "", good},
		{event.SubjectDetected, "m", `{"id":"x_1","type":"payment.detected","data":{"payment_id":"p","merchant_id":"m"}}`},
		{event.SubjectDetected, "m", `{"id":"evt_1","type":"payment.detected","data":{"payment_id":"p"}}`},
		{event.SubjectDetected, "m", `{"id":"evt_1","type":"payment.detected","data":{"payment_id":"p\u0000","merchant_id":"m"}}`},
		{event.SubjectDetected, "m\x00", good},
		{event.SubjectDetected, "\xff", good},
		{event.SubjectDetected, strings.Repeat("m", 513), good},
		{"payments", "m", `{"id":"evt_1","type":"payments","data":{"payment_id":"p","merchant_id":"m"}}`},
		{"other.thing", "m", `{"id":"evt_1","type":"other.thing","data":{"payment_id":"p","merchant_id":"m"}}`},
		{event.SubjectDetected, "m", `null`},
		{event.SubjectDetected, "m", `{"id":"evt_1","type":"payment.detected","data":[]}`},
	} {
		f.Add(tc.subject, tc.msgID, []byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, subject, msgID string, body []byte) {
		e, err := decode(subject, msgID, body)
		if err != nil {
			if e.Subject != "" || e.Body != nil {
				t.Fatalf("event %+v with error %v", e, err)
			}
			return
		}
		if e.Subject != subject || e.MsgID != msgID || string(e.Body) != string(body) || e.EventType != event.TypeForSubject(subject) {
			t.Fatalf("event %+v from %q %q", e, subject, msgID)
		}
		// The subject (and so the type) is the consumer's filter, payments.detected: NATS delivers
		// no other. What the publisher writes must be checked here.
		for name, s := range map[string]string{"msg_id": e.MsgID, "merchant_id": e.MerchantID, "payment_id": e.PaymentID} {
			if s == "" || !utf8.ValidString(s) || strings.ContainsRune(s, 0) || len(s) > 512 {
				t.Fatalf("%s %q kept", name, s)
			}
		}
		var env struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(body, &env); err != nil || !strings.HasPrefix(env.ID, "evt_") {
			t.Fatalf("body %q kept: %v", body, err)
		}
	})
}

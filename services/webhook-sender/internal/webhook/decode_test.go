package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ctrip-pay/pipeline/shared/event"
)

func TestDecodeEventBody(t *testing.T) {
	const ts = `"timestamp":"2026-11-29T01:02:03.004Z"`
	good := `{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":{"payment_id":"pay_1","merchant_id":"m_1","amount":"1"}}`
	env, err := decodeEventBody([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if env.ID != "evt_1" || env.Type != "payment.confirmed" || env.Data.PaymentID != "pay_1" || env.Data.MerchantID != "m_1" ||
		env.Timestamp.UnixMilli() != 1795914123004 {
		t.Fatalf("decoded %+v (data %+v)", env, env.Data)
	}
	for _, tt := range []struct{ name, body, want string }{
		{"not JSON", `{"id":`, "undecodable"},
		{"missing id", `{"type":"payment.confirmed",` + ts + `,"data":{}}`, "missing id"},
		{"missing type", `{"id":"evt_1",` + ts + `,"data":{}}`, "missing type"},
		{"missing timestamp", `{"id":"evt_1","type":"payment.confirmed","data":{}}`, "missing timestamp"},
		{"bad timestamp", `{"id":"evt_1","type":"payment.confirmed","timestamp":"yesterday","data":{}}`, "undecodable"},
		{"no data", `{"id":"evt_1","type":"payment.confirmed",` + ts + `}`, "data must be a JSON object"},
		{"null data", `{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":null}`, "data must be a JSON object"},
		{"array data", `{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":[1]}`, "undecodable"},
		{"string data", `{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":"x"}`, "undecodable"},
		{"trailing garbage", good + `x`, "undecodable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeEventBody([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// BenchmarkDecodeEventBody: the sender's one decode of a payment event (both stages), next to
// what the fan-out did before (the envelope, then its data a second time).
func BenchmarkDecodeEventBody(b *testing.B) {
	logIndex := int64(3)
	token := "0x1111111111111111111111111111111111111111"
	env, err := event.New("payment.confirmed", event.Payment{PaymentID: "pay_01JDZK7M4N0000000000000000", MerchantID: "m_bench",
		Status: "confirmed", ChainID: 1, Chain: "ethereum", Address: "0x2222222222222222222222222222222222222222",
		Token: "USDC", TokenContract: &token, Amount: "12.5", AmountBaseUnits: "12500000", AmountReceivedBaseUnits: "12500000",
		Confirmations: 12, Transactions: []event.Transaction{{TxHash: "0x" + strings.Repeat("3", 64), LogIndex: &logIndex,
			BlockNumber: 123456, ValueBaseUnits: "12500000", Status: "confirmed"}}})
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(env)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("one pass", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEventBody(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("envelope then data", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var env event.Envelope
			if err := json.Unmarshal(body, &env); err != nil {
				b.Fatal(err)
			}
			var data struct {
				MerchantID string `json:"merchant_id"`
			}
			if err := env.Validate(); err != nil {
				b.Fatal(err)
			}
			if err := json.Unmarshal(env.Data, &data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

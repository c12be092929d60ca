package event

import (
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"
)

func contractSample(t *testing.T, typ string) map[string]any {
	t.Helper()
	contract := "0x" + strings.Repeat("ab", 20)
	li := int64(3)
	env, err := New(typ, NewPayment(PaymentRow{
		ID: "pay_1", MerchantID: "mer_1", Status: StatusConfirmed, ChainID: 1, Chain: "ethereum",
		Address: "0x" + strings.Repeat("12", 20), Token: "USDC", TokenContract: &contract, Decimals: 6,
		Amount: big.NewInt(12_500_000), Received: big.NewInt(12_500_000), Confirmations: 12,
		Transactions: []Transaction{{TxHash: "0x" + strings.Repeat("cd", 32), LogIndex: &li, BlockNumber: 123, ValueBaseUnits: "12500000"}},
		ExpiresAt:    time.Now(),
	}))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(env)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// What NewPayment builds keeps the contract for every event type, and every way of breaking a
// field is named.
func TestContractViolations(t *testing.T) {
	for _, typ := range Types {
		body, _ := json.Marshal(contractSample(t, typ))
		if v := ContractViolations(body); v != nil {
			t.Errorf("%s built by NewPayment: %v", typ, v)
		}
	}
	data := func(m map[string]any) map[string]any { return m["data"].(map[string]any) }
	cases := []struct {
		name   string
		break_ func(m map[string]any)
		want   string
	}{
		{"no token_id", func(m map[string]any) { delete(data(m), "token_id") }, "data.token_id: missing"},
		{"empty chain", func(m map[string]any) { data(m)["chain"] = "" }, "data.chain: empty"},
		{"unknown type", func(m map[string]any) { m["type"] = "payment.paid" }, "type: "},
		{"id without prefix", func(m map[string]any) { m["id"] = "1" }, "id: "},
		{"bad timestamp", func(m map[string]any) { m["timestamp"] = "yesterday" }, "timestamp: "},
		{"float amount", func(m map[string]any) { data(m)["amount_base_units"] = 1.25e7 }, "data.amount_base_units: "},
		{"negative received", func(m map[string]any) { data(m)["amount_received_base_units"] = "-1" }, "data.amount_received_base_units: "},
		{"amount with a trailing zero", func(m map[string]any) { data(m)["amount"] = "12.50" }, "data.amount: "},
		{"unknown status", func(m map[string]any) { data(m)["status"] = "paid" }, "data.status: "},
		{"upper-case address", func(m map[string]any) { data(m)["address"] = "0x" + strings.Repeat("AB", 20) }, "data.address: "},
		{"token_contract absent", func(m map[string]any) { delete(data(m), "token_contract") }, "data.token_contract: missing"},
		{"chain_id as a string", func(m map[string]any) { data(m)["chain_id"] = "1" }, "data.chain_id: "},
		{"transactions null", func(m map[string]any) { data(m)["transactions"] = nil }, "data.transactions: "},
		{"transaction without log_index", func(m map[string]any) {
			delete(data(m)["transactions"].([]any)[0].(map[string]any), "log_index")
		}, "data.transactions[0].log_index: missing"},
		{"no data", func(m map[string]any) { delete(m, "data") }, "data: missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := contractSample(t, "payment.confirmed")
			tc.break_(m)
			body, _ := json.Marshal(m)
			v := ContractViolations(body)
			if len(v) == 0 || !strings.Contains(strings.Join(v, "\n"), tc.want) {
				t.Fatalf("violations %v, want one starting %q", v, tc.want)
			}
		})
	}
}

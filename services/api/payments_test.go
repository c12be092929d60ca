package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/services/api/internal/wallet/wallettest"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestCreatePaymentValidation(t *testing.T) {
	h := startHarness(t)
	_, key := h.merchant("m")
	body := func(fields string) string { return `{"chain_id":1337,"token":"ETH",` + fields + `}` }
	tests := []struct {
		name   string
		body   string
		hdr    []string
		status int
		code   string
		field  string
	}{
		{"empty body", ``, nil, 400, "invalid_json", ""},
		{"broken json", `{"chain_id":`, nil, 400, "invalid_json", ""},
		{"array body", `[]`, nil, 400, "invalid_json", ""},
		{"two objects", body(`"amount":"1"`) + `{}`, nil, 400, "invalid_json", ""},
		{"unknown field", body(`"amount":"1","amont":"1"`), nil, 400, "unknown_field", "amont"},
		{"missing chain_id", `{"token":"ETH","amount":"1"}`, nil, 400, "invalid_chain_id", "chain_id"},
		{"chain_id as string", `{"chain_id":"1337","token":"ETH","amount":"1"}`, nil, 400, "invalid_chain_id", "chain_id"},
		{"chain_id fractional", `{"chain_id":1337.5,"token":"ETH","amount":"1"}`, nil, 400, "invalid_chain_id", "chain_id"},
		{"chain_id overflow", `{"chain_id":1e30,"token":"ETH","amount":"1"}`, nil, 400, "invalid_chain_id", "chain_id"},
		{"unknown chain", `{"chain_id":1,"token":"ETH","amount":"1"}`, nil, 400, "unsupported_chain", "chain_id"},
		{"missing token", `{"chain_id":1337,"amount":"1"}`, nil, 400, "invalid_token", "token"},
		{"token not a string", `{"chain_id":1337,"token":1,"amount":"1"}`, nil, 400, "invalid_token", "token"},
		{"unknown token", `{"chain_id":1337,"token":"DAI","amount":"1"}`, nil, 400, "unsupported_token", "token"},
		{"token of another chain", `{"chain_id":1337,"token":"POL","amount":"1"}`, nil, 400, "unsupported_token", "token"},
		{"missing amount", body(`"metadata":{}`), nil, 400, "invalid_amount", "amount"},
		{"amount as number", body(`"amount":12.5`), nil, 400, "invalid_amount", "amount"},
		{"amount null", body(`"amount":null`), nil, 400, "invalid_amount", "amount"},
		{"negative amount", body(`"amount":"-1"`), nil, 400, "invalid_amount", "amount"},
		{"zero amount", body(`"amount":"0"`), nil, 400, "invalid_amount", "amount"},
		{"zero with decimals", body(`"amount":"0.000"`), nil, 400, "invalid_amount", "amount"},
		{"non-numeric amount", body(`"amount":"ten"`), nil, 400, "invalid_amount", "amount"},
		{"exponent notation", body(`"amount":"1e18"`), nil, 400, "invalid_amount", "amount"},
		{"leading plus", body(`"amount":"+1"`), nil, 400, "invalid_amount", "amount"},
		{"spaces", body(`"amount":" 1"`), nil, 400, "invalid_amount", "amount"},
		{"thousands separator", body(`"amount":"1,000"`), nil, 400, "invalid_amount", "amount"},
		{"too many decimals for USDC", `{"chain_id":1337,"token":"USDC","amount":"1.1234567"}`, nil, 400, "invalid_amount", "amount"},
		{"too many decimals for ETH", body(`"amount":"0.0000000000000000001"`), nil, 400, "invalid_amount", "amount"},
		{"fraction of a zero-decimal token", `{"chain_id":1337,"token":"WHOLE","amount":"1.5"}`, nil, 400, "invalid_amount", "amount"},
		{"79 digits in base units", `{"chain_id":1337,"token":"WHOLE","amount":"1` + strings.Repeat("0", 78) + `"}`, nil, 400, "invalid_amount", "amount"},
		{"above uint256", body(`"amount":"1` + strings.Repeat("0", 60) + `"`), nil, 400, "invalid_amount", "amount"},
		{"absurd size", body(`"amount":"` + strings.Repeat("9", 20000) + `"`), nil, 400, "invalid_amount", "amount"},
		{"expiry too short", body(`"amount":"1","expires_in_seconds":59`), nil, 400, "invalid_expires_in_seconds", "expires_in_seconds"},
		{"expiry too long", body(`"amount":"1","expires_in_seconds":604801`), nil, 400, "invalid_expires_in_seconds", "expires_in_seconds"},
		{"expiry negative", body(`"amount":"1","expires_in_seconds":-60`), nil, 400, "invalid_expires_in_seconds", "expires_in_seconds"},
		{"expiry fractional", body(`"amount":"1","expires_in_seconds":60.5`), nil, 400, "invalid_expires_in_seconds", "expires_in_seconds"},
		{"expiry as string", body(`"amount":"1","expires_in_seconds":"60"`), nil, 400, "invalid_expires_in_seconds", "expires_in_seconds"},
		{"metadata array", body(`"amount":"1","metadata":[1]`), nil, 400, "invalid_metadata", "metadata"},
		{"metadata string", body(`"amount":"1","metadata":"order-1"`), nil, 400, "invalid_metadata", "metadata"},
		{"metadata number", body(`"amount":"1","metadata":7`), nil, 400, "invalid_metadata", "metadata"},
		{"metadata over 4 KiB", body(`"amount":"1","metadata":{"note":"` + strings.Repeat("x", 4100) + `"}`), nil, 400, "invalid_metadata", "metadata"},
		{"body over 64 KiB", body(`"amount":"1","metadata":{"note":"` + strings.Repeat("x", 70000) + `"}`), nil, 413, "body_too_large", ""},
		{"idempotency key too long", body(`"amount":"1"`), []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "invalid_idempotency_key", "Idempotency-Key"},
		{"idempotency key with space", body(`"amount":"1"`), []string{"Idempotency-Key", "a b"}, 400, "invalid_idempotency_key", "Idempotency-Key"},
		{"two idempotency keys", body(`"amount":"1"`), []string{"Idempotency-Key", "a", "Idempotency-Key", "b"}, 400, "invalid_idempotency_key", "Idempotency-Key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call("POST", "/v1/payments", key, tc.body, tc.hdr...)
			e := r.apiError(t)
			if r.status != tc.status || e.Error.Code != tc.code || e.Error.Field != tc.field {
				t.Fatalf("got %d %s\nwant %d code %s field %q", r.status, truncate(r.body), tc.status, tc.code, tc.field)
			}
			if e.Error.Message == "" {
				t.Error("error without a message")
			}
		})
	}
	if n := h.count(`SELECT count(*) FROM payments`) + h.count(`SELECT count(*) FROM outbox`); n != 0 {
		t.Fatalf("invalid requests wrote %d rows", n)
	}
	// The bounds themselves are accepted.
	for _, fields := range []string{
		`"amount":"1","expires_in_seconds":60`, `"amount":"1","expires_in_seconds":604800`,
		`"amount":"1","metadata":null`, `"amount":"1","metadata":{"note":"` + strings.Repeat("x", 4000) + `"}`,
	} {
		if r := h.call("POST", "/v1/payments", key, body(fields)); r.status != http.StatusCreated {
			t.Errorf("%s: %d %s", fields, r.status, truncate(r.body))
		}
	}
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// wantOneCreatedEach waits for payments.created of n payments and fails for a payment with more
// than one, or (ids set) one that ids does not list.
func (h *harness) wantOneCreatedEach(n int, ids map[string]bool) {
	h.t.Helper()
	testkit.Eventually(h.t, 10*time.Second, fmt.Sprintf("payments.created of %d payments", n), func() bool { return len(h.createdEvents()) == n })
	for id, evs := range h.createdEvents() {
		if len(evs) != 1 || (ids != nil && !ids[id]) {
			h.t.Errorf("payment %s: %d payments.created events", id, len(evs))
		}
	}
}

// createdEvent finds the payments.created event of a payment on PAYMENTS.
func (h *harness) createdEvents() map[string][]event.Envelope {
	h.t.Helper()
	out := map[string][]event.Envelope{}
	for _, m := range h.streamMsgs("PAYMENTS", event.SubjectCreated) {
		var env event.Envelope
		if err := json.Unmarshal(m.Data, &env); err != nil {
			h.t.Fatal(err)
		}
		var d event.Payment
		if err := json.Unmarshal(env.Data, &d); err != nil {
			h.t.Fatal(err)
		}
		if got, want := m.Header.Get(event.HeaderMsgID), d.PaymentID+".created"; got != want {
			h.t.Errorf("Nats-Msg-Id %q, want %q", got, want)
		}
		if got := m.Header.Get(event.HeaderEventType); got != "payment.created" {
			h.t.Errorf("Ctrip-Event-Type %q", got)
		}
		if v := event.ContractViolations(m.Data); v != nil {
			h.t.Errorf("payments.created of %s breaks the event contract: %v", d.PaymentID, v)
		}
		out[d.PaymentID] = append(out[d.PaymentID], env)
	}
	return out
}

func TestPaymentAmountsStoredExactly(t *testing.T) {
	h := startHarness(t)
	merchantID, key := h.merchant("m")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name, token, amount, wantBase, wantAmount string
		contract                                  *string
		decimals                                  int
	}{
		{"6-decimal token", "usdc", "12.345678", "12345678", "12.345678", ptr(strings.ToLower(usdcContract)), 6},
		{"ETH above int64 and float precision", "ETH", "1000000.123456789012345678", "1000000123456789012345678", "1000000.123456789012345678", nil, 18},
		{"trailing zeros normalised", "USDC", "12.500000", "12500000", "12.5", ptr(strings.ToLower(usdcContract)), 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := h.createPayment(key, map[string]any{"chain_id": 1337, "token": tc.token, "amount": tc.amount,
				"metadata": json.RawMessage(`{"order_id":"A-1","n":12345678901234567890}`)},
				"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
			if p.AmountBaseUnits != tc.wantBase || p.Amount != tc.wantAmount || p.Decimals != tc.decimals ||
				p.Token != strings.ToUpper(tc.token) || p.AmountReceivedBaseUnits != "0" || p.Status != "pending" || p.Chain != "devnet" {
				t.Fatalf("payment %+v", p)
			}
			if (p.TokenContract == nil) != (tc.contract == nil) || (p.TokenContract != nil && *p.TokenContract != *tc.contract) {
				t.Fatalf("token_contract %v, want %v", p.TokenContract, tc.contract)
			}
			if !strings.Contains(string(p.Metadata), `12345678901234567890`) {
				t.Errorf("metadata number lost precision: %s", p.Metadata)
			}
			if d := time.Until(p.ExpiresAt); d < 29*time.Minute || d > 31*time.Minute {
				t.Errorf("expires_at %v: not PAYMENT_EXPIRY from now", p.ExpiresAt)
			}
			var stored struct {
				Base     string `db:"amount_base_units"`
				Decimals int    `db:"decimals"`
			}
			if err := h.db.Get(&stored, `SELECT amount_base_units::text AS amount_base_units, decimals FROM payments
				WHERE id = $1 AND merchant_id = $2`, p.ID, merchantID); err != nil {
				t.Fatal(err)
			}
			if stored.Base != tc.wantBase || stored.Decimals != tc.decimals {
				t.Fatalf("stored %+v", stored)
			}
			var evs []event.Envelope
			testkit.Eventually(t, 5*time.Second, "payments.created on PAYMENTS", func() bool {
				evs = h.createdEvents()[p.ID]
				return len(evs) > 0
			})
			var d event.Payment
			if err := json.Unmarshal(evs[0].Data, &d); err != nil {
				t.Fatal(err)
			}
			if evs[0].Type != "payment.created" || d.MerchantID != merchantID || d.Status != "pending" || d.ChainID != 1337 ||
				d.Chain != "devnet" || d.Address != p.Address || d.Amount != tc.wantAmount || d.AmountBaseUnits != tc.wantBase ||
				d.AmountReceivedBaseUnits != "0" || d.Token != p.Token || d.Transactions == nil || d.ExpiresAt == nil ||
				!d.ExpiresAt.Equal(p.ExpiresAt) || !strings.Contains(string(d.Metadata), "A-1") {
				t.Fatalf("event data %+v", d)
			}
			if (d.TokenContract == nil) != (tc.contract == nil) {
				t.Fatalf("event token_contract %v", d.TokenContract)
			}
			msgs := h.streamMsgs("PAYMENTS", event.SubjectCreated)
			for _, m := range msgs {
				if strings.HasPrefix(m.Header.Get(event.HeaderMsgID), p.ID) && !strings.Contains(m.Header.Get("traceparent"), traceID) {
					t.Errorf("traceparent %q does not continue the request's trace", m.Header.Get("traceparent"))
				}
			}
			// GET answers the same amounts.
			var got payment
			r := h.call("GET", "/v1/payments/"+p.ID, key, nil)
			r.json(t, &got)
			if r.status != 200 || got.AmountBaseUnits != tc.wantBase || got.Address != p.Address {
				t.Fatalf("get: %d %s", r.status, r.body)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

var lowerAddress = regexp.MustCompile(`^0x[0-9a-f]{40}$`)

// Fifty concurrent creations get fifty distinct indexes and addresses, each the address of the
// private child key at its index — derived here from the mnemonic, not by the api's code.
func TestConcurrentPaymentsGetDistinctDerivedAddresses(t *testing.T) {
	h := startHarness(t)
	_, key := h.merchant("m")
	const n = 50
	var wg sync.WaitGroup
	results := make([]response, n)
	for i := range n {
		wg.Go(func() {
			results[i] = h.call("POST", "/v1/payments", key, fmt.Sprintf(`{"chain_id":1337,"token":"ETH","amount":"0.%d"}`, i+1))
		})
	}
	wg.Wait()
	ids := map[string]bool{}
	for _, r := range results {
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		var p payment
		r.json(t, &p)
		ids[p.ID] = true
	}
	var rows []struct {
		ID      string `db:"id"`
		Address string `db:"address"`
		Index   int64  `db:"address_index"`
	}
	if err := h.db.Select(&rows, `SELECT id, address, address_index FROM payments`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != n || len(ids) != n {
		t.Fatalf("%d rows, %d distinct ids; want %d", len(rows), len(ids), n)
	}
	acct := wallettest.Account(t)
	addrs, idxs := map[string]bool{}, map[int64]bool{}
	for _, r := range rows {
		if addrs[r.Address] || idxs[r.Index] {
			t.Fatalf("address %s or index %d handed out twice", r.Address, r.Index)
		}
		addrs[r.Address], idxs[r.Index] = true, true
		if !lowerAddress.MatchString(r.Address) {
			t.Errorf("address %q is not lower-case hex", r.Address)
		}
		if want := strings.ToLower(wallettest.PrivateAddress(t, acct, r.Index).Hex()); r.Address != want {
			t.Errorf("index %d: address %s, private key's address %s", r.Index, r.Address, want)
		}
	}
	// The sequence starts at 0, and index 0 of the test mnemonic is the address every wallet
	// shows for it.
	var a string
	if err := h.db.Get(&a, `SELECT address FROM payments WHERE address_index = 0`); err != nil {
		t.Fatal(err)
	}
	if a != strings.ToLower("0x9858EfFD232B4033E47d90003D41EC34EcaEda94") {
		t.Errorf("index 0 address %s", a)
	}
	h.wantOneCreatedEach(n, ids)
}

func TestIdempotencyKey(t *testing.T) {
	h := startHarness(t)
	_, key := h.merchant("a")
	_, otherKey := h.merchant("b")
	body := `{"chain_id":1337,"token":"USDC","amount":"12.5","metadata":{"order":"o-1","lines":[1,2]}}`
	first := h.createPayment(key, body, "Idempotency-Key", "order-o-1")

	// The same request — also written differently: equal amount, other key order and spacing.
	for _, same := range []string{body, `{"metadata":{"lines":[1, 2],"order":"o-1"},"amount":"12.500000","token":"usdc","chain_id":1337}`} {
		r := h.call("POST", "/v1/payments", key, same, "Idempotency-Key", "order-o-1")
		var p payment
		r.json(t, &p)
		if r.status != http.StatusCreated || p.ID != first.ID || p.Address != first.Address || r.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry: %d %s (replayed %q)", r.status, r.body, r.header.Get("Idempotent-Replayed"))
		}
	}
	// Another request under the same key is refused.
	for name, other := range map[string]string{
		"other amount":     `{"chain_id":1337,"token":"USDC","amount":"13","metadata":{"order":"o-1","lines":[1,2]}}`,
		"other metadata":   `{"chain_id":1337,"token":"USDC","amount":"12.5","metadata":{"order":"o-2"}}`,
		"other token":      `{"chain_id":1337,"token":"ETH","amount":"12.5","metadata":{"order":"o-1","lines":[1,2]}}`,
		"explicit expiry":  `{"chain_id":1337,"token":"USDC","amount":"12.5","expires_in_seconds":1800,"metadata":{"order":"o-1","lines":[1,2]}}`,
		"metadata dropped": `{"chain_id":1337,"token":"USDC","amount":"12.5"}`,
	} {
		r := h.call("POST", "/v1/payments", key, other, "Idempotency-Key", "order-o-1")
		if e := r.apiError(t); r.status != http.StatusConflict || e.Error.Code != "idempotency_conflict" || e.Error.Field != "Idempotency-Key" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// Keys are per merchant.
	if p := h.createPayment(otherKey, body, "Idempotency-Key", "order-o-1"); p.ID == first.ID || p.Address == first.Address {
		t.Fatal("another merchant's key returned the first merchant's payment")
	}
	// Concurrent retries of one new request: one payment, one event.
	var wg sync.WaitGroup
	got := make([]string, 10)
	for i := range got {
		wg.Go(func() {
			r := h.call("POST", "/v1/payments", key, `{"chain_id":1337,"token":"ETH","amount":"1"}`, "Idempotency-Key", "race")
			if r.status != http.StatusCreated {
				t.Errorf("concurrent: %d %s", r.status, r.body)
				return
			}
			var p payment
			r.json(t, &p)
			got[i] = p.ID
		})
	}
	wg.Wait()
	for _, id := range got {
		if id != got[0] {
			t.Fatalf("concurrent retries created different payments: %v", got)
		}
	}
	if n := h.count(`SELECT count(*) FROM payments`); n != 3 {
		t.Fatalf("%d payments, want 3", n)
	}
	if n := h.count(`SELECT count(*) FROM outbox WHERE subject = 'payments.created'`); n != 3 {
		t.Fatalf("%d outbox events, want 3", n)
	}
	h.wantOneCreatedEach(3, nil)
}

func TestListPayments(t *testing.T) {
	h := startHarness(t)
	_, key := h.merchant("a")
	_, otherKey := h.merchant("b")
	h.createPayment(otherKey, `{"chain_id":1337,"token":"ETH","amount":"1"}`)
	var created []string
	for i := range 7 {
		created = append(created, h.createPayment(key, fmt.Sprintf(`{"chain_id":1337,"token":"ETH","amount":"%d"}`, i+1)).ID)
	}
	if _, err := h.db.Exec(`UPDATE payments SET status = 'detected' WHERE id = ANY($1)`, "{"+created[1]+","+created[4]+"}"); err != nil {
		t.Fatal(err)
	}
	type page struct {
		Data       []payment `json:"data"`
		HasMore    bool      `json:"has_more"`
		NextCursor *string   `json:"next_cursor"`
	}
	var seen []string
	path := "/v1/payments?limit=3"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := h.call("GET", path, key, nil)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		var p page
		r.json(t, &p)
		for _, d := range p.Data {
			seen = append(seen, d.ID)
		}
		if !p.HasMore {
			if p.NextCursor != nil || len(p.Data) != 1 {
				t.Fatalf("last page: %d rows, cursor %v", len(p.Data), p.NextCursor)
			}
			break
		}
		if len(p.Data) != 3 || p.NextCursor == nil {
			t.Fatalf("page: %d rows, cursor %v", len(p.Data), p.NextCursor)
		}
		path = "/v1/payments?limit=3&cursor=" + *p.NextCursor
	}
	if len(seen) != 7 {
		t.Fatalf("listed %d payments: %v", len(seen), seen)
	}
	for i := range seen {
		if seen[i] != created[len(created)-1-i] {
			t.Fatalf("order: got %v, want newest first %v", seen, created)
		}
	}
	var detected page
	h.call("GET", "/v1/payments?status=detected", key, nil).json(t, &detected)
	if len(detected.Data) != 2 || detected.Data[0].ID != created[4] || detected.Data[1].ID != created[1] {
		t.Fatalf("status filter: %+v", detected.Data)
	}
	for _, tc := range []struct{ query, code, field string }{
		{"status=paid", "invalid_status", "status"},
		{"limit=0", "invalid_limit", "limit"},
		{"limit=101", "invalid_limit", "limit"},
		{"limit=ten", "invalid_limit", "limit"},
		{"cursor=not-a-cursor", "invalid_cursor", "cursor"},
		{"cursor=eyJ4IjoxfQ", "invalid_cursor", "cursor"},
		{"statsu=pending", "unknown_parameter", "statsu"},
	} {
		r := h.call("GET", "/v1/payments?"+tc.query, key, nil)
		if e := r.apiError(t); r.status != 400 || e.Error.Code != tc.code || e.Error.Field != tc.field {
			t.Errorf("%s: %d %s", tc.query, r.status, r.body)
		}
	}
}

func TestGetPaymentWithTransfers(t *testing.T) {
	h := startHarness(t)
	_, key := h.merchant("a")
	p := h.createPayment(key, `{"chain_id":1337,"token":"ETH","amount":"15"}`)
	// What the scanner and confirmer write: a native transfer (log_index -1), a second one, a
	// reorged one; received is the sum of the live ones.
	for _, tr := range []struct {
		hash   string
		block  int64
		value  string
		status string
	}{
		{"0xaa", 10, "10000000000000000000", "confirmed"},
		{"0xbb", 12, "5000000000000000001", "detected"},
		{"0xcc", 11, "7", "reorged"},
	} {
		if _, err := h.db.Exec(`INSERT INTO payment_transfers (chain_id, tx_hash, log_index, payment_id, value_base_units,
			block_number, block_hash, status) VALUES (1337, $1, -1, $2, $3::numeric, $4, '0xblock', $5)`,
			tr.hash, p.ID, tr.value, tr.block, tr.status); err != nil {
			t.Fatal(err)
		}
	}
	var before payment
	h.call("GET", "/v1/payments/"+p.ID, key, nil).json(t, &before)
	if before.AmountSweptBaseUnits != "0" {
		t.Fatalf("a new payment's amount_swept_base_units %q, want 0", before.AmountSweptBaseUnits)
	}
	// As the sweeper leaves it after sweeping an expired payment's 10 ETH, less its fee.
	if _, err := h.db.Exec(`UPDATE payments SET status = 'detected', received_base_units = 15000000000000000001,
		confirmed_base_units = 10000000000000000000, swept_base_units = 9999979000000000000 WHERE id = $1`, p.ID); err != nil {
		t.Fatal(err)
	}
	r := h.call("GET", "/v1/payments/"+p.ID, key, nil)
	var got payment
	r.json(t, &got)
	if r.status != 200 || got.Status != "detected" || got.AmountReceivedBaseUnits != "15000000000000000001" ||
		got.AmountConfirmedBaseUnits != "10000000000000000000" || got.AmountSweptBaseUnits != "9999979000000000000" || len(got.Transfers) != 3 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got.Transfers[0].TxHash != "0xaa" || got.Transfers[0].LogIndex != nil || got.Transfers[0].ValueBaseUnits != "10000000000000000000" ||
		got.Transfers[1].Status != "reorged" || got.Transfers[2].ValueBaseUnits != "5000000000000000001" {
		t.Fatalf("transfers %+v", got.Transfers)
	}
	var list struct{ Data []payment }
	h.call("GET", "/v1/payments", key, nil).json(t, &list)
	if len(list.Data) != 1 || len(list.Data[0].Transfers) != 3 {
		t.Fatalf("list without transfers: %+v", list.Data)
	}
	if r := h.call("GET", "/v1/payments/pay_missing", key, nil); r.status != 404 || r.apiError(t).Error.Code != "not_found" {
		t.Fatalf("missing payment: %d %s", r.status, r.body)
	}
}

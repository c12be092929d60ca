package main

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"testing"
)

func TestAdminAuthRequired(t *testing.T) {
	h := startHarness(t)
	_, merchantKey := h.merchant("existing")
	tests := []struct {
		name string
		auth string
	}{
		{"no header", ""},
		{"basic scheme", "Basic " + testAdminToken},
		{"wrong token", "Bearer wrong-token-wrong-token-0"},
		{"token prefix only", "Bearer " + testAdminToken[:10]},
		{"token with suffix", "Bearer " + testAdminToken + "x"},
		{"merchant key", "Bearer " + merchantKey},
		{"empty bearer", "Bearer "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.auth != "" {
				hdr = []string{"Authorization", tc.auth}
			}
			r := call(t, h.base, "POST", "/v1/merchants", "", map[string]string{"name": "x"}, hdr...)
			if r.status != http.StatusUnauthorized || r.apiError(t).Error.Code != "unauthorized" {
				t.Fatalf("got %d %s, want 401 unauthorized", r.status, r.body)
			}
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := h.count(`SELECT count(*) FROM merchants`); n != 1 {
		t.Fatalf("%d merchants, want only the one created with the admin token", n)
	}
}

func TestCreateMerchant(t *testing.T) {
	h := startHarness(t)
	r := h.call("POST", "/v1/merchants", testAdminToken, map[string]string{"name": "  Acme Shop  "})
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var m struct {
		ID           string `json:"id"`
		Name         string `json:"name"`
		APIKey       string `json:"api_key"`
		APIKeyPrefix string `json:"api_key_prefix"`
	}
	r.json(t, &m)
	if m.Name != "Acme Shop" || !strings.HasPrefix(m.ID, "mch_") {
		t.Errorf("merchant id %q name %q", m.ID, m.Name)
	}
	// sk_live_ + 52 base32 characters = 256 random bits.
	if !strings.HasPrefix(m.APIKey, "sk_live_") || len(m.APIKey) != len("sk_live_")+52 || !strings.HasPrefix(m.APIKey, m.APIKeyPrefix) {
		t.Errorf("api key shape: len %d prefix %q", len(m.APIKey), m.APIKeyPrefix)
	}
	var stored struct {
		Hash   []byte `db:"key_hash"`
		Prefix string `db:"prefix"`
	}
	if err := h.db.Get(&stored, `SELECT key_hash, prefix FROM api_keys WHERE merchant_id = $1`, m.ID); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(m.APIKey))
	if string(stored.Hash) != string(sum[:]) || stored.Prefix != m.APIKeyPrefix {
		t.Errorf("stored key: hash matches %v, prefix %q", string(stored.Hash) == string(sum[:]), stored.Prefix)
	}
	if n := h.count(`SELECT count(*) FROM api_keys WHERE position($1 in prefix) > 0 OR position($1 in encode(key_hash, 'escape')) > 0`, m.APIKey); n != 0 {
		t.Error("the api key is stored in clear")
	}
	// The key works, once more: keys are not single-use.
	for range 2 {
		if r := h.call("GET", "/v1/payments", m.APIKey, nil); r.status != http.StatusOK {
			t.Fatalf("new key: %d %s", r.status, r.body)
		}
	}
	// Two merchants never share a key.
	_, other := h.merchant("other")
	if other == m.APIKey {
		t.Fatal("two merchants got the same key")
	}
}

func TestCreateMerchantValidation(t *testing.T) {
	h := startHarness(t)
	tests := []struct {
		name, body, code, field string
		status                  int
	}{
		{"missing name", `{}`, "invalid_name", "name", 400},
		{"blank name", `{"name":"   "}`, "invalid_name", "name", 400},
		{"name not a string", `{"name":42}`, "invalid_name", "name", 400},
		{"name too long", `{"name":"` + strings.Repeat("n", 201) + `"}`, "invalid_name", "name", 400},
		{"control character", `{"name":"a\u0000b"}`, "invalid_name", "name", 400},
		{"unknown field", `{"name":"a","email":"x"}`, "unknown_field", "email", 400},
		{"empty body", ``, "invalid_json", "", 400},
		{"not json", `name=a`, "invalid_json", "", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call("POST", "/v1/merchants", testAdminToken, tc.body)
			e := r.apiError(t)
			if r.status != tc.status || e.Error.Code != tc.code || e.Error.Field != tc.field {
				t.Fatalf("got %d %s, want %d %s field %q", r.status, r.body, tc.status, tc.code, tc.field)
			}
		})
	}
	if n := h.count(`SELECT count(*) FROM merchants`); n != 0 {
		t.Fatalf("%d merchants created by invalid requests", n)
	}
}

func TestMerchantAuthRequired(t *testing.T) {
	h := startHarness(t)
	id, key := h.merchant("m")
	_, revoked := h.merchant("revoked")
	if _, err := h.db.Exec(`UPDATE api_keys SET revoked_at = now() WHERE merchant_id <> $1`, id); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, auth string }{
		{"no header", ""},
		{"admin token", "Bearer " + testAdminToken},
		{"unknown key", "Bearer sk_live_" + strings.Repeat("a", 52)},
		{"revoked key", "Bearer " + revoked},
		{"key without scheme", key},
		{"truncated key", "Bearer " + key[:len(key)-1]},
	}
	routes := []struct{ method, path string }{
		{"GET", "/v1/payments"}, {"POST", "/v1/payments"}, {"GET", "/v1/payments/pay_x"},
		{"GET", "/v1/payments/pay_x/deliveries"}, {"POST", "/v1/endpoints"}, {"GET", "/v1/endpoints/ep_x"},
		{"PATCH", "/v1/endpoints/ep_x"}, {"DELETE", "/v1/endpoints/ep_x"}, {"POST", "/v1/endpoints/ep_x/rotate-secret"},
		{"GET", "/v1/dead-letters"}, {"POST", "/v1/dead-letters/dl_x/replay"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, rt := range routes {
				var hdr []string
				if tc.auth != "" {
					hdr = []string{"Authorization", tc.auth}
				}
				r := call(t, h.base, rt.method, rt.path, "", `{}`, hdr...)
				if r.status != http.StatusUnauthorized {
					t.Errorf("%s %s: %d %s, want 401", rt.method, rt.path, r.status, r.body)
				}
			}
		})
	}
	if r := h.call("GET", "/v1/payments", key, nil); r.status != http.StatusOK {
		t.Fatalf("valid key: %d %s", r.status, r.body)
	}
}

// A lost or leaked key is replaced without downtime: issue a second key, switch, revoke the
// first.
func TestIssueAndRevokeAPIKeys(t *testing.T) {
	h := startHarness(t)
	m := createMerchant(t, h.base, "m")
	otherID, otherKey := h.merchant("other")

	if r := h.call("POST", "/v1/merchants/"+m.ID+"/api-keys", m.APIKey, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("a merchant issued itself a key: %d", r.status)
	}
	if r := h.call("POST", "/v1/merchants/mch_missing/api-keys", testAdminToken, nil); r.status != http.StatusNotFound {
		t.Fatalf("key for a missing merchant: %d %s", r.status, r.body)
	}
	r := h.call("POST", "/v1/merchants/"+m.ID+"/api-keys", testAdminToken, nil)
	var second struct {
		ID     string `json:"id"`
		APIKey string `json:"api_key"`
	}
	r.json(t, &second)
	if r.status != http.StatusCreated || second.APIKey == m.APIKey || !strings.HasPrefix(second.APIKey, "sk_live_") {
		t.Fatalf("issue: %d %s", r.status, r.body)
	}
	for _, k := range []string{m.APIKey, second.APIKey} {
		if r := h.call("GET", "/v1/payments", k, nil); r.status != 200 {
			t.Fatalf("key before revocation: %d", r.status)
		}
	}
	// A key is revoked only through its own merchant.
	if r := h.call("DELETE", "/v1/merchants/"+otherID+"/api-keys/"+m.APIKeyID, testAdminToken, nil); r.status != http.StatusNotFound {
		t.Fatalf("revoke through another merchant: %d", r.status)
	}
	if r := h.call("DELETE", "/v1/merchants/"+m.ID+"/api-keys/"+m.APIKeyID, testAdminToken, nil); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if r := h.call("DELETE", "/v1/merchants/"+m.ID+"/api-keys/"+m.APIKeyID, testAdminToken, nil); r.status != http.StatusNotFound {
		t.Fatalf("second revoke: %d", r.status)
	}
	if r := h.call("GET", "/v1/payments", m.APIKey, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d", r.status)
	}
	for _, k := range []string{second.APIKey, otherKey} {
		if r := h.call("GET", "/v1/payments", k, nil); r.status != 200 {
			t.Fatalf("unrevoked key: %d", r.status)
		}
	}
}

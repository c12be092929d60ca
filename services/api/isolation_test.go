package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// Another merchant's id answers exactly what a missing id answers: 404, and nothing changes.
func TestCrossMerchantIsolation(t *testing.T) {
	h := startHarness(t)
	aID, a := h.merchant("a")
	_, b := h.merchant("b")
	pay := h.createPayment(a, `{"chain_id":1337,"token":"ETH","amount":"1"}`)
	ep := h.endpointFor(a)
	code := 500
	h.attempt(pay.ID, ep, 1, &code, false)
	dl := h.deadLetter(ep, aID, "webhooks.deliver."+ep, map[string]string{event.HeaderMsgID: "evt_1." + ep},
		[]byte(`{"id":"evt_1"}`), time.Now())
	var secretBefore string
	if err := h.db.Get(&secretBefore, `SELECT secret FROM webhook_endpoints WHERE id = $1`, ep); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, method, path, body string
	}{
		{"get payment", "GET", "/v1/payments/" + pay.ID, ""},
		{"payment deliveries", "GET", "/v1/payments/" + pay.ID + "/deliveries", ""},
		{"payment events", "GET", "/v1/payments/" + pay.ID + "/events", ""},
		{"get endpoint", "GET", "/v1/endpoints/" + ep, ""},
		{"patch endpoint", "PATCH", "/v1/endpoints/" + ep, `{"url":"https://attacker.example/steal","enabled":false}`},
		{"delete endpoint", "DELETE", "/v1/endpoints/" + ep, ""},
		{"rotate endpoint secret", "POST", "/v1/endpoints/" + ep + "/rotate-secret", ""},
		{"test endpoint", "POST", "/v1/endpoints/" + ep + "/test", ""},
		{"replay endpoint", "POST", "/v1/endpoints/" + ep + "/replay", `{"since":"` + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + `"}`},
		{"get dead letter", "GET", "/v1/dead-letters/" + dl, ""},
		{"replay dead letter", "POST", "/v1/dead-letters/" + dl + "/replay", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := bodyOrNone(tc.body)
			r := h.call(tc.method, tc.path, b, body)
			if r.status != http.StatusNotFound || r.apiError(t).Error.Code != "not_found" {
				t.Fatalf("merchant b: %d %s", r.status, r.body)
			}
			// The same call for an id that does not exist at all looks identical.
			missing := strings.NewReplacer(pay.ID, "pay_missing", ep, "ep_missing", dl, "dl_missing").Replace(tc.path)
			if r2 := h.call(tc.method, missing, b, body); r2.status != r.status || string(r2.body) != string(r.body) {
				t.Fatalf("other merchant's id (%d %s) is distinguishable from a missing one (%d %s)", r.status, r.body, r2.status, r2.body)
			}
			// The owner still sees it.
			if tc.method == "GET" {
				if r := h.call("GET", tc.path, a, nil); r.status != 200 {
					t.Fatalf("owner: %d %s", r.status, r.body)
				}
			}
		})
	}
	var after struct {
		URL     string     `db:"url"`
		Secret  string     `db:"secret"`
		Enabled bool       `db:"enabled"`
		Deleted *time.Time `db:"deleted_at"`
	}
	if err := h.db.Get(&after, `SELECT url, secret, enabled, deleted_at FROM webhook_endpoints WHERE id = $1`, ep); err != nil {
		t.Fatal(err)
	}
	if after.URL != "https://example.com/hook" || after.Secret != secretBefore || !after.Enabled || after.Deleted != nil {
		t.Fatalf("merchant b changed merchant a's endpoint: %+v", after)
	}
	if n := h.count(`SELECT replay_count FROM webhook_dead_letters WHERE id = $1`, dl); n != 0 {
		t.Fatal("merchant b replayed merchant a's dead letter")
	}
	if msgs := h.streamMsgs("WEBHOOKS", ""); len(msgs) != 0 {
		t.Fatalf("%d messages on WEBHOOKS after refused replays", len(msgs))
	}
	// Lists hold only one's own objects.
	for _, path := range []string{"/v1/payments", "/v1/endpoints", "/v1/dead-letters"} {
		r := h.call("GET", path, b, nil)
		if r.status != 200 || !strings.Contains(string(r.body), `"data":[]`) {
			t.Errorf("b lists %s: %d %s", path, r.status, r.body)
		}
		if r := h.call("GET", path, a, nil); r.status != 200 || strings.Contains(string(r.body), `"data":[]`) {
			t.Errorf("a lists %s: %d %s", path, r.status, r.body)
		}
	}
}

package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/signature"
)

type endpoint struct {
	ID                      string     `json:"id"`
	URL                     string     `json:"url"`
	EventTypes              []string   `json:"event_types"`
	LegacySignature         bool       `json:"legacy_signature"`
	Enabled                 bool       `json:"enabled"`
	DisabledReason          *string    `json:"disabled_reason"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	Secret                  string     `json:"secret"`
}

func TestEndpointValidation(t *testing.T) {
	h := startHarness(t)
	_, key := h.merchant("m")
	tests := []struct {
		name, body, code, field string
	}{
		{"missing url", `{}`, "invalid_url", "url"},
		{"empty url", `{"url":""}`, "invalid_url", "url"},
		{"url not a string", `{"url":1}`, "invalid_url", "url"},
		{"relative url", `{"url":"/hooks"}`, "invalid_url", "url"},
		{"plain http", `{"url":"http://example.com/hook"}`, "invalid_url", "url"},
		{"ftp", `{"url":"ftp://example.com/hook"}`, "invalid_url", "url"},
		{"loopback", `{"url":"https://127.0.0.1/hook"}`, "invalid_url", "url"},
		{"localhost", `{"url":"https://localhost:8443/hook"}`, "invalid_url", "url"},
		{"private network", `{"url":"https://10.0.0.7/hook"}`, "invalid_url", "url"},
		{"metadata address", `{"url":"https://169.254.169.254/latest"}`, "invalid_url", "url"},
		{"user info", `{"url":"https://user:pass@example.com/hook"}`, "invalid_url", "url"},
		{"too long", `{"url":"https://example.com/` + strings.Repeat("a", 2100) + `"}`, "invalid_url", "url"},
		{"unknown event type", `{"url":"https://example.com/h","event_types":["payment.paid"]}`, "invalid_event_types", "event_types"},
		{"subject instead of type", `{"url":"https://example.com/h","event_types":["payments.confirmed"]}`, "invalid_event_types", "event_types"},
		{"event_types not an array", `{"url":"https://example.com/h","event_types":"payment.created"}`, "invalid_event_types", "event_types"},
		{"legacy_signature not a boolean", `{"url":"https://example.com/h","legacy_signature":"yes"}`, "invalid_legacy_signature", "legacy_signature"},
		{"unknown field", `{"url":"https://example.com/h","secret":"whsec_x"}`, "unknown_field", "secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call("POST", "/v1/endpoints", key, tc.body)
			e := r.apiError(t)
			if r.status != 400 || e.Error.Code != tc.code || e.Error.Field != tc.field {
				t.Fatalf("got %d %s, want 400 %s field %q", r.status, truncate(r.body), tc.code, tc.field)
			}
			if strings.Contains(e.Error.Message, "pass@") {
				t.Error("the error repeats the URL's credentials")
			}
		})
	}
	if n := h.count(`SELECT count(*) FROM webhook_endpoints`); n != 0 {
		t.Fatalf("invalid requests created %d endpoints", n)
	}
}

// WEBHOOK_ALLOW_HTTP and WEBHOOK_ALLOW_PRIVATE_NETWORKS relax the URL policy as they do for
// the sender.
func TestEndpointURLPolicyFromEnvironment(t *testing.T) {
	h := newHarness(t)
	h.cfg.AllowHTTP, h.cfg.AllowPrivateNetworks = true, true
	h.start()
	_, key := h.merchant("m")
	if r := h.call("POST", "/v1/endpoints", key, `{"url":"http://127.0.0.1:9999/hook"}`); r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestEndpointLifecycle(t *testing.T) {
	h := startHarness(t)
	_, key := h.merchant("m")
	r := h.call("POST", "/v1/endpoints", key,
		`{"url":"https://example.com/hook","event_types":["payment.confirmed","payment.swept","payment.confirmed"],"legacy_signature":true}`)
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var ep endpoint
	r.json(t, &ep)
	if !strings.HasPrefix(ep.ID, "ep_") || !ep.Enabled || !ep.LegacySignature || strings.Join(ep.EventTypes, ",") != "payment.confirmed,payment.swept" {
		t.Fatalf("created %+v", ep)
	}
	if !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("secret %q", ep.Secret)
	}
	if _, err := signature.ParseSecret(ep.Secret); err != nil {
		t.Fatal(err)
	}
	var stored string
	if err := h.db.Get(&stored, `SELECT secret FROM webhook_endpoints WHERE id = $1`, ep.ID); err != nil || stored != ep.Secret {
		t.Fatalf("stored secret differs (%v)", err)
	}
	// The secret is shown once.
	if r := h.call("GET", "/v1/endpoints/"+ep.ID, key, nil); r.status != 200 || strings.Contains(string(r.body), "whsec_") {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	if r := h.call("GET", "/v1/endpoints", key, nil); r.status != 200 || strings.Contains(string(r.body), "whsec_") || !strings.Contains(string(r.body), ep.ID) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}

	patch := func(body string) endpoint {
		t.Helper()
		r := h.call("PATCH", "/v1/endpoints/"+ep.ID, key, body)
		if r.status != 200 {
			t.Fatalf("patch %s: %d %s", body, r.status, r.body)
		}
		var got endpoint
		r.json(t, &got)
		return got
	}
	if got := patch(`{"enabled":false}`); got.Enabled || got.DisabledReason == nil {
		t.Fatalf("disable: %+v", got)
	}
	// The sender disables on 410 Gone; re-enabling clears its reason.
	if _, err := h.db.Exec(`UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'receiver answered 410 Gone',
		disabled_at = now() WHERE id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	if got := patch(`{"enabled":false}`); got.DisabledReason == nil || *got.DisabledReason != "receiver answered 410 Gone" {
		t.Fatalf("disabling again overwrote the reason: %+v", got)
	}
	if got := patch(`{"enabled":true}`); !got.Enabled || got.DisabledReason != nil {
		t.Fatalf("re-enable: %+v", got)
	}
	if n := h.count(`SELECT count(*) FROM webhook_endpoints WHERE id = $1 AND disabled_at IS NULL AND disabled_reason IS NULL`, ep.ID); n != 1 {
		t.Fatal("re-enabling left disabled_at / disabled_reason")
	}
	if got := patch(`{"url":"https://example.org/v2","event_types":[],"legacy_signature":false}`); got.URL != "https://example.org/v2" ||
		len(got.EventTypes) != 0 || got.LegacySignature {
		t.Fatalf("patch fields: %+v", got)
	}
	if got := patch(`{}`); got.URL != "https://example.org/v2" || !got.Enabled {
		t.Fatalf("empty patch changed something: %+v", got)
	}
	for _, tc := range []struct{ body, code, field string }{
		{`{"url":"http://example.org"}`, "invalid_url", "url"},
		{`{"event_types":["nope"]}`, "invalid_event_types", "event_types"},
		{`{"enabled":"true"}`, "invalid_enabled", "enabled"},
		{`{"secret":"x"}`, "unknown_field", "secret"},
	} {
		r := h.call("PATCH", "/v1/endpoints/"+ep.ID, key, tc.body)
		if e := r.apiError(t); r.status != 400 || e.Error.Code != tc.code || e.Error.Field != tc.field {
			t.Errorf("patch %s: %d %s", tc.body, r.status, r.body)
		}
	}

	// Rotation: the old secret keeps signing for the grace period.
	rotate := func(path string, body any) (endpoint, response) {
		t.Helper()
		r := h.call("POST", path, key, body)
		var got endpoint
		if r.status == 200 {
			r.json(t, &got)
		}
		return got, r
	}
	old := ep.Secret
	rot, r := rotate("/v1/endpoints/"+ep.ID+"/rotate-secret", nil)
	if r.status != 200 || !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == old || rot.PreviousSecretExpiresAt == nil {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	if d := time.Until(*rot.PreviousSecretExpiresAt); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("default grace: previous secret expires in %v", d)
	}
	var secrets struct {
		Secret   string  `db:"secret"`
		Previous *string `db:"previous_secret"`
	}
	if err := h.db.Get(&secrets, `SELECT secret, previous_secret FROM webhook_endpoints WHERE id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	if secrets.Secret != rot.Secret || secrets.Previous == nil || *secrets.Previous != old {
		t.Fatal("rotation did not move the old secret to previous_secret")
	}
	if rot2, r := rotate("/v1/endpoints/"+ep.ID+"/rotate-secret", `{"grace_period_seconds":3600}`); r.status != 200 ||
		time.Until(*rot2.PreviousSecretExpiresAt) > 61*time.Minute || time.Until(*rot2.PreviousSecretExpiresAt) < 59*time.Minute {
		t.Fatalf("rotate with body grace: %d %s", r.status, r.body)
	}
	if rot3, r := rotate("/v1/endpoints/"+ep.ID+"/rotate-secret?grace_period_seconds=0", nil); r.status != 200 || rot3.PreviousSecretExpiresAt != nil {
		t.Fatalf("rotate with no grace: %d %s", r.status, r.body)
	}
	if n := h.count(`SELECT count(*) FROM webhook_endpoints WHERE id = $1 AND previous_secret IS NULL`, ep.ID); n != 1 {
		t.Fatal("grace 0 kept the previous secret")
	}
	for _, tc := range []struct {
		path string
		body any
	}{
		{"?grace_period_seconds=-1", nil},
		{"?grace_period_seconds=604801", nil},
		{"?grace_period_seconds=1h", nil},
		{"", `{"grace_period_seconds":604801}`},
		{"", `{"grace_period_seconds":"60"}`},
		{"?grace_period_seconds=60", `{"grace_period_seconds":60}`},
	} {
		_, r := rotate("/v1/endpoints/"+ep.ID+"/rotate-secret"+tc.path, tc.body)
		if e := r.apiError(t); r.status != 400 || e.Error.Code != "invalid_grace_period_seconds" || e.Error.Field != "grace_period_seconds" {
			t.Errorf("rotate %s %v: %d %s", tc.path, tc.body, r.status, r.body)
		}
	}

	// Delete is soft: the row stays for attempts and dead letters, the API no longer shows it.
	if r := h.call("DELETE", "/v1/endpoints/"+ep.ID, key, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if n := h.count(`SELECT count(*) FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NOT NULL`, ep.ID); n != 1 {
		t.Fatal("delete did not set deleted_at")
	}
	for _, rt := range []struct{ method, path string }{
		{"GET", ""}, {"PATCH", ""}, {"DELETE", ""}, {"POST", "/rotate-secret"},
	} {
		if r := h.call(rt.method, "/v1/endpoints/"+ep.ID+rt.path, key, `{}`); r.status != 404 {
			t.Errorf("%s deleted endpoint: %d %s", rt.method, r.status, r.body)
		}
	}
	if r := h.call("GET", "/v1/endpoints", key, nil); strings.Contains(string(r.body), ep.ID) {
		t.Error("deleted endpoint still listed")
	}
}

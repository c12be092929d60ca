package main

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/ctrip-pay/pipeline/shared/signature"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// A merchant verifies our webhooks with the official Standard Webhooks library, as the README
// tells them to: the headers and body exactly as the sender put them on the wire, the secret
// exactly as the API handed it out (whsec_...). During a secret rotation the header carries two
// signatures and either secret verifies; a changed body, id or timestamp does not.
func TestMerchantVerifiesWithStandardWebhooksLibrary(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t, nil)
	plainID, plainSecret := h.endpoint("m_1", rc.srv.URL)
	rotatedID, newSecret := h.endpoint("m_1", rc.srv.URL)
	oldSecret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.Exec(`UPDATE webhook_endpoints SET previous_secret = $2, previous_secret_expires_at = now() + interval '1 hour'
		WHERE id = $1`, rotatedID, oldSecret); err != nil {
		t.Fatal(err)
	}
	h.start()
	env := h.publish("payments.confirmed", "m_1")
	testkit.Eventually(t, 10*time.Second, "both deliveries", func() bool { return len(rc.got()) == 2 })

	// The two endpoints share a URL: tell the requests apart by how many signatures they carry.
	byEndpoint := map[string]received{}
	for _, r := range rc.got() {
		if got := r.header.Get(standardwebhooks.HeaderWebhookID); got != env.ID {
			t.Fatalf("webhook-id %q, want the event id %q", got, env.ID)
		}
		switch n := len(strings.Fields(r.header.Get(standardwebhooks.HeaderWebhookSignature))); n {
		case 1:
			byEndpoint[plainID] = r
		case 2:
			byEndpoint[rotatedID] = r
		default:
			t.Fatalf("webhook-signature %q: %d signatures", r.header.Get(standardwebhooks.HeaderWebhookSignature), n)
		}
	}
	if len(byEndpoint) != 2 {
		t.Fatalf("want one single-signature and one rotated delivery, got %d kinds", len(byEndpoint))
	}

	if !strings.Contains(string(byEndpoint[rotatedID].body), `"12.5"`) {
		t.Fatal(`the tampered-body case changes "12.5" in the body, which is not there`)
	}

	verify := func(secret string, body []byte, hdr http.Header) error {
		t.Helper()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatalf("the library refuses our secret format: %v", err)
		}
		return wh.Verify(body, hdr)
	}
	tamper := func(r received, key, value string) http.Header {
		hdr := r.header.Clone()
		hdr.Set(key, value)
		return hdr
	}
	for _, tc := range []struct {
		name   string
		secret string
		body   []byte
		header http.Header
		ok     bool
	}{
		{"one secret", plainSecret, byEndpoint[plainID].body, byEndpoint[plainID].header, true},
		{"rotation: the new secret", newSecret, byEndpoint[rotatedID].body, byEndpoint[rotatedID].header, true},
		{"rotation: the old secret", oldSecret, byEndpoint[rotatedID].body, byEndpoint[rotatedID].header, true},
		{"another endpoint's secret", newSecret, byEndpoint[plainID].body, byEndpoint[plainID].header, false},
		{"tampered body", plainSecret, append([]byte(" "), byEndpoint[plainID].body...), byEndpoint[plainID].header, false},
		{"tampered body, rotated header", oldSecret,
			[]byte(strings.Replace(string(byEndpoint[rotatedID].body), `"12.5"`, `"125"`, 1)), byEndpoint[rotatedID].header, false},
		{"another webhook-id", plainSecret, byEndpoint[plainID].body, tamper(byEndpoint[plainID], "webhook-id", env.ID+"x"), false},
		{"another webhook-timestamp", plainSecret, byEndpoint[plainID].body,
			tamper(byEndpoint[plainID], "webhook-timestamp", plusOne(t, byEndpoint[plainID].header.Get("webhook-timestamp"))), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verify(tc.secret, tc.body, tc.header)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("Verify: %v", err)
			case !tc.ok && !errors.Is(err, standardwebhooks.ErrNoMatchingSignature):
				t.Fatalf("Verify = %v, want %v", err, standardwebhooks.ErrNoMatchingSignature)
			}
		})
	}
}

// plusOne is a unix-seconds header one second later.
func plusOne(t *testing.T, ts string) string {
	t.Helper()
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q is not unix seconds: %v", ts, err)
	}
	return strconv.FormatInt(sec+1, 10)
}

package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/deadletter"
	"github.com/ctrip-pay/pipeline/shared/signature"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestDeliveredFirstTimeSignedAndRecorded(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t, nil)
	epID, secret := h.endpoint("m_1", rc.srv.URL)
	h.start()
	env := h.publish("payments.confirmed", "m_1")

	testkit.Eventually(t, 10*time.Second, "delivery", func() bool { return len(rc.got()) == 1 })
	req := rc.got()[0]
	// The producer's trace continues through fan-out and delivery into the merchant's request.
	if tp := req.header.Get("traceparent"); !strings.HasPrefix(tp, "00-"+testTraceID+"-") {
		t.Fatalf("traceparent %q does not continue trace %s", tp, testTraceID)
	}
	if got := req.header.Get("webhook-id"); got != env.ID {
		t.Fatalf("webhook-id = %q, want event id %q", got, env.ID)
	}
	key, _ := signature.ParseSecret(secret)
	if err := signature.Verify(key, env.ID, req.header.Get("webhook-timestamp"), req.header.Get("webhook-signature"),
		req.body, time.Now(), time.Minute); err != nil {
		t.Fatalf("signature does not verify: %v (headers %v)", err, req.header)
	}
	// The seed's legacy header: hex HMAC-SHA256 of the body.
	mac := hmac.New(sha256.New, mustKeyBytes(t, secret))
	mac.Write(req.body)
	if got, want := req.header.Get("X-Webhook-Signature"), hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Fatalf("legacy signature = %q, want %q", got, want)
	}
	if !bytes.Contains(req.body, []byte(`"type":"payment.confirmed"`)) || !bytes.Contains(req.body, []byte(`"amount_base_units":"12500000000000000000"`)) {
		t.Fatalf("body is not the envelope: %s", req.body)
	}
	testkit.Eventually(t, 5*time.Second, "attempt row", func() bool { return len(h.attempts(env.ID, epID)) == 1 })
	a := h.attempts(env.ID, epID)[0]
	if !a.Delivered || a.Attempt != 1 || a.StatusCode == nil || *a.StatusCode != 200 || a.Body == nil || *a.Body != `{"ok":true}` {
		t.Fatalf("attempt row %+v", a)
	}
	// Acked: nothing pending on the delivery consumer, and no second request comes.
	testkit.Eventually(t, 5*time.Second, "ack", func() bool {
		info, err := testkit.ConsumerInfo(context.Background(), h.js, "WEBHOOKS", "webhook-sender")
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	// Longer than the first backoff step.
	testkit.Never(t, 300*time.Millisecond, "a second request after the ack", func() bool { return len(rc.got()) != 1 })
}

func mustKeyBytes(t *testing.T, secret string) []byte {
	t.Helper()
	// whsec_<base64>: the legacy HMAC uses the decoded key, like the Standard signature.
	raw, err := signatureKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestRetriesOnScheduleWithSameWebhookID(t *testing.T) {
	schedule := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 900 * time.Millisecond}
	h := newHarness(t, schedule...)
	rc := newReceiver(t, failFirst(2))
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	h.start()
	env := h.publish("payments.confirmed", "m_1")

	testkit.Eventually(t, 15*time.Second, "three attempts", func() bool { return len(rc.got()) >= 3 })
	testkit.Never(t, schedule[2]+200*time.Millisecond, "a fourth request", func() bool { return len(rc.got()) != 3 })
	reqs := rc.got()
	for i, r := range reqs {
		if r.header.Get("webhook-id") != env.ID {
			t.Fatalf("attempt %d webhook-id %q, want %q", i+1, r.header.Get("webhook-id"), env.ID)
		}
	}
	// Attempt k+1 comes BackOff[k-1] after attempt k fails — not at once, as a plain Nak would do.
	for k := 1; k < 3; k++ {
		gap := reqs[k].at.Sub(reqs[k-1].at)
		want := schedule[k-1]
		if gap < want-20*time.Millisecond || gap > want+750*time.Millisecond {
			t.Errorf("gap before attempt %d = %v, want about %v", k+1, gap, want)
		}
		t.Logf("gap before attempt %d: %v (schedule %v)", k+1, gap, want)
	}
	testkit.Eventually(t, 5*time.Second, "attempt rows", func() bool { return len(h.attempts(env.ID, epID)) == 3 })
	rows := h.attempts(env.ID, epID)
	for i, want := range []int{500, 500, 200} {
		if rows[i].Attempt != i+1 || rows[i].StatusCode == nil || *rows[i].StatusCode != want || rows[i].Delivered != (want == 200) {
			t.Errorf("attempt row %d = %+v, want status %d", i+1, rows[i], want)
		}
	}
	if n := h.count(`SELECT count(*) FROM webhook_dead_letters`); n != 0 {
		t.Fatalf("%d dead letters for a delivered event", n)
	}
}

func TestExhaustedDeliveryIsDeadLetteredOnceAndReplayable(t *testing.T) {
	schedule := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond}
	h := newHarness(t, schedule...)
	rc := newReceiver(t, status(http.StatusInternalServerError))
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	h.start()
	env := h.publish("payments.swept", "m_1")

	maxDeliver := len(schedule) + 1
	testkit.Eventually(t, 15*time.Second, "dead letter", func() bool {
		return h.count(`SELECT count(*) FROM webhook_dead_letters WHERE published_at IS NOT NULL`) == 1
	})
	testkit.Never(t, 500*time.Millisecond, fmt.Sprintf("a number of attempts other than MaxDeliver = %d", maxDeliver), func() bool {
		return len(rc.got()) != maxDeliver
	})
	if n := h.count(`SELECT count(*) FROM webhook_dead_letters`); n != 1 {
		t.Fatalf("%d dead letters, want exactly 1", n)
	}
	var dl struct {
		ID         string  `db:"id"`
		Reason     string  `db:"reason"`
		Deliveries int     `db:"deliveries"`
		LastError  *string `db:"last_error"`
		Body       []byte  `db:"body"`
		EventID    *string `db:"event_id"`
		Endpoint   string  `db:"endpoint_id"`
	}
	if err := h.db.Get(&dl, `SELECT id, reason, deliveries, last_error, body, event_id, endpoint_id FROM webhook_dead_letters`); err != nil {
		t.Fatal(err)
	}
	if dl.Reason != "max_deliveries" || dl.Deliveries != maxDeliver || dl.LastError == nil || *dl.LastError != "HTTP 500" ||
		dl.EventID == nil || *dl.EventID != env.ID || dl.Endpoint != epID || !bytes.Equal(dl.Body, rc.got()[0].body) {
		t.Fatalf("dead letter row %+v (body %s)", dl, dl.Body)
	}

	// The copy on dlq.webhooks.<endpoint_id> carries the original body and the Dlq-* headers.
	dlq, err := h.js.Stream(context.Background(), "DLQ")
	if err != nil {
		t.Fatal(err)
	}
	copyMsg, err := dlq.GetLastMsgForSubject(context.Background(), "dlq.webhooks."+epID)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Dlq-Reason": "max_deliveries", "Dlq-Origin-Stream": "WEBHOOKS", "Dlq-Deliveries": "4",
		"Dlq-Last-Error": "HTTP 500", "Dlq-Id": dl.ID, "Dlq-Origin-Subject": "webhooks.deliver." + epID,
	} {
		if got := copyMsg.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if copyMsg.Header.Get("Dlq-Origin-Seq") == "" || !bytes.Equal(copyMsg.Data, dl.Body) {
		t.Fatalf("DLQ copy: seq %q body %s", copyMsg.Header.Get("Dlq-Origin-Seq"), copyMsg.Data)
	}

	// Replay after the merchant fixed its endpoint: delivered with the same webhook-id.
	rc.setRespond(status(http.StatusOK))
	before := len(rc.got())
	if _, err := deadletter.ReplayByID(context.Background(), h.db, h.js, dl.ID); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "replayed delivery", func() bool { return len(rc.got()) == before+1 })
	last := rc.got()[before]
	if last.header.Get("webhook-id") != env.ID || !bytes.Equal(last.body, dl.Body) {
		t.Fatalf("replay delivered webhook-id %q body %s", last.header.Get("webhook-id"), last.body)
	}
	testkit.Never(t, 300*time.Millisecond, "another dead letter after a successful replay", func() bool {
		return h.count(`SELECT count(*) FROM webhook_dead_letters`) != 1
	})
	if n := h.count(`SELECT replay_count FROM webhook_dead_letters`); n != 1 {
		t.Fatalf("replay_count = %d", n)
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t, status(http.StatusGone))
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	h.start()
	h.publish("payments.confirmed", "m_1")

	testkit.Eventually(t, 10*time.Second, "endpoint disabled", func() bool {
		return h.count(`SELECT count(*) FROM webhook_endpoints WHERE id = $1 AND NOT enabled AND disabled_reason LIKE '410 Gone%'`, epID) == 1
	})
	testkit.Eventually(t, 10*time.Second, "dead letter", func() bool {
		return h.count(`SELECT count(*) FROM webhook_dead_letters WHERE reason = 'endpoint_gone' AND endpoint_id = $1`, epID) == 1
	})
	// Later events are not sent to a disabled endpoint.
	h.publish("payments.swept", "m_1")
	testkit.Never(t, 500*time.Millisecond, "a second request to a gone endpoint", func() bool { return len(rc.got()) != 1 })
}

func TestPoisonMessagesAreDeadLetteredWithReason(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t, nil)
	epID, _ := h.endpoint("m_1", rc.srv.URL)
	h.start()
	ctx := context.Background()
	if _, err := h.js.Publish(ctx, "webhooks.deliver."+epID, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.js.Publish(ctx, "webhooks.deliver.ep_nobody", []byte(`{"id":"evt_x","type":"payment.confirmed","timestamp":"2026-11-28T20:14:26Z","data":{}}`)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "two dead letters", func() bool {
		return h.count(`SELECT count(*) FROM webhook_dead_letters WHERE published_at IS NOT NULL`) == 2
	})
	var reasons []struct {
		Reason    string  `db:"reason"`
		LastError *string `db:"last_error"`
		Body      []byte  `db:"body"`
	}
	if err := h.db.Select(&reasons, `SELECT reason, last_error, body FROM webhook_dead_letters ORDER BY origin_seq`); err != nil {
		t.Fatal(err)
	}
	if reasons[0].Reason != "poison" || reasons[0].LastError == nil || !strings.Contains(*reasons[0].LastError, "undecodable") ||
		string(reasons[0].Body) != "{not json" {
		t.Errorf("poison dead letter %+v", reasons[0])
	}
	if reasons[1].Reason != "endpoint_unknown" {
		t.Errorf("unknown endpoint dead letter %+v", reasons[1])
	}
	if n := len(rc.got()); n != 0 {
		t.Fatalf("poison was POSTed %d times", n)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	// A schedule of 500 ms, half the Retry-After: the step is also the consumer's AckWait, and
	// the heartbeat that holds a message in hand beats every half step. A 50 ms schedule left
	// 25 ms between beats, which a loaded machine missed, and the server redelivered the
	// message 5 ms after the 429 (CI run of 2026-12-02).
	h := newHarness(t, 500*time.Millisecond, 500*time.Millisecond)
	rc := newReceiver(t, func(n int, _ *http.Request) (int, http.Header) {
		if n == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, nil
	})
	h.endpoint("m_1", rc.srv.URL)
	h.start()
	h.publish("payments.confirmed", "m_1")
	testkit.Eventually(t, 10*time.Second, "second attempt", func() bool { return len(rc.got()) == 2 })
	reqs := rc.got()
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 950*time.Millisecond || gap > 3*time.Second {
		t.Fatalf("retry after %v, want about the 1s Retry-After (schedule is 500ms)", gap)
	}
}

func TestEventTypeFilterAndMerchantIsolation(t *testing.T) {
	h := newHarness(t)
	rcA := newReceiver(t, nil)
	rcOnlySwept := newReceiver(t, nil)
	rcB := newReceiver(t, nil)
	rcDefault := newReceiver(t, nil)
	h.endpoint("m_a", rcA.srv.URL)
	h.endpoint("m_a", rcOnlySwept.srv.URL, "payment.swept")
	h.endpoint("m_b", rcB.srv.URL)
	h.cfg.WebhookURL, h.cfg.WebhookSecret = rcDefault.srv.URL, "seed-secret"
	h.start()

	confirmed := h.publish("payments.confirmed", "m_a")
	swept := h.publish("payments.swept", "m_a")
	testkit.Eventually(t, 10*time.Second, "deliveries", func() bool {
		return len(rcA.got()) == 2 && len(rcOnlySwept.got()) == 1 && len(rcDefault.got()) == 2
	})
	testkit.Never(t, 300*time.Millisecond, "merchant B receives merchant A's events", func() bool { return len(rcB.got()) != 0 })
	if got := rcOnlySwept.got()[0].header.Get("webhook-id"); got != swept.ID {
		t.Fatalf("filtered endpoint got %s, want only %s (not %s)", got, swept.ID, confirmed.ID)
	}
	// The seed's global endpoint keeps its legacy signature with the raw secret.
	d := rcDefault.got()[0]
	mac := hmac.New(sha256.New, []byte("seed-secret"))
	mac.Write(d.body)
	if d.header.Get("X-Webhook-Signature") != hex.EncodeToString(mac.Sum(nil)) {
		t.Fatal("default endpoint legacy signature mismatch")
	}
}

func TestPrivateAddressesRefusedUnlessAllowed(t *testing.T) {
	h := newHarness(t, 50*time.Millisecond)
	rc := newReceiver(t, nil)
	epID, _ := h.endpoint("m_1", rc.srv.URL) // a loopback address
	h.cfg.AllowPrivateNetworks = false
	h.start()
	env := h.publish("payments.confirmed", "m_1")
	testkit.Eventually(t, 10*time.Second, "two refused attempts", func() bool { return len(h.attempts(env.ID, epID)) == 2 })
	for _, a := range h.attempts(env.ID, epID) {
		if a.Delivered || a.StatusCode != nil || a.Error == nil || !strings.Contains(*a.Error, "address not allowed") {
			t.Fatalf("attempt %+v, want refused before connecting", a)
		}
	}
	if n := len(rc.got()); n != 0 {
		t.Fatalf("receiver on loopback got %d requests", n)
	}
}

func TestOneSlowEndpointDoesNotStarveOthers(t *testing.T) {
	h := newHarness(t, 5*time.Second)
	release := make(chan struct{})
	slow := newReceiver(t, func(int, *http.Request) (int, http.Header) { <-release; return 200, nil })
	fast := newReceiver(t, nil)
	h.endpoint("m_slow", slow.srv.URL)
	h.endpoint("m_fast", fast.srv.URL)
	h.start()
	t.Cleanup(func() { close(release) }) // runs before the sender is stopped
	for range 40 {
		h.publish("payments.confirmed", "m_slow")
	}
	testkit.Eventually(t, 5*time.Second, "slow endpoint saturated", func() bool { return len(slow.got()) == h.cfg.EndpointConcurrency })
	for range 20 {
		h.publish("payments.confirmed", "m_fast")
	}
	testkit.Eventually(t, 5*time.Second, "fast endpoint served while the slow one hangs", func() bool { return len(fast.got()) == 20 })
	if n := len(slow.got()); n != h.cfg.EndpointConcurrency {
		t.Fatalf("slow endpoint has %d concurrent requests, want the per-endpoint limit %d", n, h.cfg.EndpointConcurrency)
	}
}

func TestRotatedSecretSignsWithBothUntilExpiry(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t, nil)
	epID, newSecret := h.endpoint("m_1", rc.srv.URL)
	oldSecret, _ := signature.NewSecret()
	if _, err := h.db.Exec(`UPDATE webhook_endpoints SET previous_secret = $2, previous_secret_expires_at = now() + interval '1 hour'
		WHERE id = $1`, epID, oldSecret); err != nil {
		t.Fatal(err)
	}
	h.start()
	env := h.publish("payments.confirmed", "m_1")
	testkit.Eventually(t, 10*time.Second, "delivery", func() bool { return len(rc.got()) == 1 })
	req := rc.got()[0]
	sigs := strings.Fields(req.header.Get("webhook-signature"))
	if len(sigs) != 2 {
		t.Fatalf("webhook-signature %q: want one signature per active secret", req.header.Get("webhook-signature"))
	}
	for _, s := range []string{newSecret, oldSecret} {
		key, _ := signature.ParseSecret(s)
		if err := signature.Verify(key, env.ID, req.header.Get("webhook-timestamp"), req.header.Get("webhook-signature"), req.body, time.Now(), time.Minute); err != nil {
			t.Fatalf("a receiver holding one of the two secrets cannot verify: %v", err)
		}
	}
}

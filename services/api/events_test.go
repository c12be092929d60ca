package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/outbox"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// paymentEvent writes a payment event into the outbox as the confirmer or the sweeper does, and
// returns its envelope id. The api's relay publishes it.
func (h *harness) paymentEvent(subject, merchantID, paymentID, msgID string) string {
	h.t.Helper()
	m, err := outbox.NewMessage(context.Background(), subject, msgID, event.Payment{PaymentID: paymentID, MerchantID: merchantID,
		Status: strings.TrimPrefix(subject, "payments."), ChainID: 1337, Chain: "devnet", Token: "ETH"})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := outbox.Add(context.Background(), h.db, m); err != nil {
		h.t.Fatal(err)
	}
	return m.EventID
}

// published waits until the relay has published every outbox row.
func (h *harness) published() {
	h.t.Helper()
	testkit.Eventually(h.t, 10*time.Second, "the outbox relay to publish every row", func() bool {
		return h.count(`SELECT count(*) FROM outbox WHERE published_at IS NULL`) == 0
	})
}

func (h *harness) statusChange(paymentID, from, to, reason, eventID string) {
	h.t.Helper()
	if _, err := h.db.Exec(`INSERT INTO payment_status_changes (payment_id, from_status, to_status, reason, event_id)
		VALUES ($1, $2, $3, $4, nullif($5, ''))`, paymentID, from, to, reason, eventID); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) eventAttempt(eventID, paymentID, endpointID string, n, code int, delivered bool) {
	h.t.Helper()
	if _, err := h.db.Exec(`INSERT INTO webhook_attempts (event_id, event_type, payment_id, endpoint_id, stream_seq,
		attempt, status_code, latency_ms, error, response_body, delivered)
		VALUES ($1, 'payment.created', $2, $3, 1, $4, $5::int, 3.5, CASE WHEN $6 THEN NULL ELSE 'HTTP ' || $5::int::text END, '', $6)`,
		eventID, paymentID, endpointID, n, code, delivered); err != nil {
		h.t.Fatal(err)
	}
}

type paymentEvents struct {
	Object        string `json:"object"`
	PaymentID     string `json:"payment_id"`
	Status        string `json:"status"`
	StatusHistory []struct {
		From    string  `json:"from"`
		To      string  `json:"to"`
		Reason  string  `json:"reason"`
		EventID *string `json:"event_id"`
	} `json:"status_history"`
	Data []struct {
		ID          string          `json:"id"`
		Type        string          `json:"type"`
		Timestamp   time.Time       `json:"timestamp"`
		Data        json.RawMessage `json:"data"`
		PublishedAt *time.Time      `json:"published_at"`
		Deliveries  []struct {
			EndpointID     string `json:"endpoint_id"`
			Attempts       int    `json:"attempts"`
			Delivered      bool   `json:"delivered"`
			LastStatusCode *int   `json:"last_status_code"`
		} `json:"deliveries"`
	} `json:"data"`
	HasMore    bool    `json:"has_more"`
	NextCursor *string `json:"next_cursor"`
}

func TestPaymentEvents(t *testing.T) {
	h := startHarness(t)
	merchantID, key := h.merchant("m")
	p := h.createPayment(key, `{"chain_id":1337,"token":"ETH","amount":"1"}`)
	other := h.createPayment(key, `{"chain_id":1337,"token":"ETH","amount":"2"}`)
	ep := h.endpointFor(key)
	if _, err := h.db.Exec(`INSERT INTO webhook_endpoints (id, merchant_id, url, secret) VALUES ('ep_default', NULL, 'https://ops.example', 'whsec_x')`); err != nil {
		t.Fatal(err)
	}
	confirmed := h.paymentEvent(event.SubjectConfirmed, merchantID, p.ID, p.ID+".confirmed")
	h.paymentEvent(event.SubjectConfirmed, merchantID, other.ID, other.ID+".confirmed")
	h.published()
	// outbox.Add stores each event's owner.
	if n := h.count(`SELECT count(*) FROM outbox WHERE payment_id = $1 AND merchant_id = $2`, p.ID, merchantID); n != 2 {
		t.Fatalf("%d outbox rows carry the payment and its merchant, want 2", n)
	}
	var created string
	if err := h.db.Get(&created, `SELECT convert_from(payload, 'UTF8')::jsonb->>'id' FROM outbox WHERE msg_id = $1`, p.ID+".created"); err != nil {
		t.Fatal(err)
	}
	h.statusChange(p.ID, "pending", "detected", "value seen", "evt_detected")
	h.statusChange(p.ID, "detected", "confirmed", "confirmed value reached the amount", confirmed)
	h.eventAttempt(created, p.ID, ep, 1, 500, false)
	h.eventAttempt(created, p.ID, ep, 2, 200, true)
	h.eventAttempt(created, p.ID, "ep_default", 1, 200, true) // the operator's, not the merchant's
	h.eventAttempt(confirmed, p.ID, ep, 1, 503, false)

	var got paymentEvents
	r := h.call("GET", "/v1/payments/"+p.ID+"/events", key, nil)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r.json(t, &got)
	if got.Object != "payment_events" || got.PaymentID != p.ID || got.Status != "pending" || got.HasMore || got.NextCursor != nil {
		t.Fatalf("answer %s", r.body)
	}
	if len(got.StatusHistory) != 2 || got.StatusHistory[0].To != "detected" || *got.StatusHistory[0].EventID != "evt_detected" ||
		got.StatusHistory[1].From != "detected" || *got.StatusHistory[1].EventID != confirmed {
		t.Fatalf("status history %s", r.body)
	}
	if len(got.Data) != 2 || got.Data[0].ID != created || got.Data[0].Type != "payment.created" ||
		got.Data[1].ID != confirmed || got.Data[1].Type != "payment.confirmed" {
		t.Fatalf("events %s", r.body)
	}
	for _, e := range got.Data {
		var data struct {
			PaymentID string `json:"payment_id"`
		}
		if err := json.Unmarshal(e.Data, &data); err != nil || data.PaymentID != p.ID || e.PublishedAt == nil || e.Timestamp.IsZero() {
			t.Fatalf("event %s: data %s, published %v", e.ID, e.Data, e.PublishedAt)
		}
	}
	if d := got.Data[0].Deliveries; len(d) != 1 || d[0].EndpointID != ep || d[0].Attempts != 2 || !d[0].Delivered || *d[0].LastStatusCode != 200 {
		t.Fatalf("deliveries of payment.created: %+v", d)
	}
	if d := got.Data[1].Deliveries; len(d) != 1 || d[0].Attempts != 1 || d[0].Delivered || *d[0].LastStatusCode != 503 {
		t.Fatalf("deliveries of payment.confirmed: %+v", d)
	}

	// Paginated by event; the history comes on every page.
	var first, second paymentEvents
	h.call("GET", "/v1/payments/"+p.ID+"/events?limit=1", key, nil).json(t, &first)
	if len(first.Data) != 1 || first.Data[0].ID != created || !first.HasMore || first.NextCursor == nil || len(first.StatusHistory) != 2 {
		t.Fatalf("first page %+v", first)
	}
	h.call("GET", "/v1/payments/"+p.ID+"/events?limit=1&cursor="+*first.NextCursor, key, nil).json(t, &second)
	if len(second.Data) != 1 || second.Data[0].ID != confirmed || second.HasMore || len(second.StatusHistory) != 2 {
		t.Fatalf("second page %+v", second)
	}

	for _, tc := range []struct{ query, code, field string }{
		{"limit=0", "invalid_limit", "limit"},
		{"limit=101", "invalid_limit", "limit"},
		{"limit=x", "invalid_limit", "limit"},
		{"cursor=zzz", "invalid_cursor", "cursor"},
		{"status=confirmed", "unknown_parameter", "status"},
	} {
		r := h.call("GET", "/v1/payments/"+p.ID+"/events?"+tc.query, key, nil)
		if e := r.apiError(t); r.status != 400 || e.Error.Code != tc.code || e.Error.Field != tc.field {
			t.Errorf("%s: %d %s", tc.query, r.status, r.body)
		}
	}
	if r := h.call("GET", "/v1/payments/pay_missing/events", key, nil); r.status != 404 {
		t.Fatalf("missing payment: %d %s", r.status, r.body)
	}
}

// webhookMsgs returns the WEBHOOKS messages for an endpoint.
func (h *harness) webhookMsgs(endpointID string) []jetstreamMsg {
	h.t.Helper()
	var out []jetstreamMsg
	for _, m := range h.streamMsgs("WEBHOOKS", "webhooks.deliver."+endpointID) {
		out = append(out, jetstreamMsg{msgID: m.Header.Get(event.HeaderMsgID), eventType: m.Header.Get(event.HeaderEventType),
			traceparent: m.Header.Get("traceparent"), body: m.Data})
	}
	return out
}

type jetstreamMsg struct {
	msgID, eventType, traceparent string
	body                          []byte
}

func TestEndpointTestEvent(t *testing.T) {
	h := startHarness(t)
	merchantID, key := h.merchant("m")
	ep := h.endpointFor(key)
	r := h.call("POST", "/v1/endpoints/"+ep+"/test", key, nil)
	var got struct {
		Object     string `json:"object"`
		EndpointID string `json:"endpoint_id"`
		EventID    string `json:"event_id"`
		EventType  string `json:"event_type"`
	}
	r.json(t, &got)
	if r.status != http.StatusAccepted || got.Object != "endpoint_test" || got.EndpointID != ep || got.EventType != "endpoint.test" ||
		!strings.HasPrefix(got.EventID, "evt_") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// An empty JSON object is accepted too, and is another event.
	if r := h.call("POST", "/v1/endpoints/"+ep+"/test", key, `{}`); r.status != http.StatusAccepted {
		t.Fatalf("with {}: %d %s", r.status, r.body)
	}
	msgs := h.webhookMsgs(ep)
	if len(msgs) != 2 {
		t.Fatalf("%d messages for the endpoint on WEBHOOKS, want 2", len(msgs))
	}
	m := msgs[0]
	var env event.Envelope
	if err := json.Unmarshal(m.body, &env); err != nil || env.Validate() != nil {
		t.Fatalf("body %s is not an envelope (%v)", m.body, err)
	}
	var data struct {
		EndpointID string `json:"endpoint_id"`
		MerchantID string `json:"merchant_id"`
	}
	if err := json.Unmarshal(env.Data, &data); err != nil {
		t.Fatal(err)
	}
	if env.ID != got.EventID || env.Type != "endpoint.test" || data.EndpointID != ep || data.MerchantID != merchantID ||
		m.msgID != got.EventID+"."+ep || m.eventType != "endpoint.test" {
		t.Fatalf("message %+v, body %s", m, m.body)
	}
	if strings.Contains(string(msgs[1].body), got.EventID) {
		t.Fatal("a second test reused the event id")
	}

	for _, tc := range []struct {
		name, path string
		body       any
		code       string
		field      string
	}{
		{"unknown field", "", `{"url":"https://example.com"}`, "unknown_field", "url"},
		{"not an object", "", `[1]`, "invalid_json", ""},
		{"not JSON", "", `{`, "invalid_json", ""},
		{"unknown parameter", "?dry_run=1", nil, "unknown_parameter", "dry_run"},
	} {
		r := h.call("POST", "/v1/endpoints/"+ep+"/test"+tc.path, key, tc.body)
		if e := r.apiError(t); r.status != 400 || e.Error.Code != tc.code || e.Error.Field != tc.field {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}

	// Disabled by the sender after a 410: refused until re-enabled, then sent again.
	if _, err := h.db.Exec(`UPDATE webhook_endpoints SET enabled = false, disabled_reason = '410 Gone at 2026-12-01T00:00:00Z',
		disabled_at = now() WHERE id = $1`, ep); err != nil {
		t.Fatal(err)
	}
	if r := h.call("POST", "/v1/endpoints/"+ep+"/test", key, nil); r.status != http.StatusConflict || r.apiError(t).Error.Code != "endpoint_disabled" {
		t.Fatalf("disabled: %d %s", r.status, r.body)
	}
	if r := h.call("PATCH", "/v1/endpoints/"+ep, key, `{"enabled":true}`); r.status != 200 || !strings.Contains(string(r.body), `"disabled_reason":null`) {
		t.Fatalf("re-enable: %d %s", r.status, r.body)
	}
	if r := h.call("POST", "/v1/endpoints/"+ep+"/test", key, nil); r.status != http.StatusAccepted {
		t.Fatalf("re-enabled: %d %s", r.status, r.body)
	}
	if r := h.call("DELETE", "/v1/endpoints/"+ep, key, nil); r.status != http.StatusNoContent {
		t.Fatal(r.status)
	}
	if r := h.call("POST", "/v1/endpoints/"+ep+"/test", key, nil); r.status != http.StatusNotFound {
		t.Fatalf("deleted: %d %s", r.status, r.body)
	}
	if n := len(h.webhookMsgs(ep)); n != 3 {
		t.Fatalf("%d messages for the endpoint, want 3 (refused calls publish nothing)", n)
	}
}

type endpointReplay struct {
	Object     string     `json:"object"`
	EndpointID string     `json:"endpoint_id"`
	Since      time.Time  `json:"since"`
	Replayed   int        `json:"replayed"`
	Duplicates int        `json:"duplicates"`
	HasMore    bool       `json:"has_more"`
	NextSince  *time.Time `json:"next_since"`
}

func TestEndpointReplay(t *testing.T) {
	h := startHarness(t)
	merchantID, key := h.merchant("m")
	otherID, otherKey := h.merchant("other")
	// Before the endpoint existed: not something it would have received.
	early := h.paymentEvent(event.SubjectConfirmed, merchantID, "pay_early", "pay_early.confirmed")
	h.published()
	if _, err := h.db.Exec(`UPDATE outbox SET created_at = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	r := h.call("POST", "/v1/endpoints", key, `{"url":"https://example.com/hook","event_types":["payment.created","payment.confirmed","payment.sweep_failed"]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var ep endpoint
	r.json(t, &ep)
	all := h.endpointFor(key) // every event type
	h.endpointFor(otherKey)

	p := h.createPayment(key, `{"chain_id":1337,"token":"ETH","amount":"1"}`)
	confirmed := h.paymentEvent(event.SubjectConfirmed, merchantID, p.ID, p.ID+".confirmed")
	expired := h.paymentEvent(event.SubjectExpired, merchantID, p.ID, p.ID+".expired")  // not subscribed
	h.paymentEvent(event.SubjectSweepFailed, merchantID, p.ID, p.ID+".sweep_failed")    // never fanned out
	h.paymentEvent(event.SubjectConfirmed, otherID, "pay_other", "pay_other.confirmed") // another merchant's
	h.published()
	var created string
	if err := h.db.Get(&created, `SELECT convert_from(payload, 'UTF8')::jsonb->>'id' FROM outbox WHERE msg_id = $1`, p.ID+".created"); err != nil {
		t.Fatal(err)
	}
	payloads := map[string]string{}
	var rows []struct {
		MsgID   string `db:"msg_id"`
		Payload []byte `db:"payload"`
	}
	if err := h.db.Select(&rows, `SELECT msg_id, payload FROM outbox`); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		payloads[row.MsgID] = string(row.Payload)
	}

	since := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	replay := func(endpointID string, body any) (endpointReplay, response) {
		t.Helper()
		r := h.call("POST", "/v1/endpoints/"+endpointID+"/replay", key, body)
		var got endpointReplay
		if r.status == http.StatusAccepted {
			r.json(t, &got)
		}
		return got, r
	}
	body := fmt.Sprintf(`{"since":%q}`, since.Format(time.RFC3339))
	got, r := replay(ep.ID, body)
	if r.status != http.StatusAccepted || got.Object != "endpoint_replay" || got.EndpointID != ep.ID || !got.Since.Equal(since) ||
		got.Replayed != 2 || got.Duplicates != 0 || got.HasMore || got.NextSince != nil {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	msgs := h.webhookMsgs(ep.ID)
	if len(msgs) != 2 {
		t.Fatalf("%d messages on WEBHOOKS for the endpoint, want 2", len(msgs))
	}
	tag := ".replay." + strconv.FormatInt(since.UnixNano(), 10)
	for i, want := range []struct{ eventID, msgID, typ string }{
		{created, p.ID + ".created", "payment.created"},
		{confirmed, p.ID + ".confirmed", "payment.confirmed"},
	} {
		m := msgs[i]
		// The original body, so the original webhook-id (the event id).
		if string(m.body) != payloads[want.msgID] || m.msgID != want.eventID+"."+ep.ID+tag || m.eventType != want.typ {
			t.Errorf("replayed message %d: %+v, body %s", i, m, m.body)
		}
	}
	for _, m := range msgs {
		if strings.Contains(string(m.body), early) || strings.Contains(string(m.body), expired) {
			t.Errorf("replayed an event the endpoint would not have received: %s", m.body)
		}
	}

	// The same request retried: nothing is sent twice.
	if got, r := replay(ep.ID, body); r.status != http.StatusAccepted || got.Replayed != 0 || got.Duplicates != 2 {
		t.Fatalf("retried replay: %d %s", r.status, r.body)
	}
	if n := len(h.webhookMsgs(ep.ID)); n != 2 {
		t.Fatalf("a retried replay added messages: %d", n)
	}

	// Bounded: limit events per request, and where to go on from.
	sinceAll := since.Add(time.Second)
	got, r = replay(all, fmt.Sprintf(`{"since":%q,"limit":2}`, sinceAll.Format(time.RFC3339)))
	if r.status != http.StatusAccepted || got.Replayed != 2 || !got.HasMore || got.NextSince == nil {
		t.Fatalf("limited replay: %d %s", r.status, r.body)
	}
	got, r = replay(all, fmt.Sprintf(`{"since":%q}`, got.NextSince.Format(time.RFC3339Nano)))
	if r.status != http.StatusAccepted || got.Replayed != 1 || got.HasMore {
		t.Fatalf("rest of the replay: %d %s", r.status, r.body)
	}
	if msgs := h.webhookMsgs(all); len(msgs) != 3 || !strings.Contains(string(msgs[2].body), expired) {
		t.Fatalf("%d messages for the catch-all endpoint, want created, confirmed, expired", len(msgs))
	}

	now := time.Now().UTC()
	for _, tc := range []struct {
		name, body, code, field string
	}{
		{"no body", ``, "invalid_json", ""},
		{"no since", `{}`, "invalid_since", "since"},
		{"empty since", `{"since":""}`, "invalid_since", "since"},
		{"since not a string", `{"since":1700000000}`, "invalid_since", "since"},
		{"not RFC 3339", `{"since":"2026-12-01 10:00:00"}`, "invalid_since", "since"},
		{"date only", `{"since":"2026-12-01"}`, "invalid_since", "since"},
		{"in the future", fmt.Sprintf(`{"since":%q}`, now.Add(time.Hour).Format(time.RFC3339)), "invalid_since", "since"},
		{"past retention", fmt.Sprintf(`{"since":%q}`, now.Add(-31*24*time.Hour).Format(time.RFC3339)), "invalid_since", "since"},
		{"limit 0", fmt.Sprintf(`{"since":%q,"limit":0}`, since.Format(time.RFC3339)), "invalid_limit", "limit"},
		{"limit too large", fmt.Sprintf(`{"since":%q,"limit":1001}`, since.Format(time.RFC3339)), "invalid_limit", "limit"},
		{"limit not an integer", fmt.Sprintf(`{"since":%q,"limit":"10"}`, since.Format(time.RFC3339)), "invalid_limit", "limit"},
		{"unknown field", fmt.Sprintf(`{"since":%q,"until":"x"}`, since.Format(time.RFC3339)), "unknown_field", "until"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call("POST", "/v1/endpoints/"+ep.ID+"/replay", key, bodyOrNone(tc.body))
			if e := r.apiError(t); r.status != 400 || e.Error.Code != tc.code || e.Error.Field != tc.field {
				t.Fatalf("%d %s, want 400 %s field %q", r.status, r.body, tc.code, tc.field)
			}
		})
	}
	if _, err := h.db.Exec(`UPDATE webhook_endpoints SET enabled = false, disabled_reason = '410 Gone', disabled_at = now() WHERE id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, r := replay(ep.ID, body); r.status != http.StatusConflict || r.apiError(t).Error.Code != "endpoint_disabled" {
		t.Fatalf("disabled endpoint: %d %s", r.status, r.body)
	}
	if _, r := replay("ep_missing", body); r.status != http.StatusNotFound {
		t.Fatalf("missing endpoint: %d %s", r.status, r.body)
	}
	if n := len(h.webhookMsgs(ep.ID)); n != 2 {
		t.Fatalf("refused replays published: %d messages", n)
	}
}

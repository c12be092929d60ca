package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// endpointFor creates an endpoint through the API and returns its id.
func (h *harness) endpointFor(key string) string {
	h.t.Helper()
	r := h.call("POST", "/v1/endpoints", key, `{"url":"https://example.com/hook"}`)
	if r.status != http.StatusCreated {
		h.t.Fatalf("create endpoint: %d %s", r.status, r.body)
	}
	var ep endpoint
	r.json(h.t, &ep)
	return ep.ID
}

// attempt records a delivery attempt as the webhook sender does.
func (h *harness) attempt(paymentID, endpointID string, n int, code *int, delivered bool) {
	h.t.Helper()
	if _, err := h.db.Exec(`INSERT INTO webhook_attempts (event_id, event_type, payment_id, endpoint_id, stream_seq,
		attempt, status_code, latency_ms, error, response_body, delivered)
		VALUES ('evt_1', 'payment.created', $1, $2, 1, $3, $4, 12.5, NULL, 'ok', $5)`, paymentID, endpointID, n, code, delivered); err != nil {
		h.t.Fatal(err)
	}
}

// deadLetter stores a dead letter as the webhook sender's DLQ processor does. An empty subject
// means the original had aged out of WEBHOOKS.
func (h *harness) deadLetter(endpointID, merchantID, subject string, headers map[string]string, body []byte, at time.Time) string {
	h.t.Helper()
	id := event.NewID("dl")
	hdr, _ := json.Marshal(headers)
	var seq int64
	if err := h.db.Get(&seq, `SELECT count(*) + 1 FROM webhook_dead_letters`); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.db.Exec(`INSERT INTO webhook_dead_letters (id, origin_stream, origin_seq, origin_subject, endpoint_id,
		event_id, event_type, payment_id, merchant_id, reason, deliveries, last_error, headers, body, created_at)
		VALUES ($1, 'WEBHOOKS', $2, $3, $4, 'evt_1', 'payment.created', 'pay_1', $5, 'max_deliveries', 8, 'HTTP 500', $6, $7, $8)`,
		id, seq, subject, endpointID, merchantID, hdr, body, at); err != nil {
		h.t.Fatal(err)
	}
	return id
}

func TestDeliveries(t *testing.T) {
	h := startHarness(t)
	_, key := h.merchant("m")
	p := h.createPayment(key, `{"chain_id":1337,"token":"ETH","amount":"1"}`)
	ep := h.endpointFor(key)
	// The operator's default endpoint (WEBHOOK_URL) gets every event too; its attempts are not
	// the merchant's business.
	if _, err := h.db.Exec(`INSERT INTO webhook_endpoints (id, merchant_id, url, secret) VALUES ('ep_default', NULL, 'https://ops.example', 'whsec_x')`); err != nil {
		t.Fatal(err)
	}
	code500, code200 := 500, 200
	h.attempt(p.ID, ep, 1, &code500, false)
	h.attempt(p.ID, "ep_default", 1, &code200, true)
	h.attempt(p.ID, ep, 2, nil, false)
	h.attempt(p.ID, ep, 3, &code200, true)

	type page struct {
		Data []struct {
			EndpointID string `json:"endpoint_id"`
			Attempt    int    `json:"attempt"`
			StatusCode *int   `json:"status_code"`
			Delivered  bool   `json:"delivered"`
			EventType  string `json:"event_type"`
		} `json:"data"`
		HasMore    bool    `json:"has_more"`
		NextCursor *string `json:"next_cursor"`
	}
	var all page
	r := h.call("GET", "/v1/payments/"+p.ID+"/deliveries", key, nil)
	r.json(t, &all)
	if r.status != 200 || len(all.Data) != 3 || all.HasMore {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for i, a := range all.Data {
		if a.EndpointID != ep || a.Attempt != i+1 || a.EventType != "payment.created" {
			t.Fatalf("attempt %d: %+v", i, a)
		}
	}
	if all.Data[1].StatusCode != nil || !all.Data[2].Delivered || *all.Data[0].StatusCode != 500 {
		t.Fatalf("attempt fields: %s", r.body)
	}
	var first, rest page
	h.call("GET", "/v1/payments/"+p.ID+"/deliveries?limit=2", key, nil).json(t, &first)
	if len(first.Data) != 2 || !first.HasMore || first.NextCursor == nil {
		t.Fatalf("first page %+v", first)
	}
	h.call("GET", "/v1/payments/"+p.ID+"/deliveries?limit=2&cursor="+*first.NextCursor, key, nil).json(t, &rest)
	if len(rest.Data) != 1 || rest.Data[0].Attempt != 3 || rest.HasMore {
		t.Fatalf("second page %+v", rest)
	}
	if r := h.call("GET", "/v1/payments/pay_missing/deliveries", key, nil); r.status != 404 {
		t.Fatalf("missing payment: %d", r.status)
	}
}

func TestDeadLetterListAndReplay(t *testing.T) {
	h := startHarness(t)
	merchantID, key := h.merchant("m")
	ep := h.endpointFor(key)
	body := []byte(`{"id":"evt_1","type":"payment.created","timestamp":"2026-11-28T20:14:26Z","data":{"payment_id":"pay_1"}}`)
	headers := map[string]string{
		event.HeaderMsgID: "evt_1." + ep, event.HeaderEventType: "payment.created",
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	base := time.Now().Add(-time.Hour)
	var ids []string
	for i := range 5 {
		ids = append(ids, h.deadLetter(ep, merchantID, "webhooks.deliver."+ep, headers, body, base.Add(time.Duration(i)*time.Minute)))
	}
	noMsgID := h.deadLetter(ep, merchantID, "webhooks.deliver."+ep, map[string]string{event.HeaderEventType: "payment.created"}, body, base.Add(-time.Minute))
	lost := h.deadLetter(ep, merchantID, "", map[string]string{}, []byte{}, base.Add(-2*time.Minute))

	// Newest first, paginated.
	type page struct {
		Data []struct {
			ID          string          `json:"id"`
			Replayable  bool            `json:"replayable"`
			ReplayCount int             `json:"replay_count"`
			Event       json.RawMessage `json:"event"`
			Reason      string          `json:"reason"`
		} `json:"data"`
		HasMore    bool    `json:"has_more"`
		NextCursor *string `json:"next_cursor"`
	}
	var listed []string
	path := "/v1/dead-letters?limit=4"
	for {
		var p page
		r := h.call("GET", path, key, nil)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		r.json(t, &p)
		for _, d := range p.Data {
			listed = append(listed, d.ID)
			if d.Replayable != (d.ID != lost) || d.Reason != "max_deliveries" || (d.ID != lost && d.Event == nil) {
				t.Errorf("dead letter %+v", d)
			}
		}
		if !p.HasMore {
			break
		}
		path = "/v1/dead-letters?limit=4&cursor=" + *p.NextCursor
	}
	want := []string{ids[4], ids[3], ids[2], ids[1], ids[0], noMsgID, lost}
	if strings.Join(listed, ",") != strings.Join(want, ",") {
		t.Fatalf("listed %v, want newest first %v", listed, want)
	}

	replay := func(id string) response {
		t.Helper()
		return h.call("POST", "/v1/dead-letters/"+id+"/replay", key, nil)
	}
	for k := 1; k <= 2; k++ {
		r := replay(ids[0])
		var got struct {
			ReplayCount int    `json:"replay_count"`
			MsgID       string `json:"nats_msg_id"`
			Seq         uint64 `json:"stream_seq"`
		}
		r.json(t, &got)
		if wantID := fmt.Sprintf("evt_1.%s.replay%d", ep, k); r.status != http.StatusAccepted || got.ReplayCount != k || got.MsgID != wantID {
			t.Fatalf("replay %d: %d %s", k, r.status, r.body)
		}
	}
	if r := replay(noMsgID); r.status != http.StatusAccepted || !strings.Contains(string(r.body), `"WEBHOOKS.6.replay1"`) {
		t.Fatalf("replay without Nats-Msg-Id: %d %s", r.status, r.body)
	}
	if r := replay(lost); r.status != http.StatusConflict || r.apiError(t).Error.Code != "original_lost" {
		t.Fatalf("replay of a lost original: %d %s", r.status, r.body)
	}

	msgs := h.streamMsgs("WEBHOOKS", "webhooks.deliver."+ep)
	if len(msgs) != 3 {
		t.Fatalf("%d messages on WEBHOOKS, want 3", len(msgs))
	}
	for i, m := range msgs[:2] {
		if string(m.Data) != string(body) || m.Header.Get(event.HeaderMsgID) != fmt.Sprintf("evt_1.%s.replay%d", ep, i+1) ||
			m.Header.Get(event.HeaderEventType) != "payment.created" || m.Header.Get("traceparent") != headers["traceparent"] ||
			m.Header.Get("Ctrip-Replay-Of") != ids[0] {
			t.Errorf("replayed message %d: headers %v body %s", i, m.Header, m.Data)
		}
	}
	if n := h.count(`SELECT replay_count FROM webhook_dead_letters WHERE id = $1`, ids[0]); n != 2 {
		t.Fatalf("replay_count %d", n)
	}
	if n := h.count(`SELECT replay_count FROM webhook_dead_letters WHERE id = $1`, lost); n != 0 {
		t.Fatalf("lost dead letter counted a replay")
	}
	if r := h.call("GET", "/v1/dead-letters/"+ids[0], key, nil); r.status != 200 || !strings.Contains(string(r.body), `"replay_count":2`) {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	for _, q := range []string{"limit=0", "cursor=zzz", "status=x"} {
		if r := h.call("GET", "/v1/dead-letters?"+q, key, nil); r.status != 400 {
			t.Errorf("%s: %d", q, r.status)
		}
	}
}

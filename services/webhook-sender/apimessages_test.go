package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/signature"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// The api's endpoint calls publish onto WEBHOOKS themselves: POST /v1/endpoints/{id}/test an
// endpoint.test event (Nats-Msg-Id <event>.<endpoint>), POST /v1/endpoints/{id}/replay the
// original body of each event again (Nats-Msg-Id <event>.<endpoint>.replay.<since>). The
// delivery stage handles both as it handles the fan-out's messages — signed with the event id
// as webhook-id, recorded — and an endpoint disabled by a 410 and re-enabled (as PATCH
// {"enabled": true} does) gets deliveries again, from both stages.
func TestAPIMessagesToReenabledEndpoint(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t, status(http.StatusGone))
	epID, secret := h.endpoint("m_1", rc.srv.URL)
	h.start()
	gone := h.publish("payments.confirmed", "m_1")
	testkit.Eventually(t, 10*time.Second, "the endpoint disabled by 410 Gone", func() bool {
		return h.count(`SELECT count(*) FROM webhook_endpoints WHERE id = $1 AND NOT enabled`, epID) == 1
	})

	// Re-enabled: the api's UpdateEndpoint with enabled = true.
	rc.setRespond(status(http.StatusOK))
	if _, err := h.db.Exec(`UPDATE webhook_endpoints SET enabled = true, disabled_reason = NULL, disabled_at = NULL,
		updated_at = now() WHERE id = $1`, epID); err != nil {
		t.Fatal(err)
	}
	test, err := event.New("endpoint.test", map[string]string{"endpoint_id": epID, "merchant_id": "m_1", "message": "test"})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(msgID, eventType string, body []byte) {
		t.Helper()
		m := nats.NewMsg("webhooks.deliver." + epID)
		m.Data = body
		m.Header.Set(event.HeaderMsgID, msgID)
		m.Header.Set(event.HeaderEventType, eventType)
		if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	testBody := mustJSON(t, test)
	publish(test.ID+"."+epID, test.Type, testBody)
	goneBody := mustJSON(t, gone)
	publish(gone.ID+"."+epID+".replay.1764633600000000000", gone.Type, goneBody)
	later := h.publish("payments.swept", "m_1") // through the fan-out

	testkit.Eventually(t, 15*time.Second, "the test event, the replay and the next event delivered", func() bool {
		return len(rc.got()) == 4
	})
	key, err := signature.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]received{}
	for _, r := range rc.got()[1:] {
		id := r.header.Get("webhook-id")
		if err := signature.Verify(key, id, r.header.Get("webhook-timestamp"), r.header.Get("webhook-signature"), r.body, time.Now(), time.Minute); err != nil {
			t.Errorf("delivery %s: %v", id, err)
		}
		byID[id] = r
	}
	for id, body := range map[string][]byte{test.ID: testBody, gone.ID: goneBody} {
		if r, ok := byID[id]; !ok || string(r.body) != string(body) {
			t.Errorf("webhook-id %s: delivered %v, body %s", id, ok, r.body)
		}
	}
	if _, ok := byID[later.ID]; !ok {
		t.Error("the re-enabled endpoint did not get the next fanned-out event")
	}
	var env struct {
		Type string `json:"type"`
		Data struct {
			EndpointID string `json:"endpoint_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(byID[test.ID].body, &env); err != nil || env.Type != "endpoint.test" || env.Data.EndpointID != epID {
		t.Errorf("test event body %s", byID[test.ID].body)
	}
	testkit.Eventually(t, 5*time.Second, "the attempts recorded", func() bool {
		return len(h.attempts(test.ID, epID)) == 1 && len(h.attempts(gone.ID, epID)) == 2
	})
	if a := h.attempts(test.ID, epID); !a[0].Delivered {
		t.Errorf("test event attempt %+v", a[0])
	}
	if n := h.count(`SELECT count(*) FROM webhook_attempts WHERE event_id = $1 AND payment_id IS NULL`, test.ID); n != 1 {
		t.Errorf("the test event's attempt has a payment id (%d rows without one)", n)
	}
	if a := h.attempts(gone.ID, epID); *a[0].StatusCode != http.StatusGone || !a[1].Delivered {
		t.Errorf("attempts of the replayed event: %+v", a)
	}
	if strings.Contains(string(byID[gone.ID].body), "replay") {
		t.Error("the replay changed the body")
	}
}

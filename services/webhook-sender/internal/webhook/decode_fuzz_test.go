package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
)

// oneEndpoint is the endpoint lookup at the fan-out's decode boundary: every merchant has the
// one endpoint ep_1, and the lookup records what it was asked.
type oneEndpoint struct{ merchants, types []string }

func (e *oneEndpoint) EndpointsFor(_ context.Context, merchantID, eventType string) ([]Endpoint, error) {
	e.merchants, e.types = append(e.merchants, merchantID), append(e.types, eventType)
	return []Endpoint{{ID: "ep_1"}}, nil
}

// FuzzFanoutDecode: an event body is either poison (a fault.Invalid error, so the fan-out
// terminates it) or an envelope that event.Envelope.Validate accepts too, whose one delivery
// carries the body unchanged, the deterministic Nats-Msg-Id <event_id>.<endpoint_id> and the
// event type. The delivery stage reads the body with the same decodeEventBody. Never a panic.
func FuzzFanoutDecode(f *testing.F) {
	const ts = `"timestamp":"2026-11-29T01:02:03.004Z"`
	good := `{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":{"payment_id":"pay_1","merchant_id":"m_1","amount":"1"}}`
	for _, s := range []string{good, `{"id":`, `{"type":"payment.confirmed",` + ts + `,"data":{}}`,
		`{"id":"evt_1",` + ts + `,"data":{}}`, `{"id":"evt_1","type":"payment.confirmed","data":{}}`,
		`{"id":"evt_1","type":"payment.confirmed","timestamp":"yesterday","data":{}}`,
		`{"id":"evt_1","type":"payment.confirmed",` + ts + `}`, `{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":null}`,
		`{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":[1]}`, `{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":"x"}`,
		good + `x`, `{"id":"evt_1","type":"payment.confirmed","timestamp":"0001-01-01T00:00:00Z","data":{}}`,
		`{"id":"evt_1\r\nX: y","type":"payment.confirmed",` + ts + `,"data":{}}`, `{"ID":"evt_1","TYPE":"t",` + ts + `,"DATA":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		eps := &oneEndpoint{}
		fo := &Fanout{FanoutConfig{Endpoints: eps, Log: slog.New(slog.DiscardHandler)}}
		msgs, err := fo.deliveries(context.Background(), event.SubjectConfirmed, body)
		if err != nil {
			if fault.KindOf(err) != fault.KindInvalid || len(eps.merchants) > 0 {
				t.Fatalf("error %v (kind %v) after %d lookups", err, fault.KindOf(err), len(eps.merchants))
			}
			if env, derr := decodeEventBody(body); derr == nil && env.Type == event.TypeForSubject(event.SubjectConfirmed) {
				t.Fatalf("fan-out refused what the delivery stage accepts: %v", err)
			}
			return
		}
		env, derr := decodeEventBody(body)
		if derr != nil || env.ID == "" || env.Type != "payment.confirmed" || env.Timestamp.IsZero() || env.Data == nil {
			t.Fatalf("decoded %+v, %v", env, derr)
		}
		var full event.Envelope
		if err := json.Unmarshal(body, &full); err != nil || full.Validate() != nil {
			t.Fatalf("fan-out accepted an envelope the other consumers refuse: %v / %v", err, full.Validate())
		}
		if len(eps.merchants) != 1 || eps.merchants[0] != env.Data.MerchantID || eps.types[0] != env.Type {
			t.Fatalf("lookup %q %q for %+v", eps.merchants, eps.types, env)
		}
		if len(msgs) != 1 {
			t.Fatalf("%d deliveries for one endpoint", len(msgs))
		}
		m := msgs[0]
		if m.Subject != DeliverSubjectPrefix+"ep_1" || string(m.Data) != string(body) ||
			m.Header.Get(event.HeaderMsgID) != env.ID+".ep_1" || m.Header.Get(event.HeaderEventType) != env.Type {
			t.Fatalf("delivery %s %v", m.Subject, m.Header)
		}
	})
}

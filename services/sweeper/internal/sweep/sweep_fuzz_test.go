package sweep

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
)

// noPayments is the store side of Sweep's decode boundary: a body that decodes reaches
// Payments.Payment, which records the id and answers that there is no such payment. Nothing
// past it is called. (A real Postgres per fuzz execution would measure the database.)
type noPayments struct {
	Payments
	ids []string
}

func (s *noPayments) Payment(_ context.Context, id string) (Payment, error) {
	s.ids = append(s.ids, id)
	return Payment{}, ErrNotFound
}

// FuzzSweep: a payments.confirmed body is either terminated as invalid (fault.Invalid) or
// reaches the payment lookup with the payment id (non-empty, no NUL, which Postgres' text
// refuses) of an envelope that passes Validate. Never a
// panic.
func FuzzSweep(f *testing.F) {
	const ts = `"timestamp":"2026-11-28T20:14:26Z"`
	for _, s := range []string{
		`{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":{"payment_id":"pay_1","merchant_id":"m_1","status":"confirmed",` +
			`"chain_id":1337,"address":"0x2222222222222222222222222222222222222222","token":"ETH","amount":"1","amount_base_units":"1000000000000000000"}}`,
		`{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":{}}`,
		`{"id":"evt_1","type":"payment.confirmed",` + ts + `}`,
		`{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":null}`,
		`{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":{"payment_id":7}}`,
		`{"id":"evt_1","type":"payment.confirmed","timestamp":"yesterday","data":{"payment_id":"p"}}`,
		`{"type":"payment.confirmed",` + ts + `,"data":{"payment_id":"p"}}`,
		`{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":{"payment_id":"p","chain_id":"1"}}`,
		`{"id":"evt_1","type":"payment.confirmed",` + ts + `,"data":{"payment_id":"p"}} trailing`,
		``, `null`, `[]`, `"x"`, `{"id":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		store := &noPayments{}
		s := &Sweeper{Config: Config{Payments: store, Log: slog.New(slog.DiscardHandler)}}
		err := s.Sweep(context.Background(), body)
		switch fault.KindOf(err) {
		case fault.KindInvalid:
			if len(store.ids) > 0 {
				t.Fatalf("invalid event reached the store: %v", err)
			}
			return
		case fault.KindNotFound:
		default:
			t.Fatalf("error %v (kind %v)", err, fault.KindOf(err))
		}
		var env event.Envelope
		if err := json.Unmarshal(body, &env); err != nil || env.Validate() != nil {
			t.Fatalf("envelope passed: %v / %v", err, env.Validate())
		}
		var p event.Payment
		if err := json.Unmarshal(env.Data, &p); err != nil || p.PaymentID == "" || strings.ContainsRune(p.PaymentID, 0) ||
			len(store.ids) != 1 || store.ids[0] != p.PaymentID {
			t.Fatalf("payment %+v passed (%v), store saw %q", p, err, store.ids)
		}
	})
}

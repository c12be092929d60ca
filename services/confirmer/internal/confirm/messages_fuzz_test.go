package confirm

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/fault"
)

// fuzzMsg is a delivered message as the ports read it: subject and body. The ports call
// nothing else; any other method panics through the nil interface, which the fuzzer reports.
type fuzzMsg struct {
	jetstream.Msg
	subject string
	data    []byte
}

func (m fuzzMsg) Subject() string { return m.subject }
func (m fuzzMsg) Data() []byte    { return m.data }

// unknownPayments is the store side of the decode boundary: whatever passes decoding reaches
// UpdatePayment, which records the id and answers that there is no such payment. A real
// Postgres per fuzz execution would measure the database, not the decoder.
type unknownPayments struct{ ids []string }

func (s *unknownPayments) UpdatePayment(_ context.Context, id string, _ func(*PaymentState) (Changes, error)) error {
	s.ids = append(s.ids, id)
	return ErrUnknownPayment
}

func (s *unknownPayments) DueForExpiry(context.Context, int) ([]string, error) { return nil, nil }

const detectedSeed = `{"id":"evt_1","type":"payment.detected","timestamp":"2026-11-28T20:14:26Z","data":{"payment_id":"pay_1",` +
	`"merchant_id":"m_1","status":"detected","chain_id":1337,"transactions":[{"tx_hash":"0xab","log_index":3,"block_number":7,` +
	`"block_hash":"0xcd","value_base_units":"12500000"}]}}`

// FuzzHandlePaymentMsg: a payments.detected body is either terminated as invalid (a
// fault.Invalid error) or reaches the store with a payment id, from an envelope that passes
// Validate and a first transfer with a tx hash and a non-negative value; no id or hash that
// reaches Postgres holds a NUL (text refuses it, so every redelivery would fail). Never a panic.
func FuzzHandlePaymentMsg(f *testing.F) {
	for _, s := range []string{detectedSeed, `{}`, `null`, `[]`, `{"id":"evt_1","type":"t","timestamp":"2026-11-28T20:14:26Z","data":{}}`,
		`{"id":"evt_1","type":"t","timestamp":"2026-11-28T20:14:26Z","data":{"payment_id":"p","transactions":[{"tx_hash":"0x1","value_base_units":"-1"}]}}`,
		`{"id":"evt_1","type":"t","timestamp":"2026-11-28T20:14:26Z","data":{"payment_id":"p","transactions":[{"value_base_units":"1"}]}}`,
		`{"id":"evt_1","type":"t","timestamp":"2026-11-28T20:14:26Z","data":{"payment_id":"p","transactions":[{"tx_hash":"0x1","value_base_units":"1e3"}]}}`,
		`{"id":"evt_1","type":"t","timestamp":"2026-11-28T20:14:26Z","data":{"payment_id":"p","chain_id":1e40}}`,
		`{"id":"evt_1","type":"t","timestamp":"0001-01-01T00:00:00Z","data":{"payment_id":"p"}}`,
		`{"id":"evt_1","type":"t","timestamp":"2026-11-28T20:14:26Z","data":"{}"}`} {
		f.Add(event.SubjectDetected, []byte(s))
	}
	f.Add(event.SubjectConfirmed, []byte(detectedSeed))
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		store := &unknownPayments{}
		c := &Confirmer{payments: store, log: slog.New(slog.DiscardHandler), chains: map[int64]Chain{}, latest: map[int64]uint64{}}
		err := c.HandlePaymentMsg(context.Background(), fuzzMsg{subject: subject, data: body})
		if subject != event.SubjectDetected {
			if err != nil || len(store.ids) > 0 {
				t.Fatalf("subject %q handled: %v", subject, err)
			}
			return
		}
		switch fault.KindOf(err) {
		case fault.KindInvalid:
			if len(store.ids) > 0 {
				t.Fatalf("invalid event reached the store: %v", err)
			}
			return
		case fault.KindNotFound:
		default:
			t.Fatalf("error %v (kind %v) for an undeliverable body", err, fault.KindOf(err))
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
		if len(p.Transactions) > 0 {
			tx := p.Transactions[0]
			if v, ok := parseBase10(tx.ValueBaseUnits); tx.TxHash == "" || !ok || v < 0 ||
				strings.ContainsRune(tx.TxHash+tx.BlockHash, 0) {
				t.Fatalf("transfer %+v passed", tx)
			}
		}
	})
}

// parseBase10 reports the sign of a base-10 integer string.
func parseBase10(s string) (int, bool) {
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	if neg && strings.Trim(digits, "0") != "" {
		return -1, true
	}
	return 1, true
}

// FuzzHandleChainMsg: a CHAIN message is ignored (a subject that is neither head nor reorg),
// or terminated as invalid: a bad subject or body, or — the Confirmer here follows no chain —
// an unknown chain, which is reached only by a body about the subject's own chain.
func FuzzHandleChainMsg(f *testing.F) {
	head := `{"chain_id":1337,"number":12,"hash":"0xaa","parent_hash":"0xbb","time":"2026-11-28T20:14:26Z"}`
	reorg := `{"chain_id":1337,"common_ancestor_number":5,"common_ancestor_hash":"0x1","old_head_number":7,"old_head_hash":"0x2","new_head_number":8,"new_head_hash":"0x3"}`
	for _, s := range []string{"chain.1337.head", "chain.1337.reorg", "chain.1.head", "chain.x.head", "chain.1337.other",
		"chain.1337", "chain..head", "chain.-1.head", "chain.+1337.head", "chain.99999999999999999999.head", "payments.detected"} {
		f.Add(s, []byte(head))
		f.Add(s, []byte(reorg))
	}
	f.Add("chain.1337.head", []byte(`{"chain_id":"1337"}`))
	f.Add("chain.0.head", []byte(`{}`))
	f.Add("chain.1337.reorg", []byte(`{"chain_id":1337,"new_head_number":-1}`))
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		c := &Confirmer{log: slog.New(slog.DiscardHandler), chains: map[int64]Chain{}, latest: map[int64]uint64{}}
		err := c.HandleChainMsg(context.Background(), fuzzMsg{subject: subject, data: body})
		parts := strings.Split(subject, ".")
		if err == nil {
			if len(parts) != 3 || parts[0] != "chain" || parts[2] == "head" || parts[2] == "reorg" {
				t.Fatalf("subject %q accepted without reaching a chain", subject)
			}
			return
		}
		fe, ok := fault.As(err)
		if !ok || fe.Kind != fault.KindInvalid {
			t.Fatalf("error %v is not a fault.Invalid", err)
		}
		if fe.Code != ReasonUnknownChain {
			return
		}
		id, perr := strconv.ParseInt(parts[1], 10, 64)
		if perr != nil || !strings.Contains(fe.Err.Error(), fmt.Sprintf("chain %d", id)) {
			t.Fatalf("subject %q reached chain lookup: %v", subject, err)
		}
		var v struct {
			ChainID int64 `json:"chain_id"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.ChainID != id {
			t.Fatalf("body about chain %d (%v) accepted on %q", v.ChainID, err, subject)
		}
	})
}

package natsbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/fault"
)

// recordingMsg is a jetstream.Msg that records how it was settled.
type recordingMsg struct {
	delivered uint64
	settled   []string
	delay     time.Duration
	reason    string
}

func (m *recordingMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{NumDelivered: m.delivered}, nil
}
func (m *recordingMsg) Data() []byte         { return nil }
func (m *recordingMsg) Headers() nats.Header { return nats.Header{} }
func (m *recordingMsg) Subject() string      { return "chain.1.head" }
func (m *recordingMsg) Reply() string        { return "" }
func (m *recordingMsg) Ack() error           { m.settled = append(m.settled, "ack"); return nil }
func (m *recordingMsg) DoubleAck(context.Context) error {
	m.settled = append(m.settled, "double-ack")
	return nil
}
func (m *recordingMsg) Nak() error        { m.settled = append(m.settled, "nak"); return nil }
func (m *recordingMsg) InProgress() error { m.settled = append(m.settled, "in-progress"); return nil }
func (m *recordingMsg) Term() error       { m.settled = append(m.settled, "term"); return nil }
func (m *recordingMsg) NakWithDelay(d time.Duration) error {
	m.settled, m.delay = append(m.settled, "nak"), d
	return nil
}
func (m *recordingMsg) TermWithReason(r string) error {
	m.settled, m.reason = append(m.settled, "term"), r
	return nil
}

var _ jetstream.Msg = (*recordingMsg)(nil)

// Every fault kind maps to its settlement, through wrapping, with the redelivery delay growing
// with the delivery count up to the back-off's cap.
func TestSettle(t *testing.T) {
	slow := Backoff{Step: 2 * time.Second, Max: time.Minute}
	long := strings.Repeat("é", 600) // 1200 bytes: cut on a rune boundary
	cases := []struct {
		name      string
		err       error
		delivered uint64
		backoff   Backoff
		want      string
		delay     time.Duration
		reason    string
	}{
		{"done", nil, 1, Backoff{}, "ack", 0, ""},
		{"invalid", fault.Invalid("invalid_event", errors.New("bad json")), 1, Backoff{}, "term", 0, "invalid_event: bad json"},
		{"not found", fault.NotFound("unknown_payment", errors.New("pay_1")), 3, Backoff{}, "term", 0, "unknown_payment: pay_1"},
		{"wrapped invalid keeps its cause", fmt.Errorf("handling: %w", fault.Invalid("poison", errors.New("x"))), 1, Backoff{}, "term", 0, "handling: poison: x"},
		{"joined invalid", errors.Join(errors.New("ctx"), fault.Invalid("invalid_event", errors.New("x"))), 1, Backoff{}, "term", 0, "ctx\ninvalid_event: x"},
		{"long reason is cut", fault.Invalid("c", errors.New(long)), 1, Backoff{}, "term", 0, ("c: " + long)[:1023]},
		{"transient, first delivery", fault.Transient(errors.New("rpc down")), 1, Backoff{}, "nak", time.Second, ""},
		{"transient, fifth delivery", fault.Transient(errors.New("rpc down")), 5, Backoff{}, "nak", 5 * time.Second, ""},
		{"transient, capped", fault.Transient(errors.New("rpc down")), 500, Backoff{}, "nak", 30 * time.Second, ""},
		{"transient, slower back-off", fault.Transient(errors.New("rpc down")), 3, slow, "nak", 6 * time.Second, ""},
		{"transient, slower back-off capped", fault.Transient(errors.New("rpc down")), 100, slow, "nak", time.Minute, ""},
		{"transient with its own delay", fault.TransientAfter(7*time.Second, errors.New("later")), 1, Backoff{}, "nak", 7 * time.Second, ""},
		{"untyped error is transient", errors.New("db gone"), 2, Backoff{}, "nak", 2 * time.Second, ""},
		{"superseded", fault.Superseded(errors.New("rpc down")), 1, Backoff{}, "ack", 0, ""},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &recordingMsg{delivered: tc.delivered}
			Settle(context.Background(), m, tc.err, tc.backoff, log)
			if len(m.settled) != 1 || m.settled[0] != tc.want {
				t.Fatalf("settled %v, want [%s]", m.settled, tc.want)
			}
			if m.delay != tc.delay || m.reason != tc.reason {
				t.Fatalf("delay %v reason %q, want %v %q", m.delay, m.reason, tc.delay, tc.reason)
			}
		})
	}
}

// A settlement is applied as decided; Later restarts the ack timer.
func TestApply(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cases := []struct {
		s    Settlement
		want []string
	}{
		{Settlement{Action: Ack}, []string{"ack"}},
		{Settlement{Action: Term, Reason: "max_deliveries: 500"}, []string{"term"}},
		{Settlement{Action: Redeliver, Delay: 3 * time.Second}, []string{"nak"}},
		{Settlement{Action: Later}, []string{"in-progress"}},
	}
	for _, tc := range cases {
		t.Run(tc.s.Action.String(), func(t *testing.T) {
			m := &recordingMsg{delivered: 1}
			Apply(context.Background(), m, tc.s, log)
			if fmt.Sprint(m.settled) != fmt.Sprint(tc.want) || m.reason != tc.s.Reason || m.delay != tc.s.Delay {
				t.Fatalf("settled %v (reason %q, delay %v), want %v for %+v", m.settled, m.reason, m.delay, tc.want, tc.s)
			}
		})
	}
}

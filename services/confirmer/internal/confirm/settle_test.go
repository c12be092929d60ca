package confirm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
func (m *recordingMsg) InProgress() error { return nil }
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

func TestSettle(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		delivered uint64
		want      string
		delay     time.Duration
		reason    string
	}{
		{"done", nil, 1, "ack", 0, ""},
		{"poison", Poison(ReasonUnknownPayment, errors.New("pay_1")), 1, "term", 0, "unknown_payment: pay_1"},
		{"transient, first delivery", Transient(errors.New("rpc down")), 1, "nak", time.Second, ""},
		{"transient, fifth delivery", Transient(errors.New("rpc down")), 5, "nak", 5 * time.Second, ""},
		{"transient, capped", Transient(errors.New("rpc down")), 500, "nak", maxRetryDelay, ""},
		{"untyped error is transient", errors.New("db gone"), 2, "nak", 2 * time.Second, ""},
		{"superseded head", Superseded(errors.New("rpc down")), 1, "ack", 0, ""},
		{"wrapped poison", errors.Join(errors.New("ctx"), Poison(ReasonInvalidEvent, errors.New("x"))), 1, "term", 0, "invalid_event: x"},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &recordingMsg{delivered: tc.delivered}
			settle(context.Background(), m, tc.err, log)
			if len(m.settled) != 1 || m.settled[0] != tc.want {
				t.Fatalf("settled %v, want [%s]", m.settled, tc.want)
			}
			if m.delay != tc.delay || m.reason != tc.reason {
				t.Fatalf("delay %v reason %q, want %v %q", m.delay, m.reason, tc.delay, tc.reason)
			}
		})
	}
}

func TestOnlyTheNewestFailedHeadIsRetried(t *testing.T) {
	c := &Confirmer{latest: map[int64]uint64{}}
	c.observeHead(1, 10)
	c.observeHead(2, 50)
	var e *Error
	cases := []struct {
		chain  int64
		number uint64
		want   Kind
	}{
		{1, 10, KindTransient},
		{1, 9, KindSuperseded},
		{2, 10, KindSuperseded},
		{3, 1, KindTransient},
	}
	for _, tc := range cases {
		err := c.headFailed(chainHead(tc.chain, tc.number), errors.New("rpc down"))
		if !errors.As(err, &e) || e.Kind != tc.want {
			t.Errorf("chain %d head %d: %v, want kind %d", tc.chain, tc.number, err, tc.want)
		}
	}
}

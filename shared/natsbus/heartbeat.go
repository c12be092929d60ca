package natsbus

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// heartbeatDivisor: a message in hand is heartbeated every AckWait/heartbeatDivisor, so two
// beats can be lost (a NATS reconnect) before the ack wait runs out.
const heartbeatDivisor = 3

// heartbeatEvery is the beat for a consumer's messages: a third of its AckWait.
func heartbeatEvery(cons jetstream.Consumer) time.Duration {
	if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
		return max(info.Config.AckWait/heartbeatDivisor, 10*time.Millisecond)
	}
	return 10 * time.Second
}

// Heartbeat sends InProgress for a message every beat until stopped, so its ack wait does not
// run out while it is queued or handled. It is a timer, not a goroutine: most messages are
// settled long before the first beat. Stop waits for a beat in progress, so no InProgress follows
// the final ack or term. A failed beat (NATS reconnecting) is retried on the next one.
type Heartbeat struct {
	msg   jetstream.Msg
	every time.Duration

	mu      sync.Mutex
	stopped bool
	t       *time.Timer
}

// StartHeartbeat starts msg's heartbeat, the first beat one interval from now.
func StartHeartbeat(msg jetstream.Msg, every time.Duration) *Heartbeat {
	h := &Heartbeat{msg: msg, every: max(every, time.Millisecond)}
	h.mu.Lock()
	h.t = time.AfterFunc(h.every, h.beat)
	h.mu.Unlock()
	return h
}

func (h *Heartbeat) beat() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	_ = h.msg.InProgress()
	h.t.Reset(h.every)
}

// Stop ends the heartbeat; after it returns no InProgress is sent.
func (h *Heartbeat) Stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	h.t.Stop()
}

// heldMsg is a message the loop has taken from the consumer: from then until it is settled,
// its Heartbeat restarts its ack timer every beat. So a consumer's AckWait is sized to the beat,
// not to the longest job — a job may take minutes (a sweep waiting for its receipt) while a
// crashed process's messages come back within seconds — and a message queued behind a busy lane
// is not redelivered meanwhile. Settling stops the beat first.
type heldMsg struct {
	jetstream.Msg
	hb *Heartbeat
}

func hold(msg jetstream.Msg, every time.Duration) *heldMsg {
	return &heldMsg{Msg: msg, hb: StartHeartbeat(msg, every)}
}

func (h *heldMsg) stop() { h.hb.Stop() }

func (h *heldMsg) Ack() error                          { h.stop(); return h.Msg.Ack() }
func (h *heldMsg) DoubleAck(ctx context.Context) error { h.stop(); return h.Msg.DoubleAck(ctx) }
func (h *heldMsg) Nak() error                          { h.stop(); return h.Msg.Nak() }
func (h *heldMsg) NakWithDelay(d time.Duration) error {
	h.stop()
	return h.Msg.NakWithDelay(d)
}
func (h *heldMsg) Term() error { h.stop(); return h.Msg.Term() }
func (h *heldMsg) TermWithReason(reason string) error {
	h.stop()
	return h.Msg.TermWithReason(reason)
}

package main

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// TestHeadToConfirmedLatency measures, per payment, the time from publishing the chain head
// that completes the confirmations to payments.confirmed arriving from PAYMENTS: consumer
// delivery, the confirmation count, re-verification over HTTP JSON-RPC (tip, header,
// receipt), the guarded transaction with its outbox row, and the relay's publish.
func TestHeadToConfirmedLatency(t *testing.T) {
	lat := measureHeadToConfirmed(t, 20)
	t.Logf("head → payments.confirmed latency over %d payments (3 confirmations, RPC over HTTP): p50 %v  p90 %v  max %v",
		len(lat), lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)-1])
}

// BenchmarkHeadToConfirmed reports the same latency as p50_ms / p99_ms (ns/op includes the
// chain and scanner work of setting each payment up).
func BenchmarkHeadToConfirmed(b *testing.B) {
	lat := measureHeadToConfirmed(b, b.N)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}

// measureHeadToConfirmed returns n latencies, sorted.
func measureHeadToConfirmed(tb testing.TB, n int) []time.Duration {
	h := startHarness(tb, 3)
	confirmed := make(chan *nats.Msg, 16)
	sub, err := h.nc.ChanSubscribe(event.SubjectConfirmed, confirmed)
	if err != nil {
		tb.Fatal(err)
	}
	defer sub.Unsubscribe()
	lat := make([]time.Duration, 0, n)
	for range n {
		p := h.payment(eth(10), time.Hour, nil)
		tr := h.payETH(p, eth(10))
		h.detect(tr)
		h.waitStatus(p.ID, "detected")
		h.chain.Mine(2)
		h.head(tr.BlockNumber)
		h.head(tr.BlockNumber + 1)
		h.idle()
		at := h.head(tr.BlockNumber + 2)
		deadline := time.After(5 * time.Second)
	wait:
		for {
			select {
			case m := <-confirmed:
				var env struct {
					Data event.Payment `json:"data"`
				}
				if err := json.Unmarshal(m.Data, &env); err != nil {
					tb.Fatal(err)
				}
				if env.Data.PaymentID == p.ID {
					lat = append(lat, time.Since(at))
					break wait
				}
			case <-deadline:
				tb.Fatalf("payments.confirmed for %s did not arrive", p.ID)
			}
		}
	}
	slices.Sort(lat)
	return lat
}

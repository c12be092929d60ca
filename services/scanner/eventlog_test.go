package main

import (
	"context"
	"math/big"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/streams"
)

// TestDetectedEventIDsSurviveARescan: a payments.detected event's id is its transfer's and
// block's, not a fresh one: a scanner that scans the block again (its cursor rewound, as after
// a crash before the block was committed) publishes the event under the same id — the
// merchant's webhook-id — also once the stream's duplicate window has passed (here: the stream
// purged, so the republished event is not dropped as a duplicate).
func TestDetectedEventIDsSurviveARescan(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.waitScanned(h.head())
	// A duplicate window of 100 ms stands for the 10 minutes a rescan may come after.
	s, err := h.js.Stream(context.Background(), streams.Payments)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Duplicates = 100 * time.Millisecond
	if _, err := h.js.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	p := h.newPayment("ETH", ether(1), time.Now().Add(time.Hour))
	h.mine(h.chain.SendETH(h.payer, p.Address, big.NewInt(300)))
	h.waitDetected(p, 1)
	first := h.detectedFor(p.ID)[0]
	h.waitScanned(h.head())
	h.stop()

	time.Sleep(300 * time.Millisecond) // past the duplicate window: the rescan's event is stored
	h.rewindCursor(int64(first.data.Transactions[0].BlockNumber) - 1)
	h.start()
	h.waitDetected(p, 2)
	again := h.detectedFor(p.ID)[1]
	if again.env.ID != first.env.ID || again.msgID != first.msgID {
		t.Fatalf("rescanned: event %s under %s, first %s under %s", again.env.ID, again.msgID, first.env.ID, first.msgID)
	}
}

package confirm

import (
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
)

func TestNextStatus(t *testing.T) {
	amount := big.NewInt(100)
	cases := []struct {
		name                string
		status              string
		received, confirmed int64
		want                string
	}{
		{"pending, nothing seen", event.StatusPending, 0, 0, ""},
		{"pending, value seen", event.StatusPending, 40, 0, event.StatusDetected},
		{"pending, confirmed before its detected event", event.StatusPending, 100, 100, event.StatusConfirmed},
		{"detected, partial confirmed", event.StatusDetected, 100, 60, ""},
		{"detected, partials add up", event.StatusDetected, 100, 100, event.StatusConfirmed},
		{"detected, overpaid", event.StatusDetected, 150, 150, event.StatusConfirmed},
		{"detected, everything reorged", event.StatusDetected, 0, 0, event.StatusPending},
		{"confirmed stays", event.StatusConfirmed, 100, 100, ""},
		{"confirmed, part reorged", event.StatusConfirmed, 50, 50, event.StatusDetected},
		{"confirmed, all reorged", event.StatusConfirmed, 0, 0, event.StatusPending},
		{"expired never confirms", event.StatusExpired, 100, 100, ""},
		{"swept never steps back", event.StatusSwept, 0, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := nextStatus(tc.status, amount, big.NewInt(tc.received), big.NewInt(tc.confirmed))
			if got != tc.want {
				t.Fatalf("nextStatus = %q, want %q", got, tc.want)
			}
			if (got == "") != (reason == "") {
				t.Fatalf("reason %q for transition %q", reason, got)
			}
		})
	}
}

func TestExpires(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	amount := big.NewInt(100)
	cases := []struct {
		name     string
		status   string
		received int64
		at       time.Time
		want     bool
	}{
		{"pending past deadline", event.StatusPending, 0, past, true},
		{"partially detected past deadline", event.StatusDetected, 99, past, true},
		{"fully detected waits for confirmations", event.StatusDetected, 100, past, false},
		{"before deadline", event.StatusPending, 0, future, false},
		{"confirmed never expires", event.StatusConfirmed, 100, past, false},
		{"expired once", event.StatusExpired, 0, past, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := expires(tc.status, amount, big.NewInt(tc.received), tc.at, now); got != tc.want {
				t.Fatalf("expires = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConfirmationArithmeticNeverGoesNegative(t *testing.T) {
	cases := []struct {
		name        string
		head, block uint64
		want        uint64
	}{
		{"head is the block", 10, 10, 1},
		{"two on top", 12, 10, 3},
		{"head below the block (stale head)", 9, 10, 0},
		{"genesis", 0, 0, 1},
		{"far from zero", math.MaxInt64, math.MaxInt64 - 11, 12},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := confirmations(tc.head, tc.block); got != tc.want {
				t.Fatalf("confirmations(%d, %d) = %d, want %d", tc.head, tc.block, got, tc.want)
			}
		})
	}
	upTo := []struct {
		name       string
		head, need uint64
		want       uint64
		ok         bool
	}{
		{"chain shorter than the depth", 1, 3, 0, false},
		{"exactly the depth", 2, 3, 0, true},
		{"deeper", 100, 12, 89, true},
		{"one confirmation", 7, 1, 7, true},
	}
	for _, tc := range upTo {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := confirmableUpTo(tc.head, tc.need)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("confirmableUpTo(%d, %d) = %d, %v; want %d, %v", tc.head, tc.need, got, ok, tc.want, tc.ok)
			}
			if ok && confirmations(tc.head, got) != tc.need {
				t.Fatalf("block %d has %d confirmations at %d, want %d", got, confirmations(tc.head, got), tc.head, tc.need)
			}
		})
	}
}

package confirm

import (
	"math/big"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// nextStatus decides a payment's status from its totals. It never leaves swept (the sweeper's)
// or expired (terminal: late value is recorded and reported by the scanner, never confirmed).
func nextStatus(status string, amount, received, confirmed *big.Int) (to, reason string) {
	switch status {
	case event.StatusPending, event.StatusDetected:
		if confirmed.Cmp(amount) >= 0 {
			return event.StatusConfirmed, "confirmed value reached the amount"
		}
		if status == event.StatusPending && received.Sign() > 0 {
			return event.StatusDetected, "value detected"
		}
		if status == event.StatusDetected && received.Sign() == 0 {
			return event.StatusPending, "detected value left the canonical chain"
		}
	case event.StatusConfirmed:
		if confirmed.Cmp(amount) < 0 {
			if received.Sign() > 0 {
				return event.StatusDetected, "confirmed value left the canonical chain"
			}
			return event.StatusPending, "confirmed value left the canonical chain"
		}
	}
	return "", ""
}

// expires reports whether a payment is past its deadline without its full amount detected. A
// payment whose full amount is detected waits for its confirmations instead.
func expires(status string, amount, received *big.Int, expiresAt, now time.Time) bool {
	return (status == event.StatusPending || status == event.StatusDetected) && now.After(expiresAt) && received.Cmp(amount) < 0
}

// confirmations is how many blocks, the transfer's included, a head puts on top of block:
// zero when the head is below it (never a negative number, never a wrapped uint64).
func confirmations(head, block uint64) uint64 {
	if head < block {
		return 0
	}
	return head - block + 1
}

// confirmableUpTo is the highest block that has at least need confirmations at head; ok is
// false when no block has yet (head+1 < need).
func confirmableUpTo(head, need uint64) (block uint64, ok bool) {
	if need == 0 {
		return head, true
	}
	if head < need-1 {
		return 0, false
	}
	return head - (need - 1), true
}

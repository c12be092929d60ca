package testkit

import (
	"testing"
	"time"
)

// pollInterval is how long the polling helpers wait between two looks at a condition.
const pollInterval = 15 * time.Millisecond

// Poll looks at cond until it holds or timeout has passed, and reports whether it held. The
// last look starts after the timeout. It is Eventually for a caller that words its own
// failure, with what it saw on the last look.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		last := time.Now().After(deadline)
		if cond() {
			return true
		}
		if last {
			return false
		}
		time.Sleep(pollInterval)
	}
}

// Eventually polls cond until it holds, failing the test after timeout.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Poll(timeout, cond) {
		tb.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Never polls cond for d and fails the test if it holds at any look, the last one after d has
// passed: "nothing else arrives within d", where a sleep followed by one look would see only
// the end of the window. what names what must not happen.
func Never(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	if Poll(d, cond) {
		tb.Fatalf("%s (within %v)", what, d)
	}
}

package main

import "testing"

// TestReconcileBudgetFromEnvironment: SCAN_RECONCILE_BUDGET defaults to 200, 0 leaves the
// choice to the scanner (its default, as in a Config built by a test), and a value out of
// range is refused, naming the variable.
func TestReconcileBudgetFromEnvironment(t *testing.T) {
	checkIntVariable(t, "SCAN_RECONCILE_BUDGET", func(c Config) int { return c.ReconcileBudget }, []intCase{
		{"default", "", 200, false},
		{"set", "50", 50, false},
		{"zero: the scanner's default", "0", 0, false},
		{"negative", "-1", 0, true},
		{"too large", "100001", 0, true},
		{"not a number", "many", 0, true},
	})
}

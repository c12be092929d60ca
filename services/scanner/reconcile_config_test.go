package main

import (
	"errors"
	"testing"

	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// TestReconcileBudgetFromEnvironment: SCAN_RECONCILE_BUDGET defaults to 200, 0 leaves the
// choice to the scanner (its default, as in a Config built by a test), and a value out of
// range is refused, naming the variable.
func TestReconcileBudgetFromEnvironment(t *testing.T) {
	cases := []struct {
		name, value string
		want        int // -1: refused
	}{
		{"default", "", 200},
		{"set", "50", 50},
		{"zero: the scanner's default", "0", 0},
		{"negative", "-1", -1},
		{"too large", "100001", -1},
		{"not a number", "many", -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"CHAINS_FILE": "chains.yaml"}
			if c.value != "" {
				env["SCAN_RECONCILE_BUDGET"] = c.value
			}
			var cfg Config
			err := testkit.LoadConfig(&cfg, env)
			if c.want >= 0 {
				if err != nil || cfg.ReconcileBudget != c.want {
					t.Fatalf("budget %d (err %v), want %d", cfg.ReconcileBudget, err, c.want)
				}
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Var != "SCAN_RECONCILE_BUDGET" {
				t.Fatalf("error %v, want one naming SCAN_RECONCILE_BUDGET", err)
			}
		})
	}
}

package sweep

import (
	"math/big"
	"testing"
)

// The replacement fees clear geth's replacement rule (both fees ≥ old × 110 / 100 and strictly
// higher), follow the market when it is higher, and never exceed max_fee_gwei.
func TestReplacementFees(t *testing.T) {
	n := big.NewInt
	for _, tc := range []struct {
		name                      string
		oldTip, oldCap, tip, base *big.Int
		maxFee                    *big.Int
		wantTip, wantCap          *big.Int
		wantOK                    bool
	}{
		{"wei-level fees rise by at least one", n(1), n(3), n(1), n(0), nil, n(2), n(4), true},
		{"ten percent, rounded up", n(101), n(1001), n(1), n(1), nil, n(112), n(1102), true},
		{"the market when it is higher", n(1), n(3), n(1_000_000), n(500), nil, n(1_000_000), n(1_001_000), true},
		{"bounded by the cap", n(1), n(3), n(1_000_000), n(500), n(5), n(5), n(5), true},
		{"the cap allows exactly the minimum", n(10), n(100), n(1), n(1), n(110), n(11), n(110), true},
		{"the cap is below the minimum raise", n(10), n(100), n(1), n(1), n(109), nil, nil, false},
		{"already at the cap", n(5), n(5), n(1), n(1), n(5), nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tip, feeCap, ok := replacement(tc.oldTip, tc.oldCap, tc.tip, tc.base, tc.maxFee)
			if ok != tc.wantOK {
				t.Fatalf("ok %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			if tip.Cmp(tc.wantTip) != 0 || feeCap.Cmp(tc.wantCap) != 0 {
				t.Fatalf("tip %s fee cap %s, want %s %s", tip, feeCap, tc.wantTip, tc.wantCap)
			}
			// geth's legacypool.list.Add, word for word.
			threshold := func(old *big.Int) *big.Int { return new(big.Int).Div(new(big.Int).Mul(old, n(110)), n(100)) }
			if feeCap.Cmp(tc.oldCap) <= 0 || tip.Cmp(tc.oldTip) <= 0 || feeCap.Cmp(threshold(tc.oldCap)) < 0 || tip.Cmp(threshold(tc.oldTip)) < 0 {
				t.Errorf("geth would refuse tip %s fee cap %s over %s %s", tip, feeCap, tc.oldTip, tc.oldCap)
			}
			if tip.Cmp(feeCap) > 0 || (tc.maxFee != nil && feeCap.Cmp(tc.maxFee) > 0) {
				t.Errorf("tip %s fee cap %s, max %v", tip, feeCap, tc.maxFee)
			}
		})
	}
}

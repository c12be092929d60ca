package amount

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// FuzzParse: an accepted amount is positive, fits numeric(78,0) and uint256, and formats back
// to the same decimal value; a refused one is refused with one of the merchant-facing errors.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"12.345678", "1000000.123456789012345678", "10", "5", "12.5", "0.000001", "42",
		MaxBaseUnits.String(), "", "-1", "+1", "1e6", "1.", ".5", "1.2.3", " 1", "1,000", "0", "0.000",
		"1.0000001", strings.Repeat("9", 79), strings.Repeat("1", MaxInputLen+1), "１", "1\x00", "0x10"} {
		for _, d := range []int{0, 6, 18, 77} {
			f.Add(s, d)
		}
	}
	f.Fuzz(func(t *testing.T, s string, decimals int) {
		v, err := Parse(s, decimals)
		if decimals < 0 || decimals > 77 {
			if err == nil {
				t.Fatalf("decimals %d accepted", decimals)
			}
			return
		}
		if err != nil {
			for _, known := range []error{ErrEmpty, ErrSyntax, ErrTooLong, ErrZero, ErrTooManyDigit, ErrTooLarge} {
				if errors.Is(err, known) {
					if v != nil {
						t.Fatalf("%q: value %v with error %v", s, v, err)
					}
					return
				}
			}
			t.Fatalf("%q: error %v is none of the merchant-facing errors", s, err)
		}
		if v.Sign() <= 0 || len(v.String()) > MaxBaseUnitDigits || v.Cmp(MaxBaseUnits) > 0 {
			t.Fatalf("%q (%d decimals) → %v: out of range", s, decimals, v)
		}
		if strings.ContainsAny(s, "+-eE, \t") {
			t.Fatalf("%q accepted", s)
		}
		// The human amount the events carry is the same decimal value as the input.
		back := event.FormatUnits(v, decimals)
		want, ok := new(big.Rat).SetString(s)
		got, ok2 := new(big.Rat).SetString(back)
		if !ok || !ok2 || want.Cmp(got) != 0 {
			t.Fatalf("%q (%d decimals) → %v → %q", s, decimals, v, back)
		}
		if again, err := Parse(back, decimals); err != nil || again.Cmp(v) != 0 {
			t.Fatalf("%q → %q re-parses to %v, %v", s, back, again, err)
		}
	})
}

package amount

import (
	"errors"
	"strings"
	"testing"

	"github.com/ctrip-pay/pipeline/shared/event"
)

func TestParse(t *testing.T) {
	maxU256 := MaxBaseUnits.String() // 78 digits
	tests := []struct {
		name     string
		in       string
		decimals int
		want     string
		err      error
	}{
		{"usdc six decimals", "12.345678", 6, "12345678", nil},
		{"eth eighteen decimals above int64", "1000000.123456789012345678", 18, "1000000123456789012345678", nil},
		{"more than 9.2 ETH", "10", 18, "10000000000000000000", nil},
		{"whole number", "5", 6, "5000000", nil},
		{"fewer fractional digits", "12.5", 6, "12500000", nil},
		{"leading zero", "0.000001", 6, "1", nil},
		{"zero decimals token", "42", 0, "42", nil},
		{"uint256 max exactly", maxU256, 0, maxU256, nil},
		{"empty", "", 6, "", ErrEmpty},
		{"negative", "-1", 6, "", ErrSyntax},
		{"plus sign", "+1", 6, "", ErrSyntax},
		{"exponent", "1e6", 6, "", ErrSyntax},
		{"upper exponent", "1E6", 6, "", ErrSyntax},
		{"hex", "0x10", 6, "", ErrSyntax},
		{"spaces", " 1", 6, "", ErrSyntax},
		{"trailing space", "1 ", 6, "", ErrSyntax},
		{"comma", "1,5", 6, "", ErrSyntax},
		{"underscore", "1_000", 6, "", ErrSyntax},
		{"two dots", "1.2.3", 6, "", ErrSyntax},
		{"leading dot", ".5", 6, "", ErrSyntax},
		{"trailing dot", "5.", 6, "", ErrSyntax},
		{"nan", "NaN", 6, "", ErrSyntax},
		{"infinity", "Inf", 6, "", ErrSyntax},
		{"unicode digit", "١", 6, "", ErrSyntax},
		{"zero", "0", 6, "", ErrZero},
		{"zero with decimals", "0.000000", 6, "", ErrZero},
		{"too many fractional digits", "1.1234567", 6, "", ErrTooManyDigit},
		{"trailing zero beyond decimals", "1.0000000", 6, "", ErrTooManyDigit},
		{"fraction on zero-decimal token", "1.5", 0, "", ErrTooManyDigit},
		{"79 digits in base units", "1" + strings.Repeat("0", 78), 0, "", ErrTooLarge},
		{"78 digits above uint256", strings.Repeat("9", 78), 0, "", ErrTooLarge},
		{"huge after scaling", "1" + strings.Repeat("0", 61), 18, "", ErrTooLarge},
		{"absurd length", strings.Repeat("1", 10000), 18, "", ErrTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in, tc.decimals)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Parse(%q, %d) error = %v, want %v", tc.in, tc.decimals, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q, %d): %v", tc.in, tc.decimals, err)
			}
			if got.String() != tc.want {
				t.Fatalf("Parse(%q, %d) = %s, want %s", tc.in, tc.decimals, got, tc.want)
			}
		})
	}
}

// Parse and event.FormatUnits are inverses on canonical inputs.
func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"0.1", "7", "123456789.987654321", "0.000000000000000001"} {
		v, err := Parse(s, 18)
		if err != nil {
			t.Fatal(err)
		}
		if got := event.FormatUnits(v, 18); got != s {
			t.Errorf("round trip %q → %s → %q", s, v, got)
		}
	}
}

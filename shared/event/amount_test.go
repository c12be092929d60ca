package event

import (
	"math/big"
	"testing"
)

// The cases the scanner, confirmer, sweeper and api each tested of their own copy before.
func TestFormatUnits(t *testing.T) {
	num := func(s string) *big.Int {
		v, ok := new(big.Int).SetString(s, 10)
		if !ok {
			t.Fatalf("bad number %q", s)
		}
		return v
	}
	cases := []struct {
		name     string
		v        *big.Int
		decimals int
		want     string
	}{
		{"zero", big.NewInt(0), 18, "0"},
		{"nil", nil, 6, "0"},
		{"whole ether above int64", num("12000000000000000000"), 18, "12"},
		{"fraction of a 6-decimal token", big.NewInt(12_500_000), 6, "12.5"},
		{"all six places", big.NewInt(12_345_678), 6, "12.345678"},
		{"one whole token", big.NewInt(1_000_000), 6, "1"},
		{"one base unit", big.NewInt(1), 6, "0.000001"},
		{"one wei", big.NewInt(1), 18, "0.000000000000000001"},
		{"no decimals", big.NewInt(42), 0, "42"},
		{"trailing zeros cut", big.NewInt(1_230_000), 6, "1.23"},
		{"above 1e24", num("1000000123456789012345678"), 18, "1000000.123456789012345678"},
		{"above 1e30", num("1000000000000000000000000000001"), 18, "1000000000000.000000000000000001"},
		{"uint256 max", num("115792089237316195423570985008687907853269984665640564039457584007913129639935"), 18,
			"115792089237316195423570985008687907853269984665640564039457.584007913129639935"},
		{"negative", big.NewInt(-1_500_000), 6, "-1.5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := FormatUnits(c.v, c.decimals); got != c.want {
				t.Fatalf("FormatUnits(%s, %d) = %q, want %q", c.v, c.decimals, got, c.want)
			}
		})
	}
}

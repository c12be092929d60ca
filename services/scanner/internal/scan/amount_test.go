package scan

import (
	"math/big"
	"testing"
)

func TestFormatUnits(t *testing.T) {
	big12eth, _ := new(big.Int).SetString("12000000000000000000", 10)
	huge, _ := new(big.Int).SetString("115792089237316195423570985008687907853269984665640564039457584007913129639935", 10)
	cases := []struct {
		name     string
		v        *big.Int
		decimals int
		want     string
	}{
		{"zero", big.NewInt(0), 18, "0"},
		{"whole ether above int64", big12eth, 18, "12"},
		{"fraction of a 6-decimal token", big.NewInt(12_500_000), 6, "12.5"},
		{"one base unit", big.NewInt(1), 6, "0.000001"},
		{"no decimals", big.NewInt(42), 0, "42"},
		{"trailing zeros cut", big.NewInt(1_230_000), 6, "1.23"},
		{"uint256 max", huge, 18, "115792089237316195423570985008687907853269984665640564039457.584007913129639935"},
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

func TestSubFloorNeverNegative(t *testing.T) {
	cases := []struct{ a, b, want uint64 }{{10, 3, 7}, {3, 3, 0}, {2, 3, 0}, {0, 12, 0}}
	for _, c := range cases {
		if got := subFloor(c.a, c.b); got != c.want {
			t.Errorf("subFloor(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

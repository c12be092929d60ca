package scan

import (
	"math/big"
	"strings"
)

// FormatUnits renders base units as a decimal string in token units: 12500000 with 6 decimals
// is "12.5". No floats: the digits are cut, never rounded.
func FormatUnits(v *big.Int, decimals int) string {
	neg := v.Sign() < 0
	digits := new(big.Int).Abs(v).String()
	if decimals > 0 {
		if len(digits) <= decimals {
			digits = strings.Repeat("0", decimals-len(digits)+1) + digits
		}
		whole, frac := digits[:len(digits)-decimals], strings.TrimRight(digits[len(digits)-decimals:], "0")
		digits = whole
		if frac != "" {
			digits += "." + frac
		}
	}
	if neg {
		return "-" + digits
	}
	return digits
}

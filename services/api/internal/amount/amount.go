// Package amount parses the decimal strings merchants write ("12.5" USDC) into base units
// (12500000; event.FormatUnits goes the other way), with math/big only: a float64 cannot hold 10^18-scaled values exactly and an
// int64 overflows above ~9.2 ETH.
package amount

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// MaxInputLen bounds the string before any arithmetic: 78 integer digits, a dot and 77
// fractional digits is the longest value that can possibly fit.
const MaxInputLen = 156

// MaxBaseUnitDigits is the precision of the numeric(78,0) columns.
const MaxBaseUnitDigits = 78

// MaxBaseUnits is the largest amount an EVM chain can hold (uint256); anything above it can
// never be paid, although numeric(78,0) would store it.
var MaxBaseUnits = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))

// Errors returned by Parse; each is a merchant-facing message.
var (
	ErrEmpty        = errors.New("is required")
	ErrSyntax       = errors.New("must be a positive decimal string such as \"12.5\" (digits and at most one dot; no sign, exponent, spaces or separators)")
	ErrTooLong      = fmt.Errorf("is longer than %d characters", MaxInputLen)
	ErrZero         = errors.New("must be greater than zero")
	ErrTooManyDigit = errors.New("has more fractional digits than the token's decimals")
	ErrTooLarge     = errors.New("is too large")
)

// Parse converts a decimal string in token units into base units for a token with the given
// decimals. It accepts only [0-9]+ optionally followed by . and [0-9]+: no sign, no exponent,
// no whitespace, no thousands separators, no more fractional digits than decimals.
func Parse(s string, decimals int) (*big.Int, error) {
	if decimals < 0 || decimals > 77 {
		return nil, fmt.Errorf("amount: decimals %d out of range", decimals)
	}
	if s == "" {
		return nil, ErrEmpty
	}
	if len(s) > MaxInputLen {
		return nil, ErrTooLong
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if !digits(whole) || (hasDot && !digits(frac)) {
		return nil, ErrSyntax
	}
	if len(frac) > decimals {
		return nil, fmt.Errorf("%w (%d)", ErrTooManyDigit, decimals)
	}
	padded := whole + frac + strings.Repeat("0", decimals-len(frac))
	padded = strings.TrimLeft(padded, "0")
	if padded == "" {
		return nil, ErrZero
	}
	if len(padded) > MaxBaseUnitDigits {
		return nil, fmt.Errorf("%w: more than %d digits in base units", ErrTooLarge, MaxBaseUnitDigits)
	}
	v, ok := new(big.Int).SetString(padded, 10)
	if !ok {
		return nil, ErrSyntax // unreachable: padded is all digits
	}
	if v.Cmp(MaxBaseUnits) > 0 {
		return nil, fmt.Errorf("%w: above the uint256 maximum of an EVM token balance", ErrTooLarge)
	}
	return v, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

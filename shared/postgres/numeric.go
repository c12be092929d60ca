package postgres

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"math/big"
)

// Numeric is a numeric(78,0) column, an amount in base units, as a big.Int. It scans the
// decimal text lib/pq returns (for the column itself or a ::text cast of it) and is passed as a
// parameter in decimal. Only an integer is accepted: "1.5" or "1.0" is an error, never a
// rounded or zero amount.
//
// NULL is refused both ways: every amount column is NOT NULL, so a NULL read or written is a
// bug. A nullable column scans into a *Numeric (database/sql leaves it nil for NULL), and a
// NULL parameter is passed as an untyped nil.
type Numeric struct{ v *big.Int }

// NewNumeric wraps v, which must not be nil.
func NewNumeric(v *big.Int) Numeric { return Numeric{v: v} }

// Int returns the scanned value (not a copy); nil before a successful Scan.
func (n Numeric) Int() *big.Int { return n.v }

// Scan implements sql.Scanner.
func (n *Numeric) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case []byte:
		s = string(v)
	case string:
		s = v
	case nil:
		return errors.New("postgres.Numeric: NULL where an amount is required")
	default:
		return fmt.Errorf("postgres.Numeric: cannot scan %T", src)
	}
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return fmt.Errorf("postgres.Numeric: %q is not an integer", s)
	}
	n.v = v
	return nil
}

// Value implements driver.Valuer.
func (n Numeric) Value() (driver.Value, error) {
	if n.v == nil {
		return nil, errors.New("postgres.Numeric: no value (a NULL parameter is an untyped nil)")
	}
	return n.v.String(), nil
}

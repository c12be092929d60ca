package postgres_test

import (
	"math/big"
	"strings"
	"testing"

	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// Amounts go into a numeric(78,0) column and come back the same, whether read as the column
// ([]byte from lib/pq) or as its ::text (string).
func TestNumericRoundTrip(t *testing.T) {
	db, _ := testkit.MustDB(t)
	if _, err := db.Exec(`CREATE TABLE amounts (name text PRIMARY KEY, v numeric(78,0))`); err != nil {
		t.Fatal(err)
	}
	max78, _ := new(big.Int).SetString(strings.Repeat("9", 78), 10)
	for _, tc := range []struct {
		name string
		v    *big.Int
	}{
		{"zero", big.NewInt(0)},
		{"one", big.NewInt(1)},
		{"78 digits", max78},
		{"negative", big.NewInt(-42)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.Exec(`INSERT INTO amounts (name, v) VALUES ($1, $2)`, tc.name, postgres.NewNumeric(tc.v)); err != nil {
				t.Fatal(err)
			}
			var text string
			if err := db.Get(&text, `SELECT v::text FROM amounts WHERE name = $1`, tc.name); err != nil || text != tc.v.String() {
				t.Fatalf("stored %q (%v), want %s", text, err, tc.v)
			}
			var row struct {
				V    postgres.Numeric `db:"v"`
				Text postgres.Numeric `db:"text"`
			}
			if err := db.Get(&row, `SELECT v, v::text AS text FROM amounts WHERE name = $1`, tc.name); err != nil {
				t.Fatal(err)
			}
			for _, got := range []postgres.Numeric{row.V, row.Text} {
				if got.Int() == nil || got.Int().Cmp(tc.v) != 0 {
					t.Errorf("read back %v, want %s", got.Int(), tc.v)
				}
			}
		})
	}
}

// NULL is refused, as every amount column is NOT NULL; a nullable column is read into a
// *Numeric, which stays nil.
func TestNumericNULL(t *testing.T) {
	db, _ := testkit.MustDB(t)
	var n postgres.Numeric
	if err := db.Get(&n, `SELECT NULL::numeric(78,0)`); err == nil || !strings.Contains(err.Error(), "NULL") {
		t.Fatalf("NULL into Numeric: %v (value %v), want an error", err, n.Int())
	}
	p := &postgres.Numeric{}
	if err := db.Get(&p, `SELECT NULL::numeric(78,0)`); err != nil || p != nil {
		t.Fatalf("NULL into *Numeric: %v, %v; want nil, nil", p, err)
	}
	if err := db.Get(&p, `SELECT 7::numeric(78,0)`); err != nil || p == nil || p.Int().Int64() != 7 {
		t.Fatalf("7 into *Numeric: %v, %v", p, err)
	}
	if _, err := postgres.NewNumeric(nil).Value(); err == nil {
		t.Fatal("a Numeric without a value was passed as a parameter")
	}
}

// A value with a fraction, even a zero one, is an error: an amount is never rounded or zero.
func TestNumericRefusesNonIntegers(t *testing.T) {
	db, _ := testkit.MustDB(t)
	for _, q := range []string{
		`SELECT 1.5::numeric`,
		`SELECT 0.4::numeric`,
		`SELECT 2.0::numeric`,
		`SELECT 'NaN'::numeric`,
		`SELECT 1.5::float8`,
		`SELECT ''::text`,
	} {
		var n postgres.Numeric
		if err := db.Get(&n, q); err == nil {
			t.Errorf("%s: scanned %v, want an error", q, n.Int())
		} else if n.Int() != nil {
			t.Errorf("%s: %v, but left %v", q, err, n.Int())
		}
	}
}

package testkit

import (
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/jmoiron/sqlx"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// Payment is a payments row a service test writes directly, as the api would have; InsertPayment
// fills in what is left zero.
type Payment struct {
	ID         string // "": a new pay_ id
	MerchantID string // inserted if missing
	Status     string // "": pending
	ChainID    int64
	// Contract nil is the chain's native ETH (18 decimals); otherwise a token, Symbol with
	// Decimals (default 6).
	Contract *common.Address
	Symbol   string
	Decimals int
	Address  common.Address
	Index    *int64 // nil: the next deposit_address_index
	Amount   *big.Int
	// Received and Confirmed are the running totals (nil: 0).
	Received, Confirmed *big.Int
	Metadata            string // JSON; "": {}
	ExpiresIn           time.Duration
}

// TokenContract is the row's token_contract: the lower-case contract, nil for native.
func (p Payment) TokenContract() *string {
	if p.Contract == nil {
		return nil
	}
	s := strings.ToLower(p.Contract.Hex())
	return &s
}

// InsertPayment writes p (and its merchant when missing) and returns it completed.
func InsertPayment(tb testing.TB, db *sqlx.DB, p Payment) Payment {
	tb.Helper()
	if p.ID == "" {
		p.ID = event.NewID("pay")
	}
	if p.Status == "" {
		p.Status = event.StatusPending
	}
	switch {
	case p.Contract == nil:
		p.Symbol, p.Decimals = "ETH", 18
	case p.Decimals == 0:
		p.Decimals = 6
	}
	total := func(v *big.Int) string {
		if v == nil {
			return "0"
		}
		return v.String()
	}
	if p.Metadata == "" {
		p.Metadata = "{}"
	}
	if _, err := db.Exec(`INSERT INTO merchants (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING`, p.MerchantID); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO payments (id, merchant_id, status, chain_id, token, token_contract, decimals,
			address, address_index, amount_base_units, received_base_units, confirmed_base_units, metadata, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($9, nextval('deposit_address_index')), $10, $11, $12, $13,
			now() + $14 * interval '1 millisecond')`,
		p.ID, p.MerchantID, p.Status, p.ChainID, p.Symbol, p.TokenContract(), p.Decimals, strings.ToLower(p.Address.Hex()),
		p.Index, p.Amount.String(), total(p.Received), total(p.Confirmed), p.Metadata, p.ExpiresIn.Milliseconds()); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Event is the data of the payment's events as the services build it (event.NewPayment), on
// the chain named chain with confirmations.
func (p Payment) Event(chain string, confirmations int64) event.Payment {
	return event.NewPayment(event.PaymentRow{
		ID: p.ID, MerchantID: p.MerchantID, Status: p.Status, ChainID: p.ChainID, Chain: chain,
		Address: strings.ToLower(p.Address.Hex()), Token: p.Symbol, TokenContract: p.TokenContract(),
		Decimals: p.Decimals, Amount: p.Amount, Received: p.Received, Confirmations: confirmations,
		Metadata: json.RawMessage(p.Metadata), ExpiresAt: time.Now().Add(p.ExpiresIn),
	})
}

// PaymentStatus is the payment's status in the database.
func PaymentStatus(tb testing.TB, db *sqlx.DB, paymentID string) string {
	tb.Helper()
	var s string
	if err := db.Get(&s, `SELECT status FROM payments WHERE id = $1`, paymentID); err != nil {
		tb.Fatal(err)
	}
	return s
}

// BigInt is the base-10 integer s, failing the test if it is not one.
func BigInt(tb testing.TB, s string) *big.Int {
	tb.Helper()
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		tb.Fatalf("not an integer: %q", s)
	}
	return v
}

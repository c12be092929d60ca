package postgres

import "time"

// PaymentRow is the part of a payments row (the one table, in migrations/) that every service
// reads. A store scans it with sqlx, embedded in its own row type beside the columns only that
// service reads, and selects PaymentColumns plus those.
type PaymentRow struct {
	ID            string    `db:"id"`
	MerchantID    string    `db:"merchant_id"`
	Status        string    `db:"status"`
	ChainID       int64     `db:"chain_id"`
	Token         string    `db:"token"`
	TokenContract *string   `db:"token_contract"` // nil for the native coin
	Decimals      int       `db:"decimals"`
	Address       string    `db:"address"`
	AddressIndex  int64     `db:"address_index"`
	Amount        Numeric   `db:"amount_base_units"`
	Received      Numeric   `db:"received_base_units"`
	Confirmed     Numeric   `db:"confirmed_base_units"`
	Metadata      []byte    `db:"metadata"`
	ExpiresAt     time.Time `db:"expires_at"`
}

// PaymentColumns are PaymentRow's columns, for a SELECT.
const PaymentColumns = `id, merchant_id, status, chain_id, token, token_contract, decimals, address, address_index,
	amount_base_units, received_base_units, confirmed_base_units, metadata, expires_at`
